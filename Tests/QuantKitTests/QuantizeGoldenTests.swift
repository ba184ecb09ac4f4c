import Checkpoints
import XCTest
import ModelFormats
import Quantization
import TensorCore
@testable import QuantKit

/// `quantize` against llama-quantize (llama.cpp 0c1e570): the same input gives the same file, byte for byte,
/// for every type with `--pure`, and with an importance matrix; per-tensor types equal llama-quantize's for
/// every preset. The input is Formats/golden/micro-llama-k-bf16.gguf: the golden micro-llama-k-f32.gguf with its
/// matrices stored as BF16 (its values are exactly bf16, so quantizing either gives the same bytes).
final class QuantizeGoldenTests: XCTestCase {
    let input = Support.microK

    func quantize(_ type: String, imatrix: String? = nil, pure: Bool = true) throws -> String {
        let out = Support.tmpDir() + "/q-\(type).gguf"
        var o = GGUFQuantizer.Options(preset: QuantPreset.named(type)!)
        o.overrides.pure = pure
        if let imatrix {
            // llama-quantize records the path as given; the goldens were made inside imatrix/ with a bare name
            let local = Support.tmpDir() + "/" + imatrix
            try FileManager.default.copyItem(atPath: Support.golden.appendingPathComponent(imatrix).path, toPath: local)
            FileManager.default.changeCurrentDirectoryPath((local as NSString).deletingLastPathComponent)
            o.imatrixPath = imatrix
        }
        _ = try GGUFQuantizer.quantize(input, to: out, options: o)
        return out
    }

