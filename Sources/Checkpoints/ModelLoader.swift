import Foundation
import Llama
import ModelFormats
import Quantization
import Tokenizers
import TensorCore

/// A model ready to run: its weights (embeddings and head as f32, each layer made f32 from the file when it runs),
/// its tokenizer, and what it costs on disk.
public struct LoadedModel {
    public let path: String
    public let forward: LlamaForward
    public let tokenizer: Tokenizer
    public let fileBytes: Int
    /// Bits per weight of the stored matrices (file bytes of the weights / parameters).
    public let bitsPerWeight: Double

    /// An HF checkpoint directory (or ORG/NAME in the HF cache) or a GGUF file of any type quantkit reads.
    public static func load(_ path: String) throws -> LoadedModel {
        var isDir: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        if exists && !isDir.boolValue && (path.hasSuffix(".gguf") || isGGUF(path)) {
            let g = try GGUFFile(path: path)
            let c = try LlamaConfig(gguf: g)
            let w = try LlamaWeights.load(gguf: g, config: c)
            let tok = try Tokenizer(GGUFVocabulary(g))
            let params = g.tensors.reduce(0) { $0 + $1.elementCount }, bytes = g.tensors.reduce(0) { $0 + $1.byteCount }
            return LoadedModel(path: path, forward: LlamaForward(w), tokenizer: tok, fileBytes: g.file.size,
                               bitsPerWeight: Double(bytes * 8) / Double(max(1, params)))
        }
        let ck = try HFCheckpoint.open(path)
        let tok = try tokenizer(ck)
        let size = ck.weights.files.reduce(0) { $0 + $1.file.size }
        let w: LlamaWeights, params: Int, bytes: Int
        if let packed = try PackedReader(configPath: ck.dir + "/config.json", weights: ck.weights) {
            // GPTQ / AWQ / compressed-tensors: packed linears dequantized when their layer is made
            let c = ck.config
            w = try LlamaWeights.load(config: c, source: LlamaTensorSource(
                shape: { n in
                    if let (_, lin) = LlamaLinear.parse(hfName: n), packed.isPacked(String(n.dropLast(".weight".count))) {
                        let (rows, cols) = lin.shape(c)
                        return [rows, cols]
                    }
                    return ck.weights.info(n)?.shape
                },
                floats: { n in
                    guard let x = try packed.floats(n) else { throw QKError(file: ck.dir, "missing tensor \(n)") }
                    return x
                },
                rows: { try ck.weights.floats($0, rows: $1) }))   // the embeddings, stored unpacked
            (params, bytes) = try packed.sizes()
        } else {
            w = try LlamaWeights.load(hfCheckpoint: ck.weights, config: ck.config)
            params = ck.weights.names.compactMap { ck.weights.info($0)?.elementCount }.reduce(0, +)
            bytes = ck.weights.names.compactMap { ck.weights.info($0)?.range.count }.reduce(0, +)
        }
        return LoadedModel(path: path, forward: LlamaForward(w), tokenizer: tok, fileBytes: size,
                           bitsPerWeight: Double(bytes * 8) / Double(max(1, params)))
    }

    /// The same model with its decoder layers made by `provider` (see `LlamaWeights.replacingLayers`).
    public func replacingLayers(_ provider: @escaping (Int) throws -> LlamaWeights.Layer) -> LoadedModel {
        LoadedModel(path: path, forward: LlamaForward(forward.w.replacingLayers(provider)), tokenizer: tokenizer, fileBytes: fileBytes,
                    bitsPerWeight: bitsPerWeight)
    }

    /// Only the tokenizer of a GGUF file or HF checkpoint (no weights are read).
    public static func tokenizer(_ path: String) throws -> Tokenizer {
        var isDir: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        if exists && !isDir.boolValue && (path.hasSuffix(".gguf") || isGGUF(path)) {
            return try Tokenizer(GGUFVocabulary(try GGUFFile(path: path)))
        }
        return try tokenizer(try HFCheckpoint.open(path))
    }

    /// The tokenizer of an HF checkpoint (tokenizer.json or tokenizer.model beside config.json).
    static func tokenizer(_ ck: HFCheckpoint) throws -> Tokenizer {
        try Tokenizer(GGUFVocabulary(metadata: TokenizerMetadata.fromHF(dir: ck.dir, vocabSize: ck.config.vocabSize), file: ck.dir))
    }

    public static func isGGUF(_ path: String) -> Bool {
        guard let m = try? MappedFile(path: path), m.size >= 4 else { return false }
        return m.bytes.loadUnaligned(as: UInt32.self) == GGUF.magic
    }
}
