import Foundation
import TestScratch
import XCTest

/// Runs the built `quantkit` binary (QUANTKIT_BIN, or the one beside the test bundle).
enum CLI {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var binary: String {
        if let b = ProcessInfo.processInfo.environment["QUANTKIT_BIN"], FileManager.default.isExecutableFile(atPath: b) { return b }
        let beside = Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("quantkit").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        for c in ["release", "debug"] {
            let p = repo.appendingPathComponent(".build/\(c)/quantkit").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return "quantkit-binary-not-built"
    }

    struct Result { let status: Int32; let stdout: String; let stderr: String }

    static func run(_ args: [String], env: [String: String] = [:]) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        if !env.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(env) { _, new in new } }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    static func tmpDir() -> String { Scratch.dir() }
}