    func testPureTypesAreByteIdenticalToLlamaQuantize() throws {
        for t in ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q4_K_S", "Q5_K_S", "Q6_K", "IQ4_NL", "IQ4_XS", "TQ2_0", "TQ1_0"] {
            let out = try quantize(t)
            XCTAssertEqual(try Support.sha256(out), try Support.goldenSHA("quants/micro-llama-k-pure-\(t).gguf"), "--pure \(t)")
        }
    }

    func testImatrixQuantizationIsByteIdenticalToLlamaQuantize() throws {
        for t in ["Q4_K_S", "Q3_K_S", "Q2_K", "IQ4_XS", "IQ4_NL", "Q4_0", "Q5_K_S", "Q6_K"] {
            let out = try quantize(t, imatrix: "micro-llama-k.imatrix.gguf")
            XCTAssertEqual(try Support.sha256(out), try Support.goldenSHA("imatrix/micro-llama-k-imat-pure-\(t).gguf"), "--imatrix --pure \(t)")
            // the legacy .dat imatrix gives the same tensors; only quantize.imatrix.file differs
            let dat = try quantize(t, imatrix: "micro-llama-k.imatrix.dat")
            let a = try GGUFFile(path: out), b = try GGUFFile(path: dat)
            for (x, y) in zip(a.tensors, b.tensors) { XCTAssertTrue(Array(a.bytes(of: x)) == Array(b.bytes(of: y)), "\(t) \(x.name)") }
            XCTAssertEqual(b["quantize.imatrix.file"], .string("micro-llama-k.imatrix.dat"))
            XCTAssertEqual(b["quantize.imatrix.entries_count"], .uint32(14))
            XCTAssertEqual(b["quantize.imatrix.chunks_count"], .uint32(20))
            XCTAssertEqual(b["quantize.imatrix.dataset"], .string("wiki.valid.first20k.txt"))
        }
    }

    func testImatrixChangesTheResult() throws {
        let a = try GGUFFile(path: try quantize("Q4_K_S")), b = try GGUFFile(path: try quantize("Q4_K_S", imatrix: "micro-llama-k.imatrix.gguf"))
        let t = a.tensor("blk.0.attn_q.weight")!
        XCTAssertFalse(Array(a.bytes(of: t)) == Array(b.bytes(of: b.tensor(t.name)!)))
    }

    func goldenTypes(_ file: String) throws -> [String: [String: String]] {
        let j = try JSONParser.parse(file: Support.golden.appendingPathComponent(file).path)
        var out: [String: [String: String]] = [:]
        for (preset, m) in j.object ?? [] {
            var mm: [String: String] = [:]
            for (k, v) in m.object ?? [] { mm[k] = v.string }
            out[preset] = mm
        }
        return out
    }

    func plannedTypes(_ src: String, _ preset: String, pure: Bool = false) throws -> [String: String] {
        var o = GGUFQuantizer.Options(preset: QuantPreset.named(preset)!)
        o.overrides.pure = pure
        let p = try GGUFQuantizer.plan(src, options: o)
        return Dictionary(uniqueKeysWithValues: p.tensors.map { ($0.name, $0.to.name) })
    }

    func testPresetTensorTypesTwoLayers() throws {
        for (preset, want) in try goldenTypes("preset-tensor-types.json") {
            XCTAssertEqual(try plannedTypes(input, preset), want, preset)
        }
        for (preset, want) in try goldenTypes("pure-tensor-types.json") {
            XCTAssertEqual(try plannedTypes(input, preset, pure: true), want, "pure \(preset)")
        }
    }

    func testPresetTensorTypesShapeFallbacksHidden32() throws {
        let f32 = Support.tmpDir() + "/micro-llama-hf.gguf"
        _ = try Converter.convert(Support.microHF, to: f32, outType: .f32)
        for (preset, want) in try goldenTypes("preset-tensor-types-h32.json") {
            XCTAssertEqual(try plannedTypes(f32, preset), want, preset)
        }
        for (preset, want) in try goldenTypes("pure-fallback-h32.json") {
            XCTAssertEqual(try plannedTypes(f32, preset, pure: true), want, "pure \(preset)")
        }
        // and the file itself quantizes with those fallbacks
        var o = GGUFQuantizer.Options(preset: QuantPreset.named("Q4_K_M")!)
        o.overrides.pure = true
        let r = try GGUFQuantizer.quantize(f32, to: Support.tmpDir() + "/fb.gguf", options: o)
        XCTAssertEqual(r.fallbacks, 16)
    }

    /// The 8-layer golden model is not shipped; its tensor names and shapes are those of micro-llama-k with
    /// 8 layers, which is all the type choice depends on.
    func testPresetTensorTypesEightLayers() throws {
        let g = try GGUFFile(path: input)
        let path = Support.tmpDir() + "/micro-llama-k8.gguf"
        var md = g.metadata.map { ($0.key, $0.value) }
        md = md.map { $0.0 == "llama.block_count" ? ($0.0, .uint32(8)) : $0 }
        var ts: [(name: String, ne: [Int], type: GGMLType)] = []
        for t in g.tensors where !t.name.hasPrefix("blk.") { ts.append((t.name, t.ne, t.type)) }
        for l in 0..<8 { for t in g.tensors where t.name.hasPrefix("blk.0.") { ts.append((t.name.replacingOccurrences(of: "blk.0.", with: "blk.\(l)."), t.ne, t.type)) } }
        let w = try GGUFWriter(path: path, metadata: md, tensors: ts)
        for t in w.tensors { try w.writeTensor([UInt8](repeating: 0, count: t.byteCount)) }
        try w.finish()
        for (preset, want) in try goldenTypes("preset-tensor-types-8layer.json") {
            XCTAssertEqual(try plannedTypes(path, preset), want, preset)
        }
    }

    /// REFERENCE.md's worked examples, from names and shapes alone.
    func plan(layers: Int, hidden: Int, ffn: Int, heads: Int, kvHeads: Int, vocab: Int, tied: Bool, preset: String) throws -> [String: GGMLType] {
        let hd = hidden / heads
        var ts: [(String, [Int])] = [("token_embd.weight", [hidden, vocab]), ("output_norm.weight", [hidden])]
        if !tied { ts.append(("output.weight", [hidden, vocab])) }
        for l in 0..<layers {
            ts += [("blk.\(l).attn_q.weight", [hidden, heads * hd]), ("blk.\(l).attn_k.weight", [hidden, kvHeads * hd]),
                   ("blk.\(l).attn_v.weight", [hidden, kvHeads * hd]), ("blk.\(l).attn_output.weight", [heads * hd, hidden]),
                   ("blk.\(l).ffn_gate.weight", [hidden, ffn]), ("blk.\(l).ffn_up.weight", [hidden, ffn]),
                   ("blk.\(l).ffn_down.weight", [ffn, hidden]), ("blk.\(l).attn_norm.weight", [hidden]), ("blk.\(l).ffn_norm.weight", [hidden])]
        }
        ts.sort { GGUFQuantizer.comparerOrder($0.0, $1.0) }
        var policy = try TensorTypePolicy(preset: QuantPreset.named(preset)!, overrides: TypeOverrides(), tensorNames: ts.map(\.0),
                                          nLayer: layers, nHead: heads, nHeadKV: kvHeads, hasImatrix: false)
        var out: [String: GGMLType] = [:]
        for (n, ne) in ts { out[n] = policy.type(for: n, ne: ne, current: ne.count == 1 ? .f32 : .f16) }
        return out
    }

    func testTinyLlamaQ4KMTable() throws {
        let p = try plan(layers: 22, hidden: 2048, ffn: 5632, heads: 32, kvHeads: 4, vocab: 32000, tied: false, preset: "Q4_K_M")
        let more: Set<Int> = [0, 1, 4, 7, 10, 13, 16, 19, 20, 21]
        for l in 0..<22 {
            XCTAssertEqual(p["blk.\(l).attn_v.weight"], more.contains(l) ? .q6_K : .q4_K, "attn_v \(l)")
            XCTAssertEqual(p["blk.\(l).ffn_down.weight"], more.contains(l) ? .q6_K : .q4_K, "ffn_down \(l)")
            for n in ["attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"] { XCTAssertEqual(p["blk.\(l).\(n).weight"], .q4_K) }
            XCTAssertEqual(p["blk.\(l).attn_norm.weight"], .f32)
        }
        XCTAssertEqual(p["output.weight"], .q6_K)
        XCTAssertEqual(p["token_embd.weight"], .q4_K)
    }

    func testSmolLM2ShapesFallBack() throws {
        let p = try plan(layers: 30, hidden: 576, ffn: 1536, heads: 9, kvHeads: 3, vocab: 49152, tied: true, preset: "Q4_K_M")
        let more: Set<Int> = [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]
        for l in 0..<30 {
            XCTAssertEqual(p["blk.\(l).attn_v.weight"], more.contains(l) ? .q8_0 : .q5_0, "attn_v \(l)")
            XCTAssertEqual(p["blk.\(l).ffn_down.weight"], more.contains(l) ? .q6_K : .q4_K, "ffn_down \(l)")
            for n in ["attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"] { XCTAssertEqual(p["blk.\(l).\(n).weight"], .q5_0) }
        }
        XCTAssertEqual(p["token_embd.weight"], .q8_0)
        let q40 = try plan(layers: 30, hidden: 576, ffn: 1536, heads: 9, kvHeads: 3, vocab: 49152, tied: true, preset: "Q4_0")
        XCTAssertEqual(q40["token_embd.weight"], .q8_0)
        XCTAssertEqual(q40["blk.3.ffn_down.weight"], .q4_0)
        let q80 = try plan(layers: 30, hidden: 576, ffn: 1536, heads: 9, kvHeads: 3, vocab: 49152, tied: true, preset: "Q8_0")
        XCTAssertTrue(q80.filter { !$0.key.contains("norm") }.values.allSatisfy { $0 == .q8_0 })
    }

    func testOverrides() throws {
        var o = GGUFQuantizer.Options(preset: QuantPreset.named("Q4_K_M")!)
        o.overrides.tensorTypes = [("attn_(q|k)", .q8_0), ("attn_q", .q2_K)]
        o.overrides.outputTensorType = .f16
        o.overrides.tokenEmbeddingType = .q6_K
        let p = try GGUFQuantizer.plan(input, options: o)
        let m = Dictionary(uniqueKeysWithValues: p.tensors.map { ($0.name, $0.to) })
        XCTAssertEqual(m["blk.0.attn_q.weight"], .q8_0)  // first match wins
        XCTAssertEqual(m["blk.1.attn_k.weight"], .q8_0)
        XCTAssertEqual(m["output.weight"], .f16)
        XCTAssertEqual(m["token_embd.weight"], .q6_K)
        XCTAssertEqual(m["blk.0.attn_norm.weight"], .f32)
        o = GGUFQuantizer.Options(preset: QuantPreset.named("Q4_0")!)
        o.overrides.leaveOutputTensor = true
        let p2 = try GGUFQuantizer.plan(input, options: o)
        XCTAssertEqual(p2.tensors.first { $0.name == "output.weight" }?.to, .bf16)
        XCTAssertEqual(p2.metadata.suffix(2).map(\.0), ["general.quantization_version", "general.file_type"])
        XCTAssertEqual(p2.metadata.last?.1, .uint32(2))
    }

    func testQuantizeFromHFCheckpointEqualsConvertThenQuantize() throws {
        let dir = Support.tmpDir()
        _ = try Converter.convert(Support.microHF, to: dir + "/micro-llama-hf.gguf", outType: .bf16)
        let o = GGUFQuantizer.Options(preset: QuantPreset.named("Q8_0")!)
        _ = try GGUFQuantizer.quantize(dir + "/micro-llama-hf.gguf", to: dir + "/a.gguf", options: o)
        _ = try GGUFQuantizer.quantize(Support.microHF, to: dir + "/b.gguf", options: o)
        XCTAssertEqual(try Support.sha256(dir + "/a.gguf"), try Support.sha256(dir + "/b.gguf"))
    }
}
