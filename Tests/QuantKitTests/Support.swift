import Foundation
import TestScratch
import XCTest

enum Support {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let golden = repo.appendingPathComponent("Formats/golden")
    static let microHF = golden.appendingPathComponent("micro-llama-hf").path
    /// The golden micro Llama as a bf16 GGUF (K-quant shapes), and the calibration text the pipeline tests use.
    static let microK = golden.appendingPathComponent("micro-llama-k-bf16.gguf").path
    static let validText = golden.appendingPathComponent("wiki.valid.first20k.txt").path

    static func tmpDir() -> String { Scratch.dir() }

    /// sha256 of a file (coreutils' sha256sum: an independent implementation).
    static func sha256(_ path: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = [path]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        p.waitUntilExit()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return String(out.prefix(64))
    }

    /// The upstream sha256 of a golden file (Formats/golden/SHA256SUMS.upstream, copied from ../shared/golden).
    static func goldenSHA(_ rel: String) throws -> String {
        let sums = try String(contentsOfFile: golden.appendingPathComponent("SHA256SUMS.upstream").path, encoding: .utf8)
        for line in sums.split(separator: "\n") where line.hasSuffix("./" + rel) { return String(line.prefix(64)) }
        throw NSError(domain: "golden", code: 1, userInfo: [NSLocalizedDescriptionKey: "no golden sha256 for \(rel)"])
    }

    /// A path from the environment (set by Scripts/test) that the slow real-model tests need.
    static func requiredEnv(_ key: String) throws -> String {
        guard let v = ProcessInfo.processInfo.environment[key], FileManager.default.fileExists(atPath: v) else {
            XCTFail("\(key) is not set or does not exist: run the suite through Scripts/test, which fetches SmolLM2-135M")
            throw NSError(domain: "env", code: 1)
        }
        return v
    }
}
