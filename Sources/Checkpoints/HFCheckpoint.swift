import Foundation
import Llama
import ModelFormats
import Quantization
import TensorCore

/// An HF checkpoint: a directory with config.json and safetensors weights, a single .safetensors file
/// (config.json beside it), or a model id found in the local Hugging Face cache.
public struct HFCheckpoint {
    public let dir: String
    public let config: LlamaConfig
    public let weights: SafetensorsCheckpoint

    public static func open(_ source: String) throws -> HFCheckpoint {
        let resolved = try resolve(source)
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: resolved, isDirectory: &isDir)
        let dir = isDir.boolValue ? resolved : (resolved as NSString).deletingLastPathComponent
        let configPath = URL(fileURLWithPath: dir.isEmpty ? "." : dir).appendingPathComponent("config.json").path
        guard FileManager.default.fileExists(atPath: configPath) else {
            throw QKError(file: configPath, "missing: an HF checkpoint needs config.json")
        }
        let config = try LlamaConfig.load(path: configPath)
        let weights = try SafetensorsCheckpoint.open(resolved)
        return HFCheckpoint(dir: dir.isEmpty ? "." : dir, config: config, weights: weights)
    }

    /// A path as given, or the snapshot of `ORG/NAME` in the HF cache.
    public static func resolve(_ source: String) throws -> String {
        if FileManager.default.fileExists(atPath: source) { return source }
        let parts = source.split(separator: "/")
        guard parts.count == 2, !source.hasPrefix("."), !source.hasPrefix("/") else {
            throw QKError(file: source, "no such file or directory (and not an ORG/NAME model id)")
        }
        let env = ProcessInfo.processInfo.environment
        var roots: [String] = []
        if let c = env["HF_HUB_CACHE"] { roots.append(c) }
        if let h = env["HF_HOME"] { roots.append(h + "/hub") }
        roots.append(NSHomeDirectory() + "/.cache/huggingface/hub")
        for root in roots {
            let repo = "\(root)/models--\(parts[0])--\(parts[1])"
            let snaps = repo + "/snapshots"
            guard FileManager.default.fileExists(atPath: snaps) else { continue }
            if let ref = try? String(contentsOfFile: repo + "/refs/main", encoding: .utf8) {
                let p = snaps + "/" + ref.trimmingCharacters(in: .whitespacesAndNewlines)
                if FileManager.default.fileExists(atPath: p) { return p }
            }
            let all = (try? FileManager.default.contentsOfDirectory(atPath: snaps))?.sorted() ?? []
            if let last = all.last { return snaps + "/" + last }
        }
        throw QKError(file: source, "not found: no such path, and no snapshot of model \(source) in the Hugging Face cache (\(roots.joined(separator: ", ")))")
    }
}
