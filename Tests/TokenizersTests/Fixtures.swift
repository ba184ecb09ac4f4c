import Foundation
import TestScratch

/// Paths of the repository's golden files, and scratch files for a test.
enum Fixtures {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let golden = repo.appendingPathComponent("Formats/golden")
    static func write(_ bytes: [UInt8], _ name: String) -> String {
        let p = Scratch.path(name)
        FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }
}
