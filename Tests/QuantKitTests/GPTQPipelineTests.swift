@testable import Calibration
import Checkpoints
import Llama
import XCTest
import Evaluation
import ModelFormats
import Quantization
import Tokenizers
@testable import QuantKit

/// GPTQ through the forward pass on the golden micro model: the GGUF keeps llama-quantize's types and size,
/// dequantizes to a valid file, and its layer outputs are closer to the reference than round-to-nearest's.
final class GPTQPipelineTests: XCTestCase {
    func testGPTQIntoQ4_0BeatsRoundToNearest() throws {
        let src = Support.microK
        let text = Support.validText
        let dir = Support.tmpDir()
        var o = GPTQPipeline.Options()
        o.data.calibration = [text]; o.data.samples = 16; o.data.seqLen = 128; o.data.seed = 0
        let (rep, lin) = try GPTQPipeline.quantizeToGGUF(source: src, output: dir + "/gptq.gguf", preset: .named("Q4_0")!, options: o)
        XCTAssertEqual(lin.count, 14)
        _ = try GGUFQuantizer.quantize(src, to: dir + "/rtn.gguf", options: .init(preset: .named("Q4_0")!))
        let a = try GGUFFile(path: dir + "/gptq.gguf"), b = try GGUFFile(path: dir + "/rtn.gguf")
        XCTAssertEqual(a.tensors.map(\.type), b.tensors.map(\.type))
        XCTAssertEqual(a.file.size, b.file.size)
        XCTAssertEqual(rep.tensors, 21)
        // evaluated on other text than the calibration windows
        let evalText = Support.repo.appendingPathComponent("Formats/golden/tokenize/inputs/wiki.test.first50k.txt").path
        let r = try Evaluator.run(reference: src, candidates: [dir + "/rtn.gguf", dir + "/gptq.gguf"], textFile: evalText, ctx: 128, chunks: 8, protocol: .llamaCpp)
        let rtn = r.candidates[0].result, gptq = r.candidates[1].result
        XCTAssertLessThan(gptq.kldMean, rtn.kldMean, "KLD GPTQ \(gptq.kldMean) vs RTN \(rtn.kldMean)")
        // the same seed gives the same file
        _ = try GPTQPipeline.quantizeToGGUF(source: src, output: dir + "/gptq2.gguf", preset: .named("Q4_0")!, options: o)
        XCTAssertEqual(try Support.sha256(dir + "/gptq.gguf"), try Support.sha256(dir + "/gptq2.gguf"))
    }

