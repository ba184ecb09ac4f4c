import XCTest
@testable import Tokenizers

/// llama.cpp's own tokenizer test data (`models/ggml-vocab-*.gguf` with `.inp`/`.out`, read by its
/// test-tokenizer-0): every vocabulary quantkit supports gives the same ids on every input (no BOS, specials as text).
final class LlamaVocabTests: XCTestCase {
    /// The vocabularies quantkit must support; the others in the directory must be refused by name, never mis-split.
    static let supported = ["command-r", "gpt-2", "llama-bpe", "llama-spm", "mpt", "phi-3", "qwen2", "refact", "starcoder"]

    static func cases(_ base: String) throws -> [(text: String, ids: [Int32])] {
        let raw = try String(contentsOfFile: base + ".inp", encoding: .utf8)
        let out = try String(contentsOfFile: base + ".out", encoding: .utf8)
        let inputs = raw.components(separatedBy: "\n__ggml_vocab_test__\n")
        var lines = out.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        // test-tokenizer-0 splits at each separator; the text after the last one is empty and not a case
        let texts = inputs.last == "" ? Array(inputs.dropLast()) : inputs
        XCTAssertEqual(texts.count, lines.count, base)
        return zip(texts, lines).map { t, l in (t, l.split(separator: " ").compactMap { Int32($0) }) }
    }

    func testEveryLlamaCppVocabularyTestGivesTheSameIds() throws {
        guard let dir = ProcessInfo.processInfo.environment["QUANTKIT_LLAMA_VOCABS"] else {
            XCTFail("QUANTKIT_LLAMA_VOCABS is not set: run through Scripts/test"); return
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
            .filter { $0.hasPrefix("ggml-vocab-") && $0.hasSuffix(".gguf.inp") }.sorted()
        var passed: [String] = []
        var refused: [String] = []
        for f in files {
            let base = dir + "/" + String(f.dropLast(4))
            let name = String(f.dropFirst("ggml-vocab-".count).dropLast(".gguf.inp".count))
            let tok: Tokenizer
            do { tok = try Tokenizer(gguf: base) } catch {
                XCTAssertFalse(Self.supported.contains(name), "\(name): \(error)")
                refused.append(name)
                continue
            }
            var n = 0
            for c in try Self.cases(base) {
                let got = tok.encode(c.text, addSpecial: false, parseSpecial: false)
                XCTAssertEqual(got, c.ids, "\(name): \(c.text.debugDescription)")
                n += 1
            }
            XCTAssertGreaterThan(n, 20, name)
            passed.append(name)
        }
        print("llama.cpp vocab tests: equal on \(passed.joined(separator: ", ")); refused: \(refused.joined(separator: ", "))")
        XCTAssertEqual(Set(passed), Set(Self.supported))
    }
}
