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

/// The qwen2 pre-tokenizer: llama3's split with single digits, detected from a Qwen2 tokenizer.json.
final class Qwen2PreTokenizerTests: XCTestCase {
    func testSplitsDigitsOneByOneWhereLlama3KeepsThree() {
        let text = "In 2024, 12345 apples\n\ncost $3.50 (x2)"
        XCTAssertEqual(PreTokenizer.llama3.split(text),
                       ["In", " ", "202", "4", ",", " ", "123", "45", " apples", "\n\n", "cost", " $", "3", ".", "50", " (", "x", "2", ")"])
        XCTAssertEqual(PreTokenizer.qwen2.split(text),
                       ["In", " ", "2", "0", "2", "4", ",", " ", "1", "2", "3", "4", "5", " apples", "\n\n", "cost", " $", "3", ".", "5", "0",
                        " (", "x", "2", ")"])
        XCTAssertEqual(PreTokenizer(pre: "qwen2"), .qwen2)
        XCTAssertEqual(PreTokenizer(pre: "deepseek-r1-qwen"), .qwen2)
    }

    func testDetectedFromTokenizerJSON() throws {
        let re = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let tj: JSONValue = .object([("pre_tokenizer", .object([("type", .string("Sequence")), ("pretokenizers", .array([
            .object([("type", .string("Split")), ("pattern", .object([("Regex", .string(re))])), ("behavior", .string("Isolated"))]),
            .object([("type", .string("ByteLevel")), ("use_regex", .bool(false))])]))]))])
        XCTAssertEqual(try TokenizerMetadata.detectPre(tj, file: "tokenizer.json"), "qwen2")
        let llama3 = re.replacingOccurrences(of: #"\p{L}+|\p{N}|"#, with: #"\p{L}+|\p{N}{1,3}|"#)
        let tj3: JSONValue = .object([("pre_tokenizer", .object([("type", .string("Sequence")), ("pretokenizers", .array([
            .object([("type", .string("Split")), ("pattern", .object([("Regex", .string(llama3))]))]),
            .object([("type", .string("ByteLevel")), ("use_regex", .bool(false))])]))]))])
        XCTAssertEqual(try TokenizerMetadata.detectPre(tj3, file: "tokenizer.json"), "llama-bpe")
    }
}
