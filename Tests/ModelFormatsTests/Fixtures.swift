import Foundation
import TensorCore
import TestScratch

enum Fixtures {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let golden = repo.appendingPathComponent("Formats/golden")
    static func tmp(_ name: String) -> String { Scratch.path(name) }
    static func write(_ bytes: [UInt8], _ name: String) -> String {
        let p = tmp(name)
        FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }
}
