import CZstd
import TensorCore
import TestScratch
import XCTest
@testable import Calibration

final class CorpusTests: XCTestCase {
    func tmp(_ name: String, _ data: Data) -> String {
        let p = Scratch.path(name)
        FileManager.default.createFile(atPath: p, contents: data)
        return p
    }

    /// Compressed with libzstd's one-shot encoder (the reader under test streams through the decoder).
    func zstd(_ s: String) throws -> Data {
        let src = Array(s.utf8)
        var dst = [UInt8](repeating: 0, count: ZSTD_compressBound(src.count))
        let n = dst.withUnsafeMutableBytes { d in src.withUnsafeBytes { ZSTD_compress(d.baseAddress, d.count, $0.baseAddress, $0.count, 3) } }
        XCTAssertEqual(ZSTD_isError(n), 0)
        return Data(dst.prefix(n))
    }

    func testReadsTxtJsonlAndZst() throws {
        XCTAssertEqual(try Corpus.read(tmp("a.txt", Data("hello\nworld".utf8))), "hello\nworld")
        let jsonl = "{\"text\": \"one\", \"id\": 1}\n{\"text\": \"two\"}\n"
        XCTAssertEqual(try Corpus.read(tmp("a.jsonl", Data(jsonl.utf8))), "one\n\ntwo")
        XCTAssertEqual(try Corpus.read(tmp("b.jsonl", Data("{\"content\": \"x\"}\n".utf8)), textField: "content"), "x")
        XCTAssertThrowsError(try Corpus.read(tmp("c.jsonl", Data("{\"content\": \"x\"}\n".utf8)))) { XCTAssertTrue("\($0)".contains("--text-field"), "\($0)") }
        let big = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 5000)
        XCTAssertEqual(try Corpus.read(tmp("d.txt.zst", try zstd(big))), big)
        XCTAssertEqual(try Corpus.read(tmp("e.jsonl.zst", try zstd(jsonl))), "one\n\ntwo")
        XCTAssertThrowsError(try Corpus.read(tmp("f.txt.zst", Data([0x28, 0xB5, 0x2F, 0xFD, 1, 2, 3])))) { XCTAssertTrue("\($0)".contains("zstd"), "\($0)") }
    }

    func testSamplingIsSeededAndInRange() throws {
        let tokens = (0..<1000).map { Int32($0) }
        let a = try Corpus.sample(tokens, count: 16, length: 64, seed: 0), b = try Corpus.sample(tokens, count: 16, length: 64, seed: 0)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, try Corpus.sample(tokens, count: 16, length: 64, seed: 1))
        for w in a { XCTAssertEqual(w.count, 64); XCTAssertEqual(w.last! - w.first!, 63) }
        XCTAssertThrowsError(try Corpus.sample(tokens, count: 2, length: 5000, seed: 0))
    }

    func testMixCounts() throws {
        XCTAssertEqual(try Corpus.mixCounts(total: 128, weights: [7, 3]), [90, 38])   // 89.6 / 38.4
        XCTAssertEqual(try Corpus.mixCounts(total: 10, weights: [1, 1, 1]), [4, 3, 3])
        XCTAssertEqual(try Corpus.mixCounts(total: 5, weights: [1, 0]), [5, 0])
        XCTAssertEqual(try Corpus.parseMix("7:3"), [7, 3])
        XCTAssertEqual(try Corpus.parseMix("70,30"), [70, 30])
        XCTAssertThrowsError(try Corpus.parseMix("7:x"))
        XCTAssertThrowsError(try Corpus.mixCounts(total: 4, weights: [0, 0]))
        XCTAssertThrowsError(try Corpus.mixCounts(total: 4, weights: [-1, 2]))
    }
}

/// The shipped corpora: present, equal to their MANIFEST sha256, and the .zst decodes to the same text.
final class ShippedCorpusTests: XCTestCase {
    func testManifestMatchesFiles() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Calibration")
        let manifest = try String(contentsOf: dir.appendingPathComponent("MANIFEST.md"), encoding: .utf8)
        let txt = try Corpus.read(dir.appendingPathComponent("wikitext2-valid-excerpt.txt").path)
        let zst = try Corpus.read(dir.appendingPathComponent("wikitext2-valid-excerpt.txt.zst").path)
        XCTAssertEqual(txt, zst)
        XCTAssertTrue(manifest.contains("| \(txt.utf8.count) |"))
        XCTAssertFalse(txt.contains(" = Robert Boulter = "))  // the first article of the *test* split
        // the code corpus
        let code = try Corpus.read(dir.appendingPathComponent("python-stdlib-excerpt.txt").path)
        XCTAssertTrue(manifest.contains("| \(code.utf8.count) |"))
        XCTAssertTrue(code.hasPrefix("# ---- Lib/textwrap.py (CPython 3.11.7) ----"))
    }
}
