import Foundation
import XCTest

/// Counts and sizes of 7B models pass 2³¹ (a Llama-2-7B Q4_K_M holds 4,080,263,168 bytes of tensors): printed through
/// `String(format:)` with `%d`, Foundation on Linux reads 32 bits of the Int and `inspect` said "-214704128 bytes".
final class FormatWidthTests: XCTestCase {
    func testLongFormatPrintsSevenBillionIntact() {
        XCTAssertEqual(String(format: "%ld bytes", 4_080_263_168), "4080263168 bytes")
        XCTAssertEqual(String(format: "%ld parameters", 6_738_415_616), "6738415616 parameters")
    }

    /// No `String(format:)` in the sources uses a 32-bit integer conversion (every integer quantkit prints is an Int).
    func testNoThirtyTwoBitConversionsInSources() throws {
        let sources = Support.repo.appendingPathComponent("Sources")
        let files = FileManager.default.enumerator(atPath: sources.path)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }
        XCTAssertGreaterThan(files.count, 50)
        var offenders: [String] = []
        let narrow = try NSRegularExpression(pattern: #"%[-+ 0#]*[0-9]*(?:\.[0-9]+)?[diux]"#)
        for f in files {
            let text = try String(contentsOfFile: sources.appendingPathComponent(f).path, encoding: .utf8)
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where line.contains("String(format:") {
                let s = String(line)
                if narrow.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil { offenders.append("\(f):\(n + 1)") }
            }
        }
        XCTAssertEqual(offenders, [], "use %ld (or interpolation) for Int")
    }
}
