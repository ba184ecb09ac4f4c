import Foundation

/// Scratch space for tests: every directory lives under one root per test process, removed when the process exits,
/// so a suite leaves nothing in the temporary directory (one run used to leave ~0.5 GB per model test).
public enum Scratch {
    /// A new empty directory.
    public static func dir() -> String {
        let d = root + "/" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// A path in a new directory, not created.
    public static func path(_ name: String) -> String { dir() + "/" + name }

    /// The process's root, made (and its removal at exit registered) on first use.
    public static let root: String = {
        let r = NSTemporaryDirectory() + "qk-test-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: r, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: Scratch.root) }
        return r
    }()
}
