import Checkpoints
import Evaluation
import Foundation
import ModelFormats
import TensorCore
import XCTest
@testable import QuantKit

/// llama-perplexity's KL-divergence base file: written while evaluating, read back to the reference's log-probabilities
/// within the file's 16-bit step, and candidates scored against it as against the model; hostile files refused.
final class KLDBaseTests: XCTestCase {
    func testWrittenBaseScoresCandidatesAsTheReferenceDoes() throws {
        let src = Support.microK
        let text = Support.repo.appendingPathComponent("Formats/golden/tokenize/inputs/wiki.test.first50k.txt").path
        let dir = Support.tmpDir()
        let cand = dir + "/q4_0.gguf"
        _ = try GGUFQuantizer.quantize(src, to: cand, options: .init(preset: .named("Q4_0")!))
        let base = dir + "/ref.kld"
        let direct = try Evaluator.run(reference: src, candidates: [cand], textFile: text, ctx: 128, chunks: 5, protocol: .llamaCpp, kldBaseOut: base)
        XCTAssertFalse(FileManager.default.fileExists(atPath: base + ".partial"))
        let b = try KLDBase(path: base)
        XCTAssertEqual([b.ctx, b.chunks, b.vocab], [128, 5, 512])
        // the stored log-probabilities: the reference's, to within half a 16-bit step where above the −16 floor
        let ref = try LoadedModel.load(src)
        let chunk = Array(b.tokens[128..<256])
        var withBOS = chunk
        if ref.tokenizer.addBos, let bos = ref.tokenizer.vocabulary.bos { withBOS[0] = Int32(bos) }
        let logits = try ref.forward.logits(withBOS)
        var lp: [Float] = []
        b.logProbs(chunk: 1, into: &lp)
        let V = b.vocab, row = 70   // logits row 64 + 6 … its stored row 6
        let x = Array(logits[(row * V)..<((row + 1) * V)])
        let m = x.max()!
        let lse = log(x.reduce(0.0) { $0 + exp(Double($1 - m)) }) + Double(m)
        let step = (m - max(x.min()!, m - 16)) / 65535
        for i in 0..<V where x[i] > m - 16 {
            XCTAssertEqual(Double(lp[(row - 64) * V + i]), Double(x[i]) - lse, accuracy: Double(step) + 1e-4, "token \(i)")
        }
        // candidates against the file: the same PPL, and KLD within the file's rounding of the direct one
        let viaBase = try Evaluator.run(kldBase: base, candidates: [cand], chunks: nil)
        XCTAssertEqual(viaBase.candidates[0].result.ppl, direct.candidates[0].result.ppl, accuracy: 1e-9)
        XCTAssertEqual(viaBase.reference.result.ppl, direct.reference.result.ppl, accuracy: direct.reference.result.ppl * 1e-3)
        XCTAssertEqual(viaBase.candidates[0].result.kldMean, direct.candidates[0].result.kldMean, accuracy: direct.candidates[0].result.kldMean * 0.02)
        XCTAssertEqual(viaBase.candidates[0].result.kld.count, direct.candidates[0].result.kld.count)
        // hostile files: another magic, a truncated one, a token outside the vocabulary
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: base)))
        let cases: [(String, [UInt8], String)] = [
            ("magic", [UInt8]("_logitz_".utf8) + bytes[8...], "no _logits_ header"),
            ("short", Array(bytes.dropLast(3)), "bytes; n_ctx 128"),
            ("ctx", Array(bytes[0..<8]) + [0xff, 0xff, 0xff, 0x7f] + bytes[12...], "not a valid KL-divergence base"),
        ]
        for (name, data, message) in cases {
            let p = dir + "/" + name + ".kld"
            try Data(data).write(to: URL(fileURLWithPath: p))
            XCTAssertThrowsError(try KLDBase(path: p)) { XCTAssertTrue("\($0)".contains(message), "\(name): \($0)") }
        }
        bytes.replaceSubrange(20..<24, with: [0x00, 0x00, 0x01, 0x00])   // token 65536 in a 512-token vocabulary
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/tok.kld"))
        XCTAssertThrowsError(try KLDBase(path: dir + "/tok.kld")) { XCTAssertTrue("\($0)".contains("outside the vocabulary"), "\($0)") }
    }
}
