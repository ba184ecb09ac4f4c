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

/// llama.cpp's pre-tokenizer names (llama-vocab.cpp) and its add-BOS rule for byte-level BPE vocabularies.
final class PreTokenizerNameTests: XCTestCase {
    func testLlamaCppNamesMapOntoTheSplitsTheyUse() {
        for n in ["llama-bpe", "llama3", "llama-v3", "falcon3", "pixtral", "lfm2"] { XCTAssertEqual(PreTokenizer(pre: n), .llama3, n) }
        for n in ["qwen2", "deepseek-r1-qwen", "kormo", "stablelm2"] { XCTAssertEqual(PreTokenizer(pre: n), .qwen2, n) }
        for n in ["gpt2", "gpt-2", "phi-2", "mpt", "olmo"] { XCTAssertEqual(PreTokenizer(pre: n), .gpt2, n) }
        for n in ["smollm", "starcoder", "command-r", "exaone"] { XCTAssertEqual(PreTokenizer(pre: n), .smollm, n) }
        // llama.cpp splits these differently from every rule quantkit has: refused, never guessed
        for n in ["default", "dbrx", "smaug-bpe", "tekken", "falcon", "deepseek-llm", "jina-v2-code"] {
            XCTAssertNil(PreTokenizer(pre: n), n)
        }
        let all = PreTokenizer.names.values.flatMap { $0 }
        XCTAssertEqual(Set(all).count, all.count, "a name belongs to one split")
    }

    /// A two-letter byte-level vocabulary with BOS at id 0.
    func vocabulary(pre: String?, addBos: Bool?) throws -> GGUFVocabulary {
        var kv: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.tokens", .array(.string, ["<|begin_of_text|>", "h", "i", "hi"].map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(.int32, [3, 1, 1, 1].map { .int32($0) })),
            ("tokenizer.ggml.merges", .array(.string, [.string("h i")])),
            ("tokenizer.ggml.bos_token_id", .uint32(0)),
        ]
        if let p = pre { kv.append(("tokenizer.ggml.pre", .string(p))) }
        if let b = addBos { kv.append(("tokenizer.ggml.add_bos_token", .bool(b))) }
        return try GGUFVocabulary(metadata: kv)
    }

    func testLlamaBPEAddsBOSUnlessTheFileSaysNot() throws {
        XCTAssertEqual(try Tokenizer(vocabulary(pre: "llama-bpe", addBos: nil)).encode("hi"), [0, 3])
        XCTAssertEqual(try Tokenizer(vocabulary(pre: "llama-v3", addBos: nil)).encode("hi"), [0, 3])
        XCTAssertEqual(try Tokenizer(vocabulary(pre: "llama-bpe", addBos: false)).encode("hi"), [3])
        XCTAssertEqual(try Tokenizer(vocabulary(pre: "qwen2", addBos: nil)).encode("hi"), [3])
        XCTAssertEqual(try Tokenizer(vocabulary(pre: "qwen2", addBos: true)).encode("hi"), [0, 3])
        XCTAssertEqual(try Tokenizer(vocabulary(pre: "gpt2", addBos: nil)).encode("hi"), [3])
        // the exported tokenizer files carry the rule explicitly
        let v = try vocabulary(pre: "llama-bpe", addBos: nil)
        XCTAssertEqual(HFTokenizerWriter.tokenizerConfig(v, contextLength: 8)["add_bos_token"]?.bool, true)
        XCTAssertEqual(try HFTokenizerWriter.byteLevelTokenizerJSON(v)["post_processor"]?["type"]?.string, "TemplateProcessing")
        XCTAssertEqual(try HFTokenizerWriter.byteLevelTokenizerJSON(v)["model"]?["ignore_merges"]?.bool, true)
    }

    func testUnknownOrMissingPreIsRefusedByName() throws {
        XCTAssertThrowsError(try Tokenizer(vocabulary(pre: "default", addBos: nil))) {
            XCTAssertTrue("\($0)".contains("pre-tokenizer default is not supported"), "\($0)")
        }
        XCTAssertThrowsError(try Tokenizer(vocabulary(pre: nil, addBos: nil))) {
            XCTAssertTrue("\($0)".contains("no tokenizer.ggml.pre"), "\($0)")
        }
    }
}
