import XCTest
import Evaluation
import ModelFormats
@testable import QuantKit

/// SLOW, real model: the HF checkpoint and its bf16 GGUF give the same perplexity (same weights, same math);
/// Q8_0 stays within 0.5% and a 4-bit file drifts more, with a larger KLD.
final class EvalRealModelTests: XCTestCase {
    func testHFAndBF16GGUFAgreeAndQuantsOrder() throws {
        let dir = try Support.requiredEnv("QUANTKIT_SMOLLM2_DIR")
        let text = Support.repo.appendingPathComponent("Formats/golden/tokenize/inputs/wiki.test.first50k.txt").path
        let tmp = Support.tmpDir()
        _ = try Converter.convert(dir, to: tmp + "/bf16.gguf", outType: .bf16)
        _ = try GGUFQuantizer.quantize(dir, to: tmp + "/q8.gguf", options: .init(preset: .named("Q8_0")!))
        _ = try GGUFQuantizer.quantize(dir, to: tmp + "/q4.gguf", options: .init(preset: .named("Q4_0")!))
        let r = try Evaluator.run(reference: dir, candidates: [tmp + "/bf16.gguf", tmp + "/q8.gguf", tmp + "/q4.gguf"], textFile: text,
                                  ctx: 512, chunks: 3, protocol: .llamaCpp)
        let ref = r.reference.result.ppl
        XCTAssertEqual(r.reference.result.count, 3 * 255)
        XCTAssertGreaterThan(ref, 5); XCTAssertLessThan(ref, 60)
        let bf16 = r.candidates[0].result, q8 = r.candidates[1].result, q4 = r.candidates[2].result
        XCTAssertLessThan(abs(bf16.ppl / ref - 1), 1e-4, "HF vs bf16 GGUF")
        XCTAssertLessThan(bf16.kldMean, 1e-6)
        XCTAssertLessThan(abs(q8.ppl / ref - 1), 0.005, "Q8_0")
        XCTAssertGreaterThan(q4.kldMean, q8.kldMean * 5)
        XCTAssertGreaterThan(q8.sameTop1Percent, 95)
        XCTAssertLessThan(q4.sameTop1Percent, q8.sameTop1Percent)
    }
}
