import XCTest
import ModelFormats
@testable import Tokenizers

/// The tokenizers' fast paths against the plain way of computing the same thing.
final class TokenizerFastPathTests: XCTestCase {
    func testASCIIClassesEqualUnicodeProperties() {
        for v in UInt32(0)..<0x80 {
            let u = Unicode.Scalar(v)!
            XCTAssertEqual(PreTokenizer.isLetter(u), PreTokenizer.isLetterUnicode(u), "letter \(v)")
            XCTAssertEqual(PreTokenizer.isNumber(u), PreTokenizer.isNumberUnicode(u), "number \(v)")
            XCTAssertEqual(PreTokenizer.isSpace(u), PreTokenizer.isSpaceUnicode(u), "space \(v)")
        }
    }

    /// llama.cpp's way: each special in turn (longest first) splits every text fragment left so far.
    static func splitSpecialBySpecial(_ text: [UInt8], _ specials: [SpecialTokenSplitter.Special],
                                      parseSpecial: Bool) -> [SpecialTokenSplitter.Fragment] {
        var frags: [SpecialTokenSplitter.Fragment] = text.isEmpty ? [] : [.text(0..<text.count)]
        for sp in specials where parseSpecial || !sp.controlOrUnknown {
            var next: [SpecialTokenSplitter.Fragment] = []
            for f in frags {
                guard case let .text(r) = f else {
                    next.append(f)
                    continue
                }
                var start = r.lowerBound
                var i = r.lowerBound
                while i + sp.text.count <= r.upperBound {
                    if Array(text[i..<(i + sp.text.count)]) == sp.text {
                        if i > start { next.append(.text(start..<i)) }
                        next.append(.token(sp.id))
                        i += sp.text.count
                        start = i
                    } else {
                        i += 1
                    }
                }
                if start < r.upperBound { next.append(.text(start..<r.upperBound)) }
            }
            frags = next
        }
        return frags
    }

    func testSpecialSplitterEqualsSplittingSpecialBySpecial() {
        // overlapping specials, prefixes of each other, equal lengths, control and user-defined
        let texts = ["<|a|>", "a|>", "<|", "ab", "b", "|a", "ba", "<|ab|>"]
        let specials = texts.enumerated().map { i, t in
            SpecialTokenSplitter.Special(text: Array(t.utf8), id: Int32(100 + i), controlOrUnknown: i % 3 == 0)
        }
        let splitter = SpecialTokenSplitter(specials)
        XCTAssertEqual(splitter.specials.map { String(decoding: $0.text, as: UTF8.self) },
                       ["<|ab|>", "<|a|>", "a|>", "<|", "ab", "|a", "ba", "b"])
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("ab<|>x".utf8)
        var splits = 0
        for _ in 0..<3000 {
            let n = Int.random(in: 0..<24, using: &rng)
            let text = (0..<n).map { _ in alphabet.randomElement(using: &rng)! }
            for parse in [true, false] {
                let want = Self.splitSpecialBySpecial(text, splitter.specials, parseSpecial: parse)
                XCTAssertEqual(splitter.split(text, parseSpecial: parse), want, String(decoding: text, as: UTF8.self))
                splits += want.filter { if case .token = $0 { return true } else { return false } }.count
            }
        }
        XCTAssertGreaterThan(splits, 10_000)
    }

    /// Cutting the text where no piece holds the two neighbouring characters, and caching the segments, gives what one
    /// heap over the whole text gives (Llama 2's vocabulary, 200 KB of WikiText-2 and its lines run together).
    func testSentencePieceSegmentsMergeAsTheWholeText() throws {
        let dir = Fixtures.golden.appendingPathComponent("micro-llama-hf").path
        let v = try GGUFVocabulary(metadata: TokenizerMetadata.fromHF(dir: dir, vocabSize: 32000))
        let spm = try XCTUnwrap(try Tokenizer(v).spm)
        let wikiPath = Fixtures.repo.deletingLastPathComponent().appendingPathComponent("shared/data/wikitext-2-raw/wiki.test.raw")
        let wiki = try String(contentsOfFile: wikiPath.path, encoding: .utf8)
        let text = String(decoding: wiki.utf8.prefix(200_000), as: UTF8.self)
        for sample in [text, text.replacingOccurrences(of: "\n", with: " ")] {
            let esc = Array(sample.replacingOccurrences(of: " ", with: "\u{2581}").utf8)
            var segmented: [Int32] = []
            spm.encode(esc, into: &segmented)
            var whole: [Int32] = []
            esc.withUnsafeBufferPointer { spm.merge($0.baseAddress!, esc.count, into: &whole) }
            XCTAssertEqual(segmented.count, whole.count)
            XCTAssertEqual(segmented, whole)
            XCTAssertGreaterThan(whole.count, 40_000)
        }
    }
}
