import Foundation

/// Paths of the repository's golden files, and scratch files for a test.
enum Fixtures {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let golden = repo.appendingPathComponent("Formats/golden")
    static func write(_ bytes: [UInt8], _ name: String) -> String {
        let d = NSTemporaryDirectory() + "qk-test-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: d + "/" + name, contents: Data(bytes))
        return d + "/" + name
    }
}
