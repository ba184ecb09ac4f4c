import Foundation
import ModelFormats
import XCTest

/// `quantkit tokenize` against llama-tokenize's golden ids for SmolLM2 (Formats/golden/tokenize), and its option checks.
final class TokenizeCommandTests: XCTestCase {
    func testIdsEqualLlamaTokenizeGoldens() throws {
        guard let model = ProcessInfo.processInfo.environment["QUANTKIT_SMOLLM2_DIR"], FileManager.default.fileExists(atPath: model) else {
            XCTFail("QUANTKIT_SMOLLM2_DIR is not set: run the suite through Scripts/test"); return
        }
        let gold = CLI.repo.appendingPathComponent("Formats/golden/tokenize").path
        let cases = try FileManager.default.contentsOfDirectory(atPath: gold + "/smollm2").filter { $0.hasSuffix(".json") && !$0.hasPrefix("_") }.sorted()
        XCTAssertGreaterThan(cases.count, 10)
        for f in cases {
            let g = try JSONParser.parse(file: gold + "/smollm2/" + f)
            let input = gold + "/inputs/" + f.dropLast(5) + ".txt"
            for (key, flags) in [("llama_tokenize_default", [String]()), ("llama_tokenize_no_bos_no_parse_special", ["--no-bos", "--no-parse-special"])] {
                let want = try XCTUnwrap(g[key]?.array).compactMap(\.int)
                let r = try CLI.run(["tokenize", model, "--file", input, "--ids"] + flags)
                XCTAssertEqual(r.status, 0, r.stderr)
                let got = try JSONParser.parse(Data(r.stdout.utf8), file: "stdout").array?.compactMap(\.int) ?? []
                XCTAssertEqual(got, want, "\(f) \(key)")
            }
        }
        // the JSON form carries the same ids and a piece per id that concatenate back to the text
        let r = try CLI.run(["tokenize", model, "--prompt", "Hello world, 12345!", "--json", "--no-bos"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try JSONParser.parse(Data(r.stdout.utf8), file: "stdout")
        let pieces = try XCTUnwrap(j["pieces"]?.array).compactMap(\.string)
        XCTAssertEqual(pieces.joined(), "Hello world, 12345!")
        XCTAssertEqual(j["ids"]?.array?.count, pieces.count)
    }

    func testNeedsExactlyOneText() throws {
        let both = try CLI.run(["tokenize", "m.gguf", "--prompt", "a", "--file", "b.txt"])
        XCTAssertNotEqual(both.status, 0)
        XCTAssertTrue(both.stderr.contains("exactly one of --prompt and --file"), both.stderr)
        let none = try CLI.run(["tokenize", "m.gguf"])
        XCTAssertNotEqual(none.status, 0)
        XCTAssertTrue(none.stderr.contains("exactly one of --prompt and --file"), none.stderr)
    }
}
