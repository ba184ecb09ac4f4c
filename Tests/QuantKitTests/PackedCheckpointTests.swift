import Calibration
import Checkpoints
import XCTest
import Evaluation
import Llama
import ModelFormats
import Quantization
import TensorCore
@testable import QuantKit

/// Packed checkpoints on the golden micro model: each layout written by `quantize` loads back to exactly the
/// dequantized integer codes (and the untouched tensors bit for bit); AWQ's folding leaves the function unchanged;
/// GPTQ and AWQ lower the layer-output error of round-to-nearest on the same scheme.
final class PackedCheckpointTests: XCTestCase {
    let text = Support.validText

    func testEveryLayoutLoadsBackToTheCodes() throws {
        let src = try HFCheckpoint.open(Support.microHF)
        let scheme = IntegerScheme(bits: 4, groupSize: 32, sym: false)
        for layout in PackedLayout.allCases {
            let dir = Support.tmpDir() + "/out"
            var o = PackedQuantizer.Options()
            o.layout = layout; o.scheme = scheme
            let r = try PackedQuantizer.quantize(Support.microHF, to: dir, options: o)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + ".partial"))
            let cfg = try JSONParser.parse(file: dir + "/config.json")
            XCTAssertEqual(cfg["quantization_config"]?["quant_method"]?.string, layout == .compressedTensors ? "compressed-tensors" : layout.rawValue)
            XCTAssertEqual(FileManager.default.fileExists(atPath: dir + "/quantize_config.json"), layout == .gptq)
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/tokenizer.json"))
            let m = try LoadedModel.load(dir)
            let w = m.forward.w
            for l in 0..<w.config.numLayers {
                let L = try w.layer(l)
                for lin in LlamaLinear.allCases {
                    let W = try src.weights.floats(lin.hfName(layer: l))
                    let cols = lin == .down ? 96 : 32
                    let q = try IntegerQuant.rtn(W, rows: W.count / cols, cols: cols, scheme: scheme, quantizer: .gptq)
                    XCTAssertEqual(L[lin], q.dequantized(), "\(layout) layer \(l) \(lin)")
                }
                XCTAssertEqual(L[.attn], try src.weights.floats("model.layers.\(l).input_layernorm.weight"))
            }
            XCTAssertEqual(try w.embeddingTable(), try src.weights.floats("model.embed_tokens.weight"))
            XCTAssertEqual(w.lmHead ?? [], try src.weights.floats("lm_head.weight"))
            XCTAssertLessThan(r.checkpoint.bitsPerWeight, 16)
            // inspect counts the weights the packed linears stand for (it counted their int32 words: 27.6 bpw on a
            // real model), so the parameters are the unpacked source's, and the bytes are the files' tensor bytes
            let (ins, source) = (try Inspector.inspect(dir), try Inspector.inspect(Support.microHF))
            XCTAssertEqual(ins.totalElements, source.totalElements, "\(layout)")
            let gIdx = ins.tensors.filter { $0.name.hasSuffix("g_idx") || $0.name.hasSuffix("weight_shape") }.reduce(0) { $0 + $1.bytes }
            XCTAssertEqual(ins.totalBytes, ins.tensors.reduce(0) { $0 + $1.bytes } - gIdx)
            XCTAssertNotNil(ins.packed)
            XCTAssertTrue(ins.text().contains("packed: \(layout.rawValue)"), ins.text())
            // export: a plain f32 checkpoint with the same (dequantized) weights, no quantization_config
            let plain = Support.tmpDir() + "/plain"
            _ = try Exporter.export(dir, to: plain, dtype: .f32)
            XCTAssertNil(try JSONParser.parse(file: plain + "/config.json")["quantization_config"])
            let e = try LoadedModel.load(plain).forward.w
            for l in 0..<e.config.numLayers {
                let (L, W) = (try e.layer(l), try w.layer(l))
                for lin in LlamaLinear.allCases { XCTAssertEqual(L[lin], W[lin], "\(layout) export \(lin)") }
                XCTAssertEqual(L[.ffn], W[.ffn])
            }
            XCTAssertEqual(try e.embeddingTable(), try w.embeddingTable())
            // not a second time into the same directory, and not from a packed checkpoint
            XCTAssertThrowsError(try PackedQuantizer.quantize(Support.microHF, to: dir, options: o)) { XCTAssertTrue("\($0)".contains("not empty"), "\($0)") }
            XCTAssertThrowsError(try PackedQuantizer.quantize(dir, to: dir + "2", options: o)) { XCTAssertTrue("\($0)".contains("already quantized"), "\($0)") }
        }
    }

    /// With Q = identity, AWQ's scales and clips must leave the model's logits unchanged (the folds are exact).
    func testAWQFoldingPreservesTheFunction() throws {
        let ref = try LoadedModel.load(Support.microHF), m = try LoadedModel.load(Support.microHF)
        var o = AWQPipeline.Options()
        o.data.calibration = [text]; o.data.samples = 8; o.data.seqLen = 64; o.groupSize = 32
        o.identityCandidate = false  // with Q = identity no scaling beats none; the grid alone makes it fold some scales
        let rep = try AWQPipeline.run(m, options: o, Q: { _, _ in { W, _, _ in W } }) { l, L, _ in m.forward.w.replaceLayer(l, with: L) }
        XCTAssertEqual(rep.count, 2)
        XCTAssertNotEqual(try m.forward.w.layer(0)[.attn], try ref.forward.w.layer(0)[.attn], "scales were folded into the norm")
        let toks = ref.tokenizer.encode("The quick brown fox jumps over the lazy dog, and then some more words follow.", addSpecial: true, parseSpecial: false)
        let a = try ref.forward.logits(toks), b = try m.forward.logits(toks)
        let scale = a.map(abs).max() ?? 1
        for i in a.indices { XCTAssertEqual(a[i], b[i], accuracy: 1e-4 * scale) }
    }

    func testCalibratedMethodsLowerTheOutputErrorOfRoundToNearest() throws {
        let scheme = IntegerScheme(bits: 4, groupSize: 32, sym: true)
        // GPTQ: per linear, its output error on the calibration inputs is below round-to-nearest's
        var o = PackedQuantizer.Options()
        o.method = .gptq; o.scheme = scheme
        o.gptq.data.calibration = [text]; o.gptq.data.samples = 16; o.gptq.data.seqLen = 128
        let dir = Support.tmpDir()
        let g = try PackedQuantizer.quantize(Support.microHF, to: dir + "/gptq", options: o)
        XCTAssertEqual(g.linears.count, 14)
        for l in g.linears { XCTAssertLessThan(l.outputMSE, l.outputMSERTN, l.name) }
        // AWQ: every searched block's loss at the choice is at most the unscaled one (the identity is a candidate)
        o.method = .awq; o.layout = .awq
        o.awq.data.calibration = [text]; o.awq.data.samples = 16; o.awq.data.seqLen = 128
        let a = try PackedQuantizer.quantize(Support.microHF, to: dir + "/awq", options: o)
        XCTAssertEqual(a.awqLayers.count, 2)
        for l in a.awqLayers { for r in l.ratios { XCTAssertLessThanOrEqual(r.lossBest, r.lossPlain, "layer \(l.layer) \(r.group)") } }
        XCTAssertTrue(a.awqLayers.flatMap(\.ratios).contains { $0.lossBest < $0.lossPlain }, "some scaling helps")
        // the scaled norms keep f16 precision (not bf16's), and the config says float16
        let awqCk = try HFCheckpoint.open(dir + "/awq")
        XCTAssertEqual(try JSONParser.parse(file: dir + "/awq/config.json")["torch_dtype"]?.string, "float16")
        XCTAssertEqual(awqCk.weights.info("model.layers.0.input_layernorm.weight")?.dtype, .f16)
        XCTAssertEqual(awqCk.weights.info("model.embed_tokens.weight")?.dtype, .f16)
        // both evaluate against the reference on other text, with lower KLD than RTN on the same scheme
        o.method = .rtn; o.layout = .gptq
        _ = try PackedQuantizer.quantize(Support.microHF, to: dir + "/rtn", options: o)
        let evalText = Support.repo.appendingPathComponent("Formats/golden/tokenize/inputs/wiki.test.first50k.txt").path
        let r = try Evaluator.run(reference: Support.microHF, candidates: [dir + "/rtn", dir + "/gptq", dir + "/awq"], textFile: evalText, ctx: 128, chunks: 8, protocol: .llamaCpp)
        let rtn = r.candidates[0].result.kldMean
        XCTAssertLessThan(r.candidates[1].result.kldMean, rtn, "GPTQ vs RTN")
        XCTAssertLessThan(r.candidates[2].result.kldMean, rtn, "AWQ vs RTN")
    }
}

