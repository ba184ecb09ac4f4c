import XCTest
import FuzzTargets

/// The fuzz corpora replayed through the fuzz targets (Scripts/fuzz runs them under libFuzzer): every seed is valid
/// input its reader accepts; every mutated input and saved crasher (Formats/fuzz/<target>/regressions/) gives an
/// error or a result, never a trap; and truncations and byte flips of the seeds do the same.
final class FuzzCorpusTests: XCTestCase {
    let root = Support.repo.appendingPathComponent("Formats/fuzz")

    func files(_ dir: URL) -> [URL] {
        ((try? FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)) ?? [])
            .filter { !$0.hasDirectoryPath }.sorted { $0.path < $1.path }
    }

    func testSeedsParse() throws {
        for t in FuzzTargets.names {
            let seeds = files(root.appendingPathComponent(t))
            XCTAssertFalse(seeds.isEmpty, "no seeds for \(t)")
            for f in seeds {
                let d = try Data(contentsOf: f)
                XCTAssertNoThrow(try d.withUnsafeBytes { try FuzzTargets.parse(t, $0) }, "\(t): \(f.lastPathComponent)")
            }
        }
    }

    func testRegressionsAndMutationsNeverTrap() throws {
        var n = 0
        for t in FuzzTargets.names {
            for f in files(root.appendingPathComponent(t).appendingPathComponent("regressions")) {
                let d = try Data(contentsOf: f)
                d.withUnsafeBytes { _ = FuzzTargets.run(t, $0) }
                n += 1
            }
            for f in files(root.appendingPathComponent(t)) {
                let d = [UInt8](try Data(contentsOf: f))
                // every truncation length up to 512 bytes, then every 61st
                for len in Array(0..<min(d.count, 512)) + Array(stride(from: 512, to: d.count, by: 61)) {
                    d[0..<len].withUnsafeBytes { _ = FuzzTargets.run(t, $0) }
                    n += 1
                }
                // single-byte flips to 0x00 / 0xFF / +1 at every 7th position
                for i in stride(from: 0, to: d.count, by: 7) {
                    for v: UInt8 in [0, 0xFF, d[i] &+ 1] {
                        var m = d
                        m[i] = v
                        m.withUnsafeBytes { _ = FuzzTargets.run(t, $0) }
                        n += 1
                    }
                }
            }
        }
        XCTAssertGreaterThan(n, 5000)
    }

    func testUnknownTargetIsRefused() {
        XCTAssertFalse([UInt8]().withUnsafeBytes { FuzzTargets.run("nope", $0) })
        XCTAssertThrowsError(try [UInt8]().withUnsafeBytes { try FuzzTargets.parse("nope", $0) })
    }
}
