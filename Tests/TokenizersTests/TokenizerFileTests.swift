import XCTest
import TensorCore
import ModelFormats
@testable import Tokenizers

final class TokenizerFileTests: XCTestCase {
    func testLlama2SentencePieceModel() throws {
        let sp = try SentencePieceModel.load(path: Fixtures.golden.appendingPathComponent("micro-llama-hf/tokenizer.model").path)
        XCTAssertEqual(sp.pieces.count, 32000)
        XCTAssertEqual(sp.pieces[0], .init(piece: "<unk>", score: 0, type: .unknown))
        XCTAssertEqual(sp.pieces[1].type, .control)
        XCTAssertEqual(sp.pieces[3], .init(piece: "<0x00>", score: 0, type: .byte))
        XCTAssertEqual(sp.pieces[29871].piece, "\u{2581}")
        XCTAssertEqual(sp.modelType, 2)  // BPE
        XCTAssertTrue(sp.byteFallback)
        XCTAssertTrue(sp.addDummyPrefix)
    }

    func testGarbageSentencePieceIsAnError() {
        let p = Fixtures.write([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F], "bad.model")
        XCTAssertThrowsError(try SentencePieceModel.load(path: p)) { XCTAssertTrue("\($0)".hasPrefix(p), "\($0)") }
    }

    func testSpecialVocabOfGoldenMicroModel() throws {
        let sv = try SpecialVocab(dir: Fixtures.golden.appendingPathComponent("micro-llama-hf").path, loadMerges: false, nVocab: 32000)
        XCTAssertEqual(sv.specialIds.map(\.0), ["bos", "eos", "unk", "cls"])
        XCTAssertEqual(sv.specialIds.map(\.1), [1, 2, 0, 1])
        XCTAssertEqual(sv.addSpecial.map(\.0), ["bos", "sep", "eos"])
        XCTAssertEqual(sv.addSpecial.map(\.1), [true, false, false])
        XCTAssertEqual(sv.metadata().map(\.0), ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
                                                "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_sep_token", "tokenizer.ggml.add_eos_token"])
    }

    func testMergePairsAreJoinedWithSpacesEncoded() throws {
        let m: [JSONValue] = [.array([.string("a b"), .string("c")]), .array([.string("Ġ"), .string("t")])]
        XCTAssertEqual(try SpecialVocab.mergeStrings(m, file: "t"), ["a\u{0120}b c", "Ġ t"])
    }
}