/// GPTQ v1 stores zero − 1: asymmetric GPTQ checkpoints stay v1 with every zero point floored at 1 (as GPTQModel
/// writes them), whatever the data; gptq_v2 only when asked, with zeros as they come.
final class GPTQCheckpointFormatTests: XCTestCase {
    func testZeroPointsAreFlooredForV1AndV2IsOnlyWrittenWhenAsked() throws {
        // a group of non-negative values has zero point 0 on the min-max grid, 1 with the floor
        let x: [Float] = [0.5, 1, 1.5, 2]
        let s = IntegerScheme(bits: 4, groupSize: -1, sym: false)
        var f = s
        f.zeroFloor = 1
        XCTAssertEqual(x.withUnsafeBufferPointer { IntegerQuant.params($0, scheme: s, quantizer: .gptq) }.zero, 0)
        XCTAssertEqual(x.withUnsafeBufferPointer { IntegerQuant.params($0, scheme: f, quantizer: .gptq) }.zero, 1)
        XCTAssertEqual(x.withUnsafeBufferPointer { IntegerQuant.params($0, scheme: f, quantizer: .awq) }.zero, 1)
        // the floored zero keeps the whole range: the step widens to xmax / (maxq − 1), every value within half a step
        let (scale, zero) = x.withUnsafeBufferPointer { IntegerQuant.params($0, scheme: f, quantizer: .gptq) }
        XCTAssertEqual(scale, HalfFloat.roundF16(2 / 14))
        for v in x {
            let q = IntegerQuant.code(v, scale: scale, zero: zero, maxq: 15)
            XCTAssertLessThanOrEqual(abs(scale * Float(Int32(q) - zero) - v), scale / 2 * 1.001, "\(v)")
        }
        let dir = Support.tmpDir()
        for (v2, method) in [(false, PackedQuantizer.Method.rtn), (false, .gptq), (true, .rtn)] {
            var o = PackedQuantizer.Options()
            o.method = method
            o.scheme = IntegerScheme(bits: 4, groupSize: 32, sym: false)
            o.gptqV2 = v2
            o.gptq.data.calibration = [Support.validText]
            o.gptq.data.samples = 4; o.gptq.data.seqLen = 64
            let out = dir + "/\(method.rawValue)-\(v2)"
            _ = try PackedQuantizer.quantize(Support.microHF, to: out, options: o)
            let qc = try JSONParser.parse(file: out + "/config.json")["quantization_config"]
            XCTAssertEqual(qc?["checkpoint_format"]?.string, v2 ? "gptq_v2" : "gptq")
            let ck = try HFCheckpoint.open(out)
            let reader = try XCTUnwrap(try PackedReader(configPath: out + "/config.json", weights: ck.weights))
            let q = try reader.linear("model.layers.0.mlp.down_proj")
            if !v2 { XCTAssertGreaterThanOrEqual(q.zeros.min() ?? 0, 1, "\(method)") }
        }
    }
}
