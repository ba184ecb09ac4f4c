import Calibration
import Checkpoints
import Llama
import ModelFormats
import Quantization
import XCTest
@testable import QuantKit

/// AWQ into GGUF with an importance matrix: each linear is quantized with the imatrix's E[x²] divided by the square of
/// the AWQ scale folded into its input columns (its inputs are x / s), not written with imatrix metadata it ignored.
final class AWQGGUFTests: XCTestCase {
    func testImatrixIsHonouredAfterFolding() throws {
        let src = Support.microK
        let imatrix = Support.golden.appendingPathComponent("micro-llama-k.imatrix.gguf").path
        let text = Support.validText
        let dir = Support.tmpDir()
        var o = AWQPipeline.Options()
        o.data.calibration = [text]; o.data.samples = 8; o.data.seqLen = 64; o.groupSize = 32
        var qo = GGUFQuantizer.Options(preset: .named("Q4_K_M")!)
        qo.imatrixPath = imatrix
        _ = try AWQPipeline.quantizeToGGUF(source: src, output: dir + "/awq-im.gguf", options: o, quantizeOptions: qo)
        // the same AWQ run, its folded layers and scales kept, quantized here the way the file should be
        let plan = try GGUFQuantizer.plan(src, options: qo)
        let typeOf = Dictionary(uniqueKeysWithValues: plan.tensors.map { ($0.name, $0.to) })
        let m = try LoadedModel.load(src)
        let c = m.forward.w.config
        var folded: [(Int, LlamaWeights.Layer, [LlamaInput: [Float]])] = []
        _ = try AWQPipeline.run(m, options: o, Q: { l, lin in
            let t = typeOf[lin.ggufName(layer: l)]!
            return { W, _, cols in
                let b = try GGMLCodec.quantize(t, W, rowLength: cols)
                return try b.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: W.count) }
            }
        }) { l, L, s in folded.append((l, L, s)) }
        XCTAssertTrue(folded.contains { !$0.2.isEmpty }, "AWQ scaled something")
        let g = try GGUFFile(path: dir + "/awq-im.gguf")
        XCTAssertEqual(g.metadata.first { $0.key == "quantize.imatrix.file" }?.value.string, imatrix)
        var divided = 0
        for (l, L, scales) in folded {
            for lin in LlamaLinear.allCases {
                let name = lin.ggufName(layer: l), t = typeOf[name]!, cols = lin.shape(c).cols
                let im = try XCTUnwrap(plan.imatrix[name])
                let s = scales[lin.input] ?? [Float](repeating: 1, count: cols)
                if scales[lin.input] != nil { divided += 1 }
                let expected = try GGMLCodec.quantize(t, try lin.toGGUF(L[lin], c), rowLength: cols,
                                                      imatrix: zip(im.prefix(cols), s).map { $0 / ($1 * $1) })
                let info = try XCTUnwrap(g.tensors.first { $0.name == name })
                XCTAssertTrue(Array(g.bytes(of: info)) == expected, "\(name)")
                // and not what the undivided imatrix gives, where AWQ scaled the inputs
                if scales[lin.input] != nil {
                    let undivided = try GGMLCodec.quantize(t, try lin.toGGUF(L[lin], c), rowLength: cols, imatrix: Array(im.prefix(cols)))
                    XCTAssertFalse(Array(g.bytes(of: info)) == undivided, "\(name): the imatrix was not divided by s²")
                }
            }
        }
        XCTAssertGreaterThan(divided, 0)
    }
}

