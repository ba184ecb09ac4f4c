import ModelFormats
import Quantization
import TensorCore
import TestScratch
import XCTest
@testable import Llama

/// The BLAS forward pass against an independent scalar reference written here (plain loops, Double accumulation).
final class ForwardReferenceTests: XCTestCase {
    static func config() -> LlamaConfig {
        var c = LlamaConfig(hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4, numKVHeads: 2, vocabSize: 64)
        c.rmsNormEps = 1e-5
        c.ropeTheta = 10000
        return c
    }

    /// Deterministic random weights, HF layout.
    static func weights(_ c: LlamaConfig, seed: UInt64) -> [String: [Float]] {
        var s = seed
        func r() -> Float {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 2001 - 1000) / 1000
        }
        let h = c.hiddenSize, q = c.numHeads * c.headDim, kv = c.numKVHeads * c.headDim, f = c.intermediateSize
        var w: [String: [Float]] = [:]
        func m(_ n: String, _ count: Int, _ scale: Float) { w[n] = (0..<count).map { _ in r() * scale } }
        m("model.embed_tokens.weight", c.vocabSize * h, 1)
        m("lm_head.weight", c.vocabSize * h, 0.2)
        w["model.norm.weight"] = (0..<h).map { _ in 1 + 0.1 * r() }
        for l in 0..<c.numLayers {
            let p = "model.layers.\(l)."
            w[p + "input_layernorm.weight"] = (0..<h).map { _ in 1 + 0.1 * r() }
            w[p + "post_attention_layernorm.weight"] = (0..<h).map { _ in 1 + 0.1 * r() }
            m(p + "self_attn.q_proj.weight", q * h, 0.3); m(p + "self_attn.k_proj.weight", kv * h, 0.3)
            m(p + "self_attn.v_proj.weight", kv * h, 0.3); m(p + "self_attn.o_proj.weight", h * q, 0.3)
            m(p + "mlp.gate_proj.weight", f * h, 0.3); m(p + "mlp.up_proj.weight", f * h, 0.3); m(p + "mlp.down_proj.weight", h * f, 0.3)
        }
        return w
    }

    /// Plain-loop reference. `interleavedRoPE`: q/k weights are in GGUF (permuted) row order and RoPE rotates
    /// adjacent pairs (2i, 2i+1), as llama.cpp does; otherwise HF order with rotate-half.
    static func reference(_ c: LlamaConfig, _ w: [String: [Float]], _ tokens: [Int], interleavedRoPE: Bool = false) -> [[Double]] {
        let H = c.hiddenSize, hd = c.headDim, nq = c.numHeads, nkv = c.numKVHeads, F = c.intermediateSize, V = c.vocabSize
        func matvec(_ W: [Float], _ x: [Double], out: Int, inn: Int) -> [Double] {
            (0..<out).map { o in (0..<inn).reduce(0.0) { $0 + Double(W[o * inn + $1]) * x[$1] } }
        }
        func norm(_ x: [Double], _ g: [Float]) -> [Double] {
            let ms = x.reduce(0) { $0 + $1 * $1 } / Double(x.count)
            let r = 1 / (ms + c.rmsNormEps).squareRoot()
            return x.indices.map { x[$0] * r * Double(g[$0]) }
        }
        func rope(_ v: inout [Double], heads: Int, pos: Int) {
            for h in 0..<heads {
                for i in 0..<(hd / 2) {
                    let theta = Double(pos) * pow(c.ropeTheta, -2 * Double(i) / Double(hd))
                    let (a, b) = interleavedRoPE ? (h * hd + 2 * i, h * hd + 2 * i + 1) : (h * hd + i, h * hd + i + hd / 2)
                    let x1 = v[a], x2 = v[b]
                    v[a] = x1 * cos(theta) - x2 * sin(theta)
                    v[b] = x2 * cos(theta) + x1 * sin(theta)
                }
            }
        }
        var xs = tokens.map { t in (0..<H).map { Double(w["model.embed_tokens.weight"]![t * H + $0]) } }
        for l in 0..<c.numLayers {
            let p = "model.layers.\(l)."
            var qs: [[Double]] = [], ks: [[Double]] = [], vs: [[Double]] = []
            for (t, x) in xs.enumerated() {
                let h = norm(x, w[p + "input_layernorm.weight"]!)
                var q = matvec(w[p + "self_attn.q_proj.weight"]!, h, out: nq * hd, inn: H)
                var k = matvec(w[p + "self_attn.k_proj.weight"]!, h, out: nkv * hd, inn: H)
                rope(&q, heads: nq, pos: t); rope(&k, heads: nkv, pos: t)
                qs.append(q); ks.append(k); vs.append(matvec(w[p + "self_attn.v_proj.weight"]!, h, out: nkv * hd, inn: H))
            }
            for t in xs.indices {
                var att = [Double](repeating: 0, count: nq * hd)
                for hh in 0..<nq {
                    let kvh = hh / (nq / nkv)
                    let sc = (0...t).map { j in (0..<hd).reduce(0.0) { $0 + qs[t][hh * hd + $1] * ks[j][kvh * hd + $1] } / Double(hd).squareRoot() }
                    let m = sc.max()!
                    let e = sc.map { exp($0 - m) }, z = e.reduce(0, +)
                    for j in 0...t { for d in 0..<hd { att[hh * hd + d] += e[j] / z * vs[j][kvh * hd + d] } }
                }
                let o = matvec(w[p + "self_attn.o_proj.weight"]!, att, out: H, inn: nq * hd)
                for i in 0..<H { xs[t][i] += o[i] }
                let h2 = norm(xs[t], w[p + "post_attention_layernorm.weight"]!)
                let g = matvec(w[p + "mlp.gate_proj.weight"]!, h2, out: F, inn: H), u = matvec(w[p + "mlp.up_proj.weight"]!, h2, out: F, inn: H)
                let a = (0..<F).map { g[$0] / (1 + exp(-g[$0])) * u[$0] }
                let d = matvec(w[p + "mlp.down_proj.weight"]!, a, out: H, inn: F)
                for i in 0..<H { xs[t][i] += d[i] }
            }
        }
        return xs.map { matvec(w["lm_head.weight"]!, norm($0, w["model.norm.weight"]!), out: V, inn: H) }
    }

    static func assertClose(_ got: [Float], _ want: [[Double]], _ msg: String) {
        let V = want[0].count
        var worst = 0.0
        for (t, row) in want.enumerated() {
            let scale = row.map(abs).max()! + 1e-6
            for i in 0..<V { worst = max(worst, abs(Double(got[t * V + i]) - row[i]) / scale) }
        }
        XCTAssertLessThan(worst, 1e-4, "\(msg): worst relative difference \(worst)")
    }

    let tokens: [Int32] = [1, 5, 9, 63, 0, 17, 17, 42, 8, 30, 2, 11]

    func testF32MatchesReference() throws {
        let c = Self.config(), w = Self.weights(c, seed: 1)
        let fwd = LlamaForward(try LlamaWeights.load(config: c, tensors: w))
        Self.assertClose(try fwd.logits(tokens), Self.reference(c, w, tokens.map(Int.init)), "f32")
        // only some rows
        let part = try fwd.logits(tokens, logitRows: 6..<11)
        let full = try fwd.logits(tokens)
        for (a, b) in zip(part, full[(6 * 64)..<(11 * 64)]) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b))) }
    }

    /// KV-cache decoding (a prefix, then one token at a time) gives the prefill's logits.
    func testIncrementalDecodingMatchesPrefill() throws {
        let c = Self.config(), w = Self.weights(c, seed: 4)
        let fwd = LlamaForward(try LlamaWeights.load(config: c, tensors: w))
        let full = try fwd.logits(tokens)
        let cache = LlamaForward.KVCache(config: c, capacity: 16)
        var got = try fwd.logits(Array(tokens[0..<5]), cache: cache)
        for t in 5..<tokens.count { got += try fwd.logits([tokens[t]], cache: cache) }
        XCTAssertEqual(cache.length, tokens.count)
        for (a, b) in zip(got, full) { XCTAssertEqual(a, b, accuracy: 1e-4 * max(1, abs(b))) }
        XCTAssertThrowsError(try fwd.logits([1, 2, 3, 4, 5], cache: cache))
    }

    func testBF16CheckpointMatchesReference() throws {
        let c = Self.config()
        var w = Self.weights(c, seed: 2)
        for k in w.keys { w[k] = w[k]!.map { HalfFloat.bf16ToF32(HalfFloat.f32ToBF16($0)) } }
        let dir = Scratch.dir()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let names = w.keys.sorted()
        let shapes = Dictionary(uniqueKeysWithValues: names.map { n -> (String, [Int]) in
            let count = w[n]!.count
            return (n, n.hasSuffix("norm.weight") || n.hasSuffix("layernorm.weight") ? [count] : [count / (n.contains("down_proj") ? 48 : n.contains("o_proj") ? 32 : 32), n.contains("down_proj") ? 48 : 32])
        })
        try SafetensorsWriter.write(path: dir + "/model.safetensors", entries: names.map { .init(name: $0, dtype: .bf16, shape: shapes[$0]!) }) { k in
            w[names[k]]!.map { HalfFloat.f32ToBF16($0) }.withUnsafeBytes { Array($0) }
        }
        let ck = try SafetensorsCheckpoint.open(dir + "/model.safetensors")
        let fwd = LlamaForward(try LlamaWeights.load(hfCheckpoint: ck, config: c))
        Self.assertClose(try fwd.logits(tokens), Self.reference(c, w, tokens.map(Int.init)), "bf16")
    }

    func testGGUFPermutedCopyMatchesReference() throws {
        let c = Self.config(), w = Self.weights(c, seed: 3)
        // GGUF layout: q/k rows permuted as llama.cpp's converter does
        var gw: [String: [Float]] = [:]
        var md: [(String, GGUFValue)] = [("general.architecture", .string("llama"))]
        md += [("llama.embedding_length", .uint32(32)), ("llama.feed_forward_length", .uint32(48)), ("llama.block_count", .uint32(2)),
               ("llama.attention.head_count", .uint32(4)), ("llama.attention.head_count_kv", .uint32(2)), ("llama.vocab_size", .uint32(64))]
        var ts: [(name: String, ne: [Int], type: GGMLType)] = []
        for (n, v) in w.sorted(by: { $0.key < $1.key }) {
            var x = v
            let rows = n.hasSuffix("norm.weight") || n.hasSuffix("layernorm.weight") ? 1 : v.count / (n.contains("down_proj") ? 48 : 32)
            let cols = v.count / rows
            if n.hasSuffix("q_proj.weight") { x = LlamaTensorNames.gatherRows(v, rowLength: cols, src: try LlamaTensorNames.qkPermutation(rows: rows, heads: 4)) }
            if n.hasSuffix("k_proj.weight") { x = LlamaTensorNames.gatherRows(v, rowLength: cols, src: try LlamaTensorNames.qkPermutation(rows: rows, heads: 2)) }
            gw[n] = x
            ts.append((LlamaTensorNames.gguf(n)!, rows == 1 ? [cols] : [cols, rows], .f32))
        }
        let path = Scratch.path("fwd.gguf")
        let writer = try GGUFWriter(path: path, metadata: md, tensors: ts)
        for (n, _) in w.sorted(by: { $0.key < $1.key }) { try writer.writeTensor(gw[n]!.withUnsafeBytes { Array($0) }) }
        try writer.finish()
        let fwd = LlamaForward(try LlamaWeights.load(gguf: try GGUFFile(path: path), config: c))
        let got = try fwd.logits(tokens)
        Self.assertClose(got, Self.reference(c, w, tokens.map(Int.init)), "gguf vs hf reference")
        // the permuted weights with llama.cpp's interleaved RoPE are the same model
        Self.assertClose(got, Self.reference(c, gw, tokens.map(Int.init), interleavedRoPE: true), "gguf vs interleaved reference")
    }

    /// Long enough for several causal row blocks in attention (300: blocks of 64 rows in the projections; 520: blocks
    /// of 256 rows), against the reference.
    func testLongSequencesMatchReference() throws {
        let c = Self.config(), w = Self.weights(c, seed: 5)
        let fwd = LlamaForward(try LlamaWeights.load(config: c, tensors: w))
        for T in [300, 520] {
            let tokens = (0..<T).map { (i: Int) -> Int32 in Int32((i * 37 + i / 7) % 64) }
            Self.assertClose(try fwd.logits(tokens), Self.reference(c, w, tokens.map(Int.init)), "T = \(T)")
        }
    }

    /// A prefill continued from a cache (P > 0, several row blocks), a reset cache reused, and logits written into a
    /// reused buffer all give the one-shot logits.
    func testContinuedPrefillAndReusedBuffersMatchOneShot() throws {
        let c = Self.config(), w = Self.weights(c, seed: 6)
        let fwd = LlamaForward(try LlamaWeights.load(config: c, tensors: w))
        let tokens = (0..<400).map { (i: Int) -> Int32 in Int32((i * 11 + 3) % 64) }
        let full = try fwd.logits(tokens)
        let cache = LlamaForward.KVCache(config: c, capacity: 400)
        var got = try fwd.logits(Array(tokens[0..<150]), cache: cache)
        got += try fwd.logits(Array(tokens[150...]), cache: cache)
        XCTAssertEqual(got.count, full.count)
        var worst: Float = 0
        for (a, b) in zip(got, full) { worst = max(worst, abs(a - b) / max(1, abs(b))) }
        XCTAssertLessThan(worst, 1e-4)
        // reset: the same cache and one output buffer serve two other sequences, then this one again
        var out: [Float] = []
        let shifted = tokens.map { (t: Int32) -> Int32 in (t + 1) % 64 }
        for seq in [Array(tokens.reversed()), shifted, tokens] {
            cache.reset()
            try fwd.logits(seq, cache: cache, logitRows: 200..<399, into: &out)
            XCTAssertEqual(cache.length, 400)
            let fresh = try fwd.logits(seq, logitRows: 200..<399)  // a new cache and a new buffer: the same bytes
            XCTAssertEqual(out.count, fresh.count)
            XCTAssertTrue(out == fresh, "largest difference \(zip(out, fresh).map { abs($0 - $1) }.max() ?? 0)")
        }
    }

    /// The attention work plan: every (head, row block) once, the threads' costs within one block of each other.
    func testAttentionPlanCoversEveryBlockOnceAndBalances() {
        let cases: [(heads: Int, T: Int, P: Int, threads: Int)] = [(9, 512, 0, 2), (9, 512, 0, 3), (4, 300, 100, 2), (32, 2048, 0, 2), (3, 1, 40, 2), (2, 0, 0, 2)]
        for (heads, T, P, threads) in cases {
            let plan = LlamaForward.attentionPlan(heads: heads, rows: T, past: P, threads: threads)
            let b = LlamaForward.attentionRowBlock
            let all = plan.flatMap { $0 }
            var want: Set<[Int]> = []
            for h in 0..<heads { for t0 in stride(from: 0, to: T, by: b) { want.insert([h, t0]) } }
            XCTAssertEqual(Set(all.map { [$0.head, $0.firstRow] }), want)
            XCTAssertEqual(all.count, want.count)
            XCTAssertLessThanOrEqual(plan.count, max(1, threads))
            func cost(_ t: LlamaForward.AttentionTask) -> Int { let t1 = min(T, t.firstRow + b); return (t1 - t.firstRow) * (P + t1) }
            let loads = plan.map { $0.reduce(0) { $0 + cost($1) } }
            let biggest = all.map(cost).max() ?? 0
            XCTAssertLessThanOrEqual((loads.max() ?? 0) - (loads.min() ?? 0), biggest, "heads \(heads) T \(T) P \(P): loads \(loads)")
        }
    }
}
