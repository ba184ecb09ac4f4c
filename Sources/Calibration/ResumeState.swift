import Checkpoints
import Foundation
import Llama
import ModelFormats
import TensorCore

/// The state of a long calibrated run (GPTQ, AWQ: per finished layer; imatrix: per finished chunk), kept in
/// `OUTPUT.state/` beside the output: one safetensors file per step plus a manifest naming the run (a fingerprint of
/// the source, the options and the calibration windows) and how many steps are done. `--resume` continues after the
/// last finished step and gives the same bytes as an uninterrupted run; a finished run removes the directory.
public final class ResumeState {
    public let dir: String
    let fingerprint: String
    /// Steps finished by an earlier run (0 when starting fresh).
    public private(set) var done = 0
    /// The activations of the last step are written, synced and counted in the manifest on `committer` while the
    /// next step computes (`saveActivations`, `waitForCommit`).
    private let committer = DispatchQueue(label: "quantkit.resume-state")
    private let pending = DispatchGroup()
    private let lock = NSLock()
    private var commitError: Error? = nil

    public static func directory(for output: String) -> String { output + ".state" }

    public init(output: String, fingerprint: String, resume: Bool) throws {
        dir = Self.directory(for: output)
        self.fingerprint = fingerprint
        let fm = FileManager.default
        let manifest = dir + "/manifest.json"
        if resume, fm.fileExists(atPath: manifest) {
            let j = try JSONParser.parse(file: manifest)
            guard j["fingerprint"]?.string == fingerprint else {
                throw QKError(file: dir, "--resume: this state was made with another source, options or calibration text; run without --resume to start over")
            }
            done = j["done"]?.int ?? 0
            return
        }
        if fm.fileExists(atPath: dir) { try fm.removeItem(atPath: dir) }
        do { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw QKError(file: dir, "cannot create the resume state directory: \(error.localizedDescription)")
        }
        try writeManifest(0)
    }

    func writeManifest(_ n: Int) throws {
        let j: JSONValue = .object([("fingerprint", .string(fingerprint)), ("done", .int(Int64(n)))])
        try writeFileAtomically(dir + "/manifest.json", Array(j.serialized().utf8))
    }

    /// Saves the tensors of one state file `name` (float and int32 tensors, string metadata), atomically.
    public func save(_ name: String, floats: [(String, [Float])], ints: [(String, [Int32])] = [], bytes: [(String, [UInt8])] = [],
                     metadata: [(String, String)] = []) throws {
        // each tensor's bytes made when it is written (a 7B layer's state would otherwise be held twice)
        let entries = floats.map { SafetensorsWriter.Entry(name: $0.0, dtype: .f32, shape: [$0.1.count]) } +
            ints.map { SafetensorsWriter.Entry(name: $0.0, dtype: .i32, shape: [$0.1.count]) } +
            bytes.map { SafetensorsWriter.Entry(name: $0.0, dtype: .u8, shape: [$0.1.count]) }
        try SafetensorsWriter.write(path: path(name), entries: entries, metadata: [("format", "quantkit-state")] + metadata) { k in
            if k < floats.count { return floats[k].1.withUnsafeBytes { Array($0) } }
            if k < floats.count + ints.count { return ints[k - floats.count].1.withUnsafeBytes { Array($0) } }
            return bytes[k - floats.count - ints.count].1
        }
    }

    /// The tensors and metadata of one state file.
    public struct Record {
        public var floats: [(String, [Float])] = []
        public var ints: [(String, [Int32])] = []
        public var bytes: [(String, [UInt8])] = []
        public var metadata: [(String, String)] = []
        public init(floats: [(String, [Float])] = [], ints: [(String, [Int32])] = [], bytes: [(String, [UInt8])] = [],
                    metadata: [(String, String)] = []) {
            self.floats = floats
            self.ints = ints
            self.bytes = bytes
            self.metadata = metadata
        }
    }

    public func save(_ name: String, _ r: Record) throws {
        try save(name, floats: r.floats, ints: r.ints, bytes: r.bytes, metadata: r.metadata)
    }

    /// Records `n` finished steps (after their files are saved).
    public func markDone(_ n: Int) throws {
        try writeManifest(n)
        done = n
    }

    func path(_ name: String) -> String { dir + "/" + name + ".safetensors" }

    public struct Saved {
        public let floats: [String: [Float]]
        public let ints: [String: [Int32]]
        public let bytes: [String: [UInt8]]
        public let metadata: [String: String]
    }

    /// Reads a state file back.
    public func load(_ name: String) throws -> Saved {
        let f = try SafetensorsFile(path: path(name))
        var fl: [String: [Float]] = [:], it: [String: [Int32]] = [:], by: [String: [UInt8]] = [:]
        for t in f.tensors {
            let b = f.bytes(of: t)
            switch t.dtype {
            case .f32: fl[t.name] = (0..<t.elementCount).map { Float(bitPattern: b.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) }
            case .i32: it[t.name] = (0..<t.elementCount).map { b.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self) }
            case .u8: by[t.name] = Array(b)
            default: throw QKError(file: path(name), "unexpected \(t.dtype.rawValue) tensor \(t.name) in resume state")
            }
        }
        return Saved(floats: fl, ints: it, bytes: by, metadata: f.metadata)
    }

    /// Removes a state file that is no longer needed (e.g. the activations of an older layer).
    public func discard(_ name: String) { try? FileManager.default.removeItem(atPath: path(name)) }

    /// Saves the activations of every window after `step` and marks `step + 1` steps done; the previous step's
    /// activations are dropped. The file is written, synced and renamed, and the manifest counts the step, in the
    /// background and in that order, so the next step's work overlaps the disk. The arrays are shared, not copied:
    /// GPTQ changes them only when its next layer is done, long after the write (AWQ, which changes them first,
    /// waits for the write: `LayerwiseMethod.advancesFirst`). A failed save is thrown by the next call or by
    /// `waitForCommit`.
    public func saveActivations(_ X: [[Float]], after step: Int) throws {
        try waitForCommit()
        nonisolated(unsafe) let (x, state) = (X, self)
        committer.async(group: pending) {
            do {
                try state.save("act-\(step)", floats: x.enumerated().map { ("x.\($0.offset)", $0.element) })
                try state.markDone(step + 1)
                if step > 0 { state.discard("act-\(step - 1)") }
            } catch {
                state.lock.lock()
                state.commitError = state.commitError ?? error
                state.lock.unlock()
            }
        }
    }

    /// Waits for the background commit of the last activations, and throws its error if it failed.
    public func waitForCommit() throws {
        pending.wait()
        lock.lock()
        defer { lock.unlock() }
        if let e = commitError { throw e }
    }

    /// The activations saved after `step`.
    public func loadActivations(after step: Int, count: Int) throws -> [[Float]] {
        let a = try load("act-\(step)")
        return try (0..<count).map { k in
            guard let x = a.floats["x.\(k)"] else { throw QKError(file: path("act-\(step)"), "resume state lacks window \(k)") }
            return x
        }
    }

    /// The run finished: the state is no longer needed.
    public func finish() {
        pending.wait()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Removes the state kept for `output` (after the output is complete).
    public static func finish(output: String) { try? FileManager.default.removeItem(atPath: directory(for: output)) }

    /// A short stable digest of token windows (FNV-1a over the ids), for fingerprints.
    public static func digest(_ windows: [[Int32]]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for w in windows {
            for t in w { h = (h ^ UInt64(UInt32(bitPattern: t))) &* 0x100_0000_01b3 }
            h = (h ^ 0xff) &* 0x100_0000_01b3
        }
        return String(h, radix: 16)
    }
}
