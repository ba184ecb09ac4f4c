import Llama
import XCTest
import ModelFormats
import TensorCore
@testable import Evaluation
@testable import Llama

final class PerplexityTests: XCTestCase {
    func testChunkingFollowsLlamaCpp() throws {
        let c = try Perplexity.chunking(tokens: 1300, ctx: 512, chunks: nil, protocol: .llamaCpp)
        XCTAssertEqual(c.starts, [0, 512])  // leftover dropped
        XCTAssertEqual(c.first, 256)         // 255 scored per chunk: logits 256...510
        XCTAssertEqual(try Perplexity.chunking(tokens: 5000, ctx: 512, chunks: 3, protocol: .llamaCpp).starts.count, 3)
        XCTAssertThrowsError(try Perplexity.chunking(tokens: 1000, ctx: 512, chunks: nil, protocol: .llamaCpp))
        XCTAssertEqual(try Perplexity.chunking(tokens: 5000, ctx: 2048, chunks: nil, protocol: .paper).first, 0)
    }

    func testStatisticsByHand() {
        var r = EvalResult(name: "x")
        r.nll = [1, 2, 3]
        XCTAssertEqual(r.ppl, exp(2), accuracy: 1e-12)
        // sqrt((E[x²] − E[x]²)/(n−1)) · PPL = sqrt((14/3 − 4)/2) · e²
        XCTAssertEqual(r.pplError, ((14.0 / 3 - 4) / 2).squareRoot() * exp(2), accuracy: 1e-12)
        r.kld = [0, 0.1, 0.2, 0.3, 10]
        XCTAssertEqual(r.kldMean, 2.12, accuracy: 1e-12)
        XCTAssertEqual(r.kldQuantile(0.5), 0.2)
        XCTAssertEqual(r.kldQuantile(1.0), 10)
    }

    func testNLLShiftGroupsByReferenceProbabilityAddUpToThePPLRatio() {
        // reference probabilities of the correct token, and the candidate's NLL change on each
        let p: [Double] = [0.005, 0.02, 0.05, 0.3, 0.6, 1, 0.9]
        let shift: [Double] = [-0.2, 0.1, 0.3, 0.05, -0.1, 0.4, 0.2]
        var ref = EvalResult(name: "ref"), cand = EvalResult(name: "cand")
        ref.nll = p.map { -log($0) }
        cand.nll = zip(ref.nll, shift).map { $0 + $1 }
        let g = NLLShiftBin.bins(reference: ref.nll, candidate: cand.nll)
        XCTAssertEqual(g.map(\.lower), [0, 0.01, 0.1, 0.5])
        XCTAssertEqual(g.map(\.upper), [0.01, 0.1, 0.5, 1])
        XCTAssertEqual(g.map(\.tokens), [1, 2, 1, 3])  // p = 1 falls in the last group
        let means: [Double] = [-0.2, (0.1 + 0.3) / 2, 0.05, (-0.1 + 0.4 + 0.2) / 3]
        for (a, b) in zip(g.map(\.meanShift), means) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        XCTAssertEqual(g[1].lnPPLRatioPart, 0.4 / 7, accuracy: 1e-12)
        // the parts add up to ln(PPL_cand / PPL_ref), computed from the perplexities
        XCTAssertEqual(g.map(\.lnPPLRatioPart).reduce(0, +), log(cand.ppl / ref.ppl), accuracy: 1e-12)
        // a candidate equal to the reference shifts nothing; an empty group has mean 0
        let same = NLLShiftBin.bins(reference: [0.1, 0.2], candidate: [0.1, 0.2])
        XCTAssertEqual(same.map(\.tokens), [0, 0, 0, 2])
        XCTAssertTrue(same.allSatisfy { $0.meanShift == 0 && $0.lnPPLRatioPart == 0 })
    }

    func testLogSoftmaxAndKLDOfIdenticalModelsIsZero() throws {
        let c = ForwardReferenceFixture.config()
        let fwd = LlamaForward(try LlamaWeights.load(config: c, tensors: ForwardReferenceFixture.weights(c)))
        var rng: UInt32 = 7
        let tokens: [Int32] = (0..<96).map { _ in rng = rng &* 1664525 &+ 1013904223; return Int32(rng >> 26) }
        let (ref, cands) = try Perplexity.evaluate(reference: .model(fwd), candidates: [("same", fwd)], tokens: tokens, bos: 1, ctx: 32, chunks: nil, protocol: .llamaCpp)
        XCTAssertEqual(ref.count, 3 * 15)
        XCTAssertEqual(cands[0].nll, ref.nll)
        XCTAssertTrue(cands[0].kld.allSatisfy { $0 < 1e-12 })
        XCTAssertEqual(cands[0].sameTop1Percent, 100)
        // the NLL of one scored token, computed by hand from the logits
        var chunk = Array(tokens[0..<32]); chunk[0] = 1
        let logits = try fwd.logits(chunk)
        let row = Array(logits[(16 * 64)..<(17 * 64)])
        let m = row.max()!
        let lse = log(row.reduce(0.0) { $0 + exp(Double($1 - m)) }) + Double(m)
        XCTAssertEqual(ref.nll[0], lse - Double(row[Int(chunk[17])]), accuracy: 1e-4)
        // its entropy −Σ p log p, by hand; the candidate's (computed from its f32 exponentials) agrees
        let h = -row.reduce(0.0) { acc, x in let lp = Double(x) - lse; return acc + exp(lp) * lp }
        XCTAssertEqual(ref.entropy.count, ref.count)
        XCTAssertEqual(ref.entropy[0], h, accuracy: 1e-4)
        XCTAssertGreaterThan(h, 0.1)
        for (a, b) in zip(cands[0].entropy, ref.entropy) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        XCTAssertEqual(cands[0].meanEntropy, ref.meanEntropy, accuracy: 1e-6)
    }
}

/// A tiny random model shared with the Llama tests' shapes (hidden 32, 2 layers, 4/2 heads, vocab 64).
enum ForwardReferenceFixture {
    static func config() -> LlamaConfig {
        var c = LlamaConfig(hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4, numKVHeads: 2, vocabSize: 64)
        c.rmsNormEps = 1e-5
        return c
    }

    static func weights(_ c: LlamaConfig) -> [String: [Float]] {
        var s: UInt64 = 99
        func r() -> Float { s = s &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: s >> 11) % 2001 - 1000) / 1000 }
        let h = c.hiddenSize, f = c.intermediateSize, q = c.numHeads * c.headDim, kv = c.numKVHeads * c.headDim
        var w: [String: [Float]] = ["model.embed_tokens.weight": (0..<(64 * h)).map { _ in r() }, "lm_head.weight": (0..<(64 * h)).map { _ in 0.3 * r() },
                                    "model.norm.weight": [Float](repeating: 1, count: h)]
        for l in 0..<c.numLayers {
            let p = "model.layers.\(l)."
            w[p + "input_layernorm.weight"] = [Float](repeating: 1, count: h)
            w[p + "post_attention_layernorm.weight"] = [Float](repeating: 1, count: h)
            for (n, count) in [("self_attn.q_proj", q * h), ("self_attn.k_proj", kv * h), ("self_attn.v_proj", kv * h), ("self_attn.o_proj", h * q),
                               ("mlp.gate_proj", f * h), ("mlp.up_proj", f * h), ("mlp.down_proj", h * f)] {
                w[p + n + ".weight"] = (0..<count).map { _ in 0.3 * r() }
            }
        }
        return w
    }
}
