import Checkpoints
import Evaluation
import Foundation
import Llama
import XCTest
@testable import QuantKit

/// `eval --activations llama`: the candidates' quantized rows meet int8-rounded activations (their numbers move, by
/// less than the quantization's own effect), the bf16 reference's rows take the activations as they are (its numbers
/// stay), and the JSON says which rounding ran.
final class EvalActivationRoundingTests: XCTestCase {
    func testLlamaRoundingMovesOnlyTheQuantizedRows() throws {
        let src = Support.microK
        let text = Support.repo.appendingPathComponent("Formats/golden/tokenize/inputs/wiki.test.first50k.txt").path
        let dir = Support.tmpDir()
        var cands: [String] = []
        for preset in ["Q4_K_M", "Q8_0"] {
            let path = dir + "/\(preset).gguf"
            _ = try GGUFQuantizer.quantize(src, to: path, options: .init(preset: .named(preset)!))
            cands.append(path)
        }
        func run(_ a: ActivationRounding) throws -> Evaluator.Report {
            try Evaluator.run(reference: src, candidates: cands, textFile: text, ctx: 128, chunks: 6, protocol: .llamaCpp,
                              activations: a)
        }
        let exact = try run(.exact), llama = try run(.llama)
        XCTAssertEqual(llama.reference.result.ppl, exact.reference.result.ppl, accuracy: exact.reference.result.ppl * 1e-5,
                       "bf16 rows take the activations as they are")
        for (e, l) in zip(exact.candidates, llama.candidates) {
            let name = (e.name as NSString).lastPathComponent
            XCTAssertNotEqual(l.result.ppl, e.result.ppl, "\(name): rounded activations change the products")
            // the rounding moves the candidate by less than quantizing its weights moved it from the reference
            let quantization = abs(e.result.ppl - exact.reference.result.ppl)
            XCTAssertLessThan(abs(l.result.ppl - e.result.ppl), max(quantization, 0.02 * e.result.ppl), name)
            XCTAssertLessThan(l.result.kldMean, 3 * e.result.kldMean + 0.01, name)
        }
        let json = try JSONSerialization.jsonObject(with: Data(Evaluator.json(llama).serialized().utf8)) as? [String: Any]
        XCTAssertEqual(json?["activations"] as? String, "llama")
        XCTAssertTrue(Evaluator.table(llama).contains("activations llama;"))
    }
}
