import Calibration
import XCTest
import Evaluation
import ModelFormats
import Quantization
@testable import QuantKit

/// GPTQ through the forward pass on the golden micro model: the GGUF keeps llama-quantize's types and size,
/// dequantizes to a valid file, and its layer outputs are closer to the reference than round-to-nearest's.
final class GPTQPipelineTests: XCTestCase {
    func testGPTQIntoQ4_0BeatsRoundToNearest() throws {
        let src = Support.golden.appendingPathComponent("micro-llama-k-bf16.gguf").path
        let text = Support.golden.appendingPathComponent("wiki.valid.first20k.txt").path
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
}
