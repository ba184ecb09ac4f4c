import Foundation
import Llama
import ModelFormats
import Quantization
import TensorCore
import Tokenizers

/// The readers quantkit points at files from strangers, as fuzz targets: each takes arbitrary bytes, writes them
/// where the reader expects a file (tmpfs), and runs the reader and what a command would do next with its result.
/// A thrown error is the expected outcome for bad input; a trap, a hang or a leak is a bug.
public enum FuzzTargets {
    public static let names = ["safetensors", "gguf", "tokenizer-json", "config-json", "imatrix"]

    /// A per-process scratch directory (on /dev/shm when it exists).
    static let scratch: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let d = "\(base)/quantkit-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()

    static func write(_ data: UnsafeRawBufferPointer, _ name: String) -> String {
        let p = scratch + "/" + name
        let fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        if fd >= 0 {
            var off = 0
            while off < data.count { let n = Glibc.write(fd, data.baseAddress! + off, data.count - off); if n <= 0 { break }; off += n }
            close(fd)
        }
        return p
    }

    /// Runs target `name` on `data`, ignoring the errors bad input should give. Returns false for an unknown target.
    @discardableResult
    public static func run(_ name: String, _ data: UnsafeRawBufferPointer) -> Bool {
        guard names.contains(name) else { return false }
        _ = try? parse(name, data)
        return true
    }

    /// Runs target `name` on `data` and throws the reader's error, if any (valid seeds must not throw).
    public static func parse(_ name: String, _ data: UnsafeRawBufferPointer) throws {
        switch name {
        case "safetensors":
            let f = try SafetensorsFile(path: write(data, "model.safetensors"))
            let ck = try SafetensorsCheckpoint(files: [f])
            for n in ck.names.prefix(8) where (ck.info(n)?.elementCount ?? 0) <= 1 << 16 && ck.info(n)?.dtype.isFloat == true { _ = try ck.floats(n) }
        case "gguf":
            let g = try GGUFFile(path: write(data, "model.gguf"))
            for kv in g.metadata.prefix(64) { _ = "\(kv.value)" }
            if g.metadata.contains(where: { $0.key == "tokenizer.ggml.tokens" }) { _ = try Tokenizer(GGUFVocabulary(g)) }
            for t in g.tensors.prefix(8) where t.elementCount <= 1 << 16 && GGMLCodec.decodable.contains(t.type) {
                _ = try GGMLCodec.dequantize(t.type, g.bytes(of: t), count: t.elementCount)
            }
        case "tokenizer-json":
            let dir = scratch + "/tok"
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            _ = write(data, "tok/tokenizer.json")
            let md = try TokenizerMetadata.fromHF(dir: dir, vocabSize: 512)
            let t = try Tokenizer(GGUFVocabulary(metadata: md, file: dir))
            let ids = t.encode("Hello world, <s> héllo 123 \u{1F600}\n", addSpecial: true, parseSpecial: true)
            _ = t.decode(ids)
        case "config-json":
            _ = try LlamaConfig.parse(JSONParser.parse(data, file: "config.json"), file: "config.json")
        case "imatrix":
            // the GGUF reader by extension first, the legacy .dat reader when that fails
            do {
                let m = try ImatrixFile.load(path: write(data, "imatrix.gguf"))
                _ = m.entries.prefix(4).map { m.weights($0.key) }
            } catch {
                let m = try ImatrixFile.load(path: write(data, "imatrix.dat"))
                _ = m.entries.prefix(4).map { m.weights($0.key) }
            }
        default:
            throw QKError("unknown fuzz target \(name)")
        }
    }
}
