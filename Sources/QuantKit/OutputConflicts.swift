import Checkpoints
import Foundation
import ModelFormats
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

/// Refuses, before any work, an output that is or would replace one of the command's inputs: the same path, the same
/// file through a symlink or a hard link (device and inode), a shard the source's index names, the source directory,
/// a directory output that holds an input, calibration or imatrix files; and an output named for another format.
public enum OutputConflicts {
    /// What an output is, for the check of its name and of what it replaces.
    public enum Kind: Sendable {
        /// One GGUF file (convert, quantize, imatrix in GGUF form).
        case gguf
        /// One file that is neither GGUF nor safetensors (imatrix .dat, eval --json / --report).
        case file(String)
        /// A new checkpoint directory (packed quantize: it must not exist or be empty).
        case checkpointDirectory
        /// An exported checkpoint directory (with --force it may replace the files of an existing checkpoint).
        case exportDirectory

        var isDirectory: Bool {
            switch self {
            case .checkpointDirectory, .exportDirectory: return true
            default: return false
            }
        }
    }

    public struct Output: Sendable {
        public var path: String
        public var kind: Kind
        /// The option that named it, for the error ("-o", "--json").
        public var option: String
        public init(_ path: String, _ kind: Kind, option: String = "-o") { self.path = path; self.kind = kind; self.option = option }
    }

    /// The files a model source is read from: a GGUF file itself; for a checkpoint directory (or a .safetensors file,
    /// or an ORG/NAME in the HF cache) its JSON files, safetensors files, `tokenizer.model` and every shard its index
    /// names, and the directory itself.
    public static func modelInputs(_ source: String) -> [String] {
        guard let resolved = try? HFCheckpoint.resolve(source) else { return [source] }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: resolved, isDirectory: &isDir) else { return [resolved] }
        if !isDir.boolValue && !resolved.hasSuffix(".safetensors") { return [resolved] }
        let dir = isDir.boolValue ? resolved : (resolved as NSString).deletingLastPathComponent
        let d = dir.isEmpty ? "." : dir
        var inputs = [resolved, d]
        let names = (try? FileManager.default.contentsOfDirectory(atPath: d)) ?? []
        for n in names.sorted() where n.hasSuffix(".json") || n.hasSuffix(".safetensors") || n == "tokenizer.model" {
            inputs.append(d + "/" + n)
        }
        if let index = try? JSONParser.parse(file: d + "/model.safetensors.index.json"), let wm = index["weight_map"]?.object {
            for shard in Set(wm.compactMap { $0.1.string }).sorted() { inputs.append(d + "/" + shard) }
        }
        return inputs
    }

    /// Throws the first conflict between `outputs` and `inputs` (or between two outputs). `force` allows an output
    /// named for another format and an export over an existing checkpoint; it never allows replacing an input.
    public static func check(outputs: [Output], inputs: [String], force: Bool = false) throws {
        let inputIDs = inputs.compactMap { p in identity(p).map { (p, $0) } }
        for (k, o) in outputs.enumerated() {
            for other in outputs[..<k] where samePath(o.path, other.path) {
                throw QKError("\(o.option) \(o.path) and \(other.option) name the same file; give each output its own path")
            }
            var targets = [o.path, o.path + ".partial"]
            if o.kind.isDirectory {
                targets += Exporter.writtenFiles.map { o.path + "/" + $0 }
            }
            for t in targets {
                guard let id = identity(t) else { continue }
                if let (input, _) = inputIDs.first(where: { $0.1 == id }) {
                    let how = samePath(t, input) ? "is" : "is the same file as"
                    throw QKError("\(o.option) \(t) \(how) the input \(input); writing it would destroy the input — choose another output path")
                }
            }
            if o.kind.isDirectory, let dirID = identity(o.path) {
                // an input inside the output directory (the directory's own contents would be replaced)
                for (input, _) in inputIDs {
                    let parent = (input as NSString).deletingLastPathComponent
                    if identity(parent.isEmpty ? "." : parent) == dirID {
                        throw QKError("\(o.option) \(o.path) holds the input \(input); write the checkpoint to a new directory")
                    }
                }
            }
            try checkName(o, force: force)
            if case .exportDirectory = o.kind, !force,
               let e = ["config.json", "model.safetensors", "model.safetensors.index.json"]
                   .first(where: { FileManager.default.fileExists(atPath: o.path + "/" + $0) }) {
                throw QKError("\(o.option) \(o.path) already holds a checkpoint (\(e)); choose a new directory, or pass --force to replace it")
            }
        }
    }

    static func checkName(_ o: Output, force: Bool) throws {
        if force { return }
        let lower = o.path.lowercased()
        let trimmed = lower.hasSuffix("/") ? String(lower.dropLast()) : lower
        let what: String
        switch o.kind {
        case .gguf:
            guard trimmed.hasSuffix(".safetensors") else { return }
            what = "a GGUF file"
        case .file(let kind):
            guard trimmed.hasSuffix(".safetensors") || trimmed.hasSuffix(".gguf") else { return }
            what = kind
        case .checkpointDirectory, .exportDirectory:
            guard trimmed.hasSuffix(".safetensors") || trimmed.hasSuffix(".gguf") else { return }
            what = "a checkpoint directory"
        }
        let ext = trimmed.hasSuffix(".gguf") ? ".gguf" : ".safetensors"
        throw QKError("\(o.option) \(o.path) would write \(what) under a \(ext) name; choose a name that says what it holds, or pass --force")
    }

    /// Device and inode of the file a path reaches (through symlinks), nil when nothing is there.
    static func identity(_ path: String) -> [UInt64]? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return [UInt64(st.st_dev), UInt64(st.st_ino)]
    }

    static func samePath(_ a: String, _ b: String) -> Bool {
        URL(fileURLWithPath: a).standardizedFileURL.path == URL(fileURLWithPath: b).standardizedFileURL.path
    }
}
