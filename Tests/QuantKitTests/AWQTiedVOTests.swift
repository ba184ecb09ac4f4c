@testable import Calibration
import Checkpoints
import Llama
import ModelFormats
import Quantization
import XCTest
@testable import QuantKit

/// AWQ's v → o scaling under GQA: one scale per KV channel, dividing v's row and bias, multiplying every o_proj column
/// that reads the channel (every query head of its KV group). AutoAWQ and llm-compressor skip the pair; the fold is exact.
final class AWQTiedVOTests: XCTestCase {
    func testEachOColumnReadsTheChannelOfItsKVHead() throws {
        var c = LlamaConfig(hiddenSize: 64, intermediateSize: 128, numLayers: 1, numHeads: 4, numKVHeads: 2, vocabSize: 10,
                            headDim: 16)
        let vo = try XCTUnwrap(AWQPipeline.ScalingGroup.llama.first { $0.name == "o" })
        let tie = try XCTUnwrap(vo.tie(c))
        XCTAssertEqual(tie.count, 64)
        XCTAssertEqual(vo.channels(c), 32)
        // query heads 0 and 1 read KV head 0 (channels 0..<16), heads 2 and 3 KV head 1 (16..<32)
        XCTAssertEqual(Array(tie[0..<16]), Array(0..<16))
        XCTAssertEqual(Array(tie[16..<32]), Array(0..<16))
        XCTAssertEqual(Array(tie[32..<48]), Array(16..<32))
        XCTAssertEqual(Array(tie[48..<64]), Array(16..<32))
        // a column statistic per channel: the mean over the columns that read it
        let stat = (0..<64).map { Float($0) }
        let perChannel = AWQPipeline.perChannel(stat, tie: tie, channels: 32)
        XCTAssertEqual(perChannel[0], (0 + 16) / 2)
        XCTAssertEqual(perChannel[16], (32 + 48) / 2)
        XCTAssertEqual(perChannel[31], (47 + 63) / 2)
        // without GQA the tie is the identity, and the statistic is unchanged
        c.numKVHeads = 4
        XCTAssertEqual(vo.tie(c), Array(0..<64))
        XCTAssertEqual(AWQPipeline.perChannel(stat, tie: Array(0..<64), channels: 64), stat)
        // heads that do not divide into KV groups: no fold
        c.numKVHeads = 3
        XCTAssertNil(vo.tie(c))
        XCTAssertEqual(AWQPipeline.ScalingGroup.llama.filter { $0.applies(c) }.map(\.name), ["qkv", "mlp", "down"])
    }

    /// Qwen2 (two KV heads, a bias on v): with an exact Q (an F32 plan) every grid scale is folded, v's bias included,
    /// and the written GGUF computes the source's function.
    func testVAndItsBiasFoldIntoAnExactF32File() throws {
        let src = try MicroQwen2GoldenTests.makeCheckpoint()
        let dir = Support.tmpDir()
        var o = AWQPipeline.Options()
        o.data.calibration = [Support.validText]; o.data.samples = 4; o.data.seqLen = 32; o.groupSize = 32
        o.identityCandidate = false   // with an exact Q, no scaling would be as good as any: the grid alone folds scales
        let (_, reports) = try AWQPipeline.quantizeToGGUF(source: src, output: dir + "/awq.gguf", options: o,
                                                          quantizeOptions: .init(preset: .named("F32")!))
        XCTAssertEqual(reports.map { $0.ratios.map(\.group) }, [["qkv", "o", "mlp", "down"], ["qkv", "o", "mlp", "down"]])
        let m = try LoadedModel.load(src), out = try LoadedModel.load(dir + "/awq.gguf")
        for l in 0..<2 {
            let a = try m.forward.w.layer(l), b = try out.forward.w.layer(l)
            XCTAssertEqual(b.bias(.v).count, 16)
            XCTAssertNotEqual(b.bias(.v), a.bias(.v), "layer \(l): v's bias divided by the KV-channel scales")
            XCTAssertEqual(b.bias(.q), a.bias(.q), "layer \(l): q's bias as it was")
            XCTAssertNotEqual(b[.o], a[.o], "layer \(l): o's columns scaled")
        }
        let toks = m.tokenizer.encode("def f(x):\n    return x + 1", addSpecial: true, parseSpecial: false)
        let ref = try m.forward.logits(toks), got = try out.forward.logits(toks)
        let scale = ref.map(abs).max() ?? 1
        for i in ref.indices { XCTAssertEqual(ref[i], got[i], accuracy: 1e-4 * scale) }
    }

    /// The packed AWQ checkpoint stores v's folded bias (at f16, beside the scaled norms), as the same AWQ run gives it.
    func testPackedCheckpointStoresTheFoldedBias() throws {
        let src = try MicroQwen2GoldenTests.makeCheckpoint()
        let dir = Support.tmpDir()
        var o = PackedQuantizer.Options()
        o.method = .awq; o.layout = .awq
        o.scheme = IntegerScheme(bits: 4, groupSize: 32, sym: false)
        o.awq.data.calibration = [Support.validText]; o.awq.data.samples = 4; o.awq.data.seqLen = 32
        o.awq.identityCandidate = false
        _ = try PackedQuantizer.quantize(src, to: dir + "/awq", options: o)
        var a = o.awq
        a.groupSize = 32
        var folded: [LlamaWeights.Layer] = []
        let m = try LoadedModel.load(src)
        _ = try AWQPipeline.run(m, options: a, Q: { _, _ in { W, rows, cols in
            try IntegerQuant.rtn(W, rows: rows, cols: cols, scheme: o.scheme, quantizer: .awq).dequantized()
        } }) { _, L, _ in folded.append(L) }
        let ck = try HFCheckpoint.open(dir + "/awq")
        for l in 0..<2 {
            let name = LlamaLinear.v.biasHFName(layer: l)
            XCTAssertEqual(ck.weights.info(name)?.dtype, .f16)
            let stored = try ck.weights.floats(name)
            let expected = folded[l].bias(.v).map { Float(Float16($0)) }
            XCTAssertEqual(stored, expected, "layer \(l)")
            XCTAssertNotEqual(stored, try m.forward.w.layer(l).bias(.v).map { Float(Float16($0)) }, "layer \(l): folded")
        }
    }
}