/// AWQ then GPTQ: the scaled model GPTQ runs on (layers spilled to disk and read back) computes the original function
/// when nothing is clipped, and the GGUF stores its scaled norms with round-to-nearest's types and size.
final class AWQThenGPTQTests: XCTestCase {
    func testScaledModelKeepsTheFunctionAndTheFileKeepsThePlan() throws {
        let src = Support.microK
        let text = Support.validText
        let dir = Support.tmpDir()
        var a = AWQPipeline.Options()
        a.data.calibration = [text]; a.data.samples = 8; a.data.seqLen = 64; a.groupSize = 32; a.clip = false
        let m = try LoadedModel.load(src)
        let scaled = try AWQThenGPTQ.scale(m, options: a, output: dir + "/x", Q: { _, _ in { W, rows, cols in
            try IntegerQuant.rtn(W, rows: rows, cols: cols, scheme: IntegerScheme(bits: 4, groupSize: 32, sym: true), quantizer: .gptq).dequantized()
        } })
        XCTAssertTrue(scaled.scales.contains { !$0.isEmpty }, "AWQ scaled something")
        var changed = 0
        for l in 0..<2 {
            for n in LlamaNorm.allCases where try scaled.model.forward.w.layer(l)[n] != m.forward.w.layer(l)[n] { changed += 1 }
        }
        XCTAssertGreaterThan(changed, 0, "scales folded into some norm")
        let toks = m.tokenizer.encode("The quick brown fox jumps over the lazy dog, and then some more words follow.", addSpecial: true, parseSpecial: false)
        let ref = try m.forward.logits(toks), got = try scaled.model.forward.logits(toks)
        let scale = ref.map(abs).max() ?? 1
        for i in ref.indices { XCTAssertEqual(ref[i], got[i], accuracy: 1e-4 * scale) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x.awq.partial"), "the spill has no name")

        var g = GPTQPipeline.Options()
        g.data = a.data
        a.clip = true
        let preset = QuantPreset.named("Q4_K_M")!
        let (_, lin, layers) = try AWQThenGPTQ.quantizeToGGUF(source: src, output: dir + "/ag.gguf", preset: preset, gptq: g, awq: a)
        XCTAssertEqual(lin.count, 14)
        XCTAssertEqual(layers.count, 2)
        for l in lin { XCTAssertLessThan(l.outputMSE, l.outputMSERTN, l.name) }
        _ = try GGUFQuantizer.quantize(src, to: dir + "/rtn.gguf", options: .init(preset: preset))
        let f = try GGUFFile(path: dir + "/ag.gguf"), r = try GGUFFile(path: dir + "/rtn.gguf")
        XCTAssertEqual(f.tensors.map(\.type), r.tensors.map(\.type))
        XCTAssertEqual(f.file.size, r.file.size)
        let stored = try LoadedModel.load(dir + "/ag.gguf").forward.w
        let again = try AWQThenGPTQ.scale(m, options: a, output: dir + "/y", Q: { l, lin in
            let t = f.tensors.first { $0.name == lin.ggufName(layer: l) }!.type
            return { W, _, cols in
                let b = try GGMLCodec.quantize(t, W, rowLength: cols)
                return try b.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: W.count) }
            }
        })
        for l in 0..<2 {
            // the scaled norms where GPTQ kept AWQ's scales, the source's where it did better without them
            let kept = try XCTUnwrap(layers[l].keptUnderGPTQ, "layer \(l) judged")
            let vectors = try stored.layer(l).vectors(layer: l)
            let expected = kept ? again.vectors[l] : try m.forward.w.layer(l).vectors(layer: l)
            XCTAssertEqual(vectors.map(\.name), expected.map(\.name))
            XCTAssertEqual(vectors.map(\.values), expected.map(\.values), "layer \(l)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/ag.gguf.awq.state"))
    }

    /// A resumed AWQ phase gives GPTQ the same scaled model as an uninterrupted one, a Qwen2 model's q/k/v biases
    /// included (restored layers once lost them, so GPTQ calibrated those layers on a model without biases).
    func testResumedAWQPhaseKeepsEveryTensorOfTheLayers() throws {
        let src = try MicroQwen2GoldenTests.makeCheckpoint()
        let dir = Support.tmpDir()
        var a = AWQPipeline.Options()
        a.data.calibration = [Support.validText]; a.data.samples = 4; a.data.seqLen = 32; a.groupSize = 32
        a.statePath = dir + "/x"
        let m = try LoadedModel.load(src)
        let Q: (Int, LlamaLinear) -> AWQ.PseudoQuantize = { _, _ in { W, rows, cols in
            try IntegerQuant.rtn(W, rows: rows, cols: cols, scheme: IntegerScheme(bits: 4, groupSize: 32, sym: true), quantizer: .gptq).dequantized()
        } }
        let fresh = try AWQThenGPTQ.scale(m, options: a, output: dir + "/x", Q: Q)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/x.awq.state"), "state kept until the whole run is done")
        a.resume = true   // every layer comes back from the state
        let resumed = try AWQThenGPTQ.scale(m, options: a, output: dir + "/x", Q: Q)
        for l in 0..<2 {
            let f = try fresh.model.forward.w.layer(l), r = try resumed.model.forward.w.layer(l)
            XCTAssertEqual(f.bias(.q), try m.forward.w.layer(l).bias(.q), "layer \(l): AWQ leaves the biases")
            XCTAssertEqual(f.bias(.k).count, 16, "layer \(l): two KV heads of 8")
            XCTAssertEqual(f.biases, r.biases, "layer \(l) biases")
            XCTAssertEqual(f.norms, r.norms, "layer \(l) norms")
            XCTAssertEqual(f.linears, r.linears, "layer \(l) linears")
        }
        let toks = m.tokenizer.encode("def f(x):\n    return x + 1", addSpecial: true, parseSpecial: false)
        let (lf, lr) = (try fresh.model.forward.logits(toks), try resumed.model.forward.logits(toks))
        XCTAssertEqual(lf.count, lr.count)
        XCTAssertEqual(zip(lf, lr).map { abs($0 - $1) }.max(), 0, "the same logits")
        AWQThenGPTQ.finish(output: dir + "/x")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x.awq.state"))
    }
}