    /// GPTQ into the K-quant and IQ4 presets: every linear is GPTQ'd into the type the plan gives it (Q4_K and Q6_K in
    /// Q4_K_M, a --tensor-type override included), so the file has round-to-nearest's types and size, and a KLD below
    /// both plain rounding and rounding with an imatrix; a type GPTQ cannot write stops the run before any work.
    func testGPTQIntoEveryPlannedType() throws {
        let src = Support.microK
        let text = Support.validText
        let imatrix = Support.golden.appendingPathComponent("micro-llama-k.imatrix.gguf").path
        let evalText = Support.repo.appendingPathComponent("Formats/golden/tokenize/inputs/wiki.test.first50k.txt").path
        let dir = Support.tmpDir()
        var o = GPTQPipeline.Options()
        o.data.calibration = [text]; o.data.samples = 16; o.data.seqLen = 128; o.data.seed = 0
        for name in ["Q4_K_M", "IQ4_XS", "Q3_K_M"] {
            let preset = try XCTUnwrap(QuantPreset.named(name))
            var qo = GGUFQuantizer.Options(preset: preset)
            if name == "Q4_K_M" { qo.overrides.tensorTypes = [(pattern: "blk\\.1\\.attn_q", type: .q5_K)] }
            let (_, lin) = try GPTQPipeline.quantizeToGGUF(source: src, output: dir + "/\(name)-gptq.gguf", preset: preset, options: o,
                                                           quantizeOptions: qo)
            XCTAssertEqual(lin.count, 14)
            for l in lin { XCTAssertLessThan(l.outputMSE, l.outputMSERTN, "\(name) \(l.name)") }
            _ = try GGUFQuantizer.quantize(src, to: dir + "/\(name).gguf", options: qo)
            var iq = qo
            iq.imatrixPath = imatrix
            _ = try GGUFQuantizer.quantize(src, to: dir + "/\(name)-imatrix.gguf", options: iq)
            let a = try GGUFFile(path: dir + "/\(name)-gptq.gguf"), b = try GGUFFile(path: dir + "/\(name).gguf")
            XCTAssertEqual(a.tensors.map(\.type), b.tensors.map(\.type), name)
            XCTAssertEqual(a.file.size, b.file.size, name)
            if name == "Q4_K_M" {
                let types = Set(a.tensors.filter { $0.name.hasPrefix("blk.") && $0.ne.count == 2 }.map(\.type))
                XCTAssertEqual(types, [.q4_K, .q5_K, .q6_K])
                XCTAssertEqual(a.tensors.first { $0.name == "blk.1.attn_q.weight" }?.type, .q5_K)
            }
            let r = try Evaluator.run(reference: src, candidates: [dir + "/\(name).gguf", dir + "/\(name)-imatrix.gguf", dir + "/\(name)-gptq.gguf"],
                                      textFile: evalText, ctx: 128, chunks: 8, protocol: .llamaCpp)
            let (rtn, im, gptq) = (r.candidates[0].result.kldMean, r.candidates[1].result.kldMean, r.candidates[2].result.kldMean)
            XCTAssertLessThan(gptq, min(rtn, im), "\(name) KLD: GPTQ \(gptq), RTN \(rtn), RTN + imatrix \(im)")
        }
        // TQ2_0 has no codes GPTQ can place: refused by tensor name before any calibration
        var qo = GGUFQuantizer.Options(preset: .named("Q4_K_M")!)
        qo.overrides.tensorTypes = [(pattern: "ffn_down", type: .tq2_0)]
        XCTAssertThrowsError(try GPTQPipeline.quantizeToGGUF(source: src, output: dir + "/tq.gguf", preset: .named("Q4_K_M")!, options: o,
                                                             quantizeOptions: qo)) {
            XCTAssertTrue("\($0)".contains("cannot write blk.0.ffn_down.weight as TQ2_0"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/tq.gguf"))
    }

    /// GPTAQ carries the full-precision model's residual streams beside the quantized ones: after the last layer they
    /// are the unquantized model's, value for value, while the quantized streams have moved away from them; and the
    /// file has plain GPTQ's types and size but other blocks.
    func testGPTAQCarriesTheFullPrecisionStreams() throws {
        let m = try LoadedModel.load(Support.microK)
        var o = GPTQPipeline.Options()
        o.data.calibration = [Support.validText]; o.data.samples = 4; o.data.seqLen = 64; o.data.seed = 0
        o.gptq.grid = .ggml(.q4_0)
        o.gptaq = true
        let windows = try o.data.windows(m.tokenizer)
        let method = GPTQPipeline.Layers(options: o, config: m.forward.w.config, source: m.path, consume: { _, _, _ in })
        let quantized = try LayerwisePass(m.forward, sequences: windows)
        let n = m.forward.w.config.numLayers
        for l in 0..<n {
            var L = try m.forward.w.layer(l)
            try method.process(l, &L, pass: quantized)
            quantized.advance(L)
        }
        let reference = try LayerwisePass(m.forward, sequences: windows)
        for l in 0..<n { reference.advance(try m.forward.w.layer(l)) }
        XCTAssertEqual(method.carriedStreams.count, windows.count)
        XCTAssertTrue(method.carriedStreams == reference.residuals, "the carried streams are the unquantized model's")
        XCTAssertFalse(quantized.residuals == reference.residuals)

        let dir = Support.tmpDir()
        o.gptq.grid = GPTQOptions().grid
        _ = try GPTQPipeline.quantizeToGGUF(source: Support.microK, output: dir + "/gptaq.gguf", preset: .named("Q4_0")!, options: o)
        o.gptaq = false
        _ = try GPTQPipeline.quantizeToGGUF(source: Support.microK, output: dir + "/gptq.gguf", preset: .named("Q4_0")!, options: o)
        let a = try GGUFFile(path: dir + "/gptaq.gguf"), b = try GGUFFile(path: dir + "/gptq.gguf")
        XCTAssertEqual(a.tensors.map(\.type), b.tensors.map(\.type))
        XCTAssertEqual(a.file.size, b.file.size)
        XCTAssertNotEqual(try Support.sha256(dir + "/gptaq.gguf"), try Support.sha256(dir + "/gptq.gguf"))
    }
}

/// Calibration windows start with BOS when the vocabulary adds it (as inference and llama-imatrix's chunks do), and are
/// plain slices of the text when it does not.
final class CalibrationWindowTests: XCTestCase {
    func testWindowsStartWithBOSWhenTheVocabularyAddsIt() throws {
        let g = try GGUFFile(path: Support.microK)
        var v = try GGUFVocabulary(g)
        let text = Support.validText
        var set = CalibrationSet()
        set.calibration = [text]; set.samples = 6; set.seqLen = 48; set.seed = 3
        let withBOS = try Tokenizer(v)
        XCTAssertTrue(withBOS.addBos)
        let bos = Int32(try XCTUnwrap(v.bos))
        let all = withBOS.encode(try Corpus.read(text) + "\n\n", addSpecial: false, parseSpecial: false)
        func isSlice(_ w: ArraySlice<Int32>) -> Bool {
            let want = Array(w)
            for start in 0...(all.count - want.count) where Array(all[start..<(start + want.count)]) == want { return true }
            return false
        }
        for w in try set.windows(withBOS) {
            XCTAssertEqual(w.count, 48)
            XCTAssertEqual(w.first, bos)
            XCTAssertTrue(isSlice(w.dropFirst()), "the rest is text")
        }
        v.addBos = false
        let noBOS = try Tokenizer(v)
        for w in try set.windows(noBOS) {
            XCTAssertEqual(w.count, 48)
            XCTAssertTrue(isSlice(w[...]))
        }
        set.bos = false  // --no-window-bos
        for w in try set.windows(withBOS) {
            XCTAssertEqual(w.count, 48)
            XCTAssertTrue(isSlice(w[...]))
        }
        set.bos = true
        set.seqLen = 1
        XCTAssertThrowsError(try set.windows(withBOS)) { XCTAssertTrue("\($0)".contains("no room"), "\($0)") }
    }
}
