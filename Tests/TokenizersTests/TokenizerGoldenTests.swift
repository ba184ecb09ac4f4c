import XCTest
import ModelFormats
import TensorCore
@testable import Tokenizers

/// Token ids equal to llama-tokenize's (and HF tokenizers' / sentencepiece's) on every golden input,
/// Formats/golden/tokenize (from ../shared/golden).
final class TokenizerGoldenTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let gold = repo.appendingPathComponent("Formats/golden/tokenize")

    func cases(_ family: String) throws -> [(String, String, JSONValue)] {
        let dir = Self.gold.appendingPathComponent(family).path
        return try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".json") && !$0.hasPrefix("_") }.sorted().map { f in
            let name = String(f.dropLast(5))
            let text = try String(contentsOfFile: Self.gold.appendingPathComponent("inputs/\(name).txt").path, encoding: .utf8)
            return (name, text, try JSONParser.parse(file: dir + "/" + f))
        }
    }

    func ids(_ j: JSONValue, _ key: String) -> [Int32] { (j[key]?.array ?? []).compactMap { $0.int.map(Int32.init) } }

    func testSmolLM2ByteLevelBPE() throws {
        guard let path = ProcessInfo.processInfo.environment["QUANTKIT_SMOLLM2_GGUF"], FileManager.default.fileExists(atPath: path) else {
            XCTFail("QUANTKIT_SMOLLM2_GGUF is not set: run through Scripts/test"); return
        }
        let tok = try Tokenizer(gguf: path)
        var n = 0
        for (name, text, j) in try cases("smollm2") {
            XCTAssertEqual(tok.encode(text, addSpecial: true, parseSpecial: true), ids(j, "llama_tokenize_default"), name)
            XCTAssertEqual(tok.encode(text, addSpecial: false, parseSpecial: true), ids(j, "llama_tokenize_no_bos"), name)
            XCTAssertEqual(tok.encode(text, addSpecial: false, parseSpecial: false), ids(j, "llama_tokenize_no_bos_no_parse_special"), name)
            XCTAssertEqual(tok.encode(text, addSpecial: false, parseSpecial: true), ids(j, "hf_tokenizers_add_special_tokens_false"), name)
            XCTAssertEqual(tok.decode(tok.encode(text, addSpecial: false, parseSpecial: true)), text, "round trip \(name)")
            n += 1
        }
        XCTAssertEqual(n, 27)
    }

    func testLlama2SentencePiece() throws {
        // the vocabulary as the converter writes it for the golden micro model (Llama 2 tokenizer.model)
        let v = try GGUFVocabulary(metadata: TokenizerMetadata.fromHF(dir: Self.repo.appendingPathComponent("Formats/golden/micro-llama-hf").path, vocabSize: 32000))
        let tok = try Tokenizer(v)
        var n = 0
        for (name, text, j) in try cases("llama2") {
            XCTAssertEqual(tok.encode(text, addSpecial: true, parseSpecial: true), ids(j, "llama_tokenize_default"), name)
            XCTAssertEqual(tok.encode(text, addSpecial: false, parseSpecial: true), ids(j, "llama_tokenize_no_bos"), name)
            XCTAssertEqual(tok.encode(text, addSpecial: false, parseSpecial: false), ids(j, "llama_tokenize_no_bos_no_parse_special"), name)
            let got = tok.encode(text, addSpecial: false, parseSpecial: false), want = ids(j, "sentencepiece_encode")
            if let k = (0..<min(got.count, want.count)).first(where: { got[$0] != want[$0] }) {
                print("DIFF \(name) at \(k): got \(got[max(0, k - 3)..<min(got.count, k + 5)]) want \(want[max(0, k - 3)..<min(want.count, k + 5)])")
            }
            XCTAssertEqual(got, want, name)
            if !text.hasPrefix(" ") {
                XCTAssertEqual(tok.decode(tok.encode(text, addSpecial: false, parseSpecial: false)), text, "round trip \(name)")
            }
            n += 1
        }
        XCTAssertEqual(n, 27)
    }
}
