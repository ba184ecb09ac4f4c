import Checkpoints
import Foundation
import Llama
import ModelFormats
import Quantization
import TensorCore
import Tokenizers

/// GGUF → HF checkpoint directory: dequantized weights (inverse q/k permutation) in model.safetensors,
/// config.json and generation_config.json from the metadata, tokenizer files rebuilt from the vocabulary.
public enum Exporter {
    public enum OutDType: String, CaseIterable, Sendable { case bf16, f16, f32 }

    /// The files an export (or a packed checkpoint) may write into its directory.
    public static let writtenFiles = ["model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer.model",
                                      "tokenizer_config.json", "special_tokens_map.json", "quantize_config.json"]

    public struct Report {
        public let dir: String
        public let tensors: Int
        public let bytes: Int
    }

    /// Writes the checkpoint under `DIR.partial` and moves it into place when complete; `replace` lets DIR be an
    /// existing directory whose files of the same names are replaced (export --force).
    public static func export(_ source: String, to dir: String, dtype: OutDType = .bf16, replace: Bool = false,
                              progress: ProgressCallback? = nil) throws -> Report {
        var sourceIsDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: source, isDirectory: &sourceIsDir), sourceIsDir.boolValue {
            return try exportPacked(source, to: dir, dtype: dtype, replace: replace, progress: progress)
        }
        let g = try GGUFFile(path: source)
        var c = try LlamaConfig(gguf: g)
        c.torchDtype = ["bf16": "bfloat16", "f16": "float16", "f32": "float32"][dtype.rawValue]
        let vocab = try GGUFVocabulary(g)

        var entries: [(hf: String, info: GGUFTensorInfo)] = []
        for t in g.tensors {
            if t.name == "rope_freqs.weight" { continue }  // recomputed from rope_scaling by converters
            guard let hf = LlamaTensorNames.hf(t.name) else { throw QKError(file: source, "tensor \(t.name) is not a llama tensor quantkit can export") }
            guard GGMLCodec.decodable.contains(t.type) else {
                throw QKError(file: source, "tensor \(t.name) is \(t.type.name), which export cannot dequantize yet")
            }
            entries.append((hf, t))
        }
        entries.sort { $0.hf < $1.hf }

        let out = try OutputDirectory(path: dir, replacesFiles: replace)
        let st: DType = dtype == .bf16 ? .bf16 : dtype == .f16 ? .f16 : .f32
        let sEntries = entries.map { SafetensorsWriter.Entry(name: $0.hf, dtype: st, shape: $0.info.shape) }
        var total = 0
        try SafetensorsWriter.write(path: out.file("model.safetensors"), entries: sEntries) { k in
            let (hf, t) = entries[k]
            progress?("export \(hf)", k, entries.count)
            var x = try GGMLCodec.dequantize(t.type, g.bytes(of: t), count: t.elementCount)
            if t.ne.count == 2, let lin = LlamaTensorNames.linear(of: hf) { x = try lin.fromGGUF(x, c) }
            let b = try GGMLCodec.quantize(dtype == .bf16 ? .bf16 : dtype == .f16 ? .f16 : .f32, x, rowLength: t.ne[0])
            total += b.count
            return b
        }
        try writeFileAtomically(out.file("config.json"), Array(configJSON(c, vocab: vocab).serialized().utf8))
        var gen: [(String, JSONValue)] = []
        if let b = vocab.bos { gen.append(("bos_token_id", .int(Int64(b)))) }
        if let e = vocab.eos { gen.append(("eos_token_id", .int(Int64(e)))) }
        try writeFileAtomically(out.file("generation_config.json"), Array(JSONValue.object(gen).serialized().utf8))
        try HFTokenizerWriter.write(vocab, to: out.partialPath, contextLength: c.maxPositionEmbeddings ?? 2048)
        try out.commit()
        progress?("export", entries.count, entries.count)
        return Report(dir: dir, tensors: entries.count, bytes: total)
    }

    /// config.json; a SentencePiece vocabulary also gets `unk_token_id`, the only place converters find it
    /// without a tokenizer.json.
    static func configJSON(_ c: LlamaConfig, vocab: GGUFVocabulary) -> JSONValue {
        guard case var .object(kv) = c.json() else { return c.json() }
        if vocab.model == "llama", let u = vocab.unk { kv.append(("unk_token_id", .int(Int64(u)))) }
        return .object(kv)
    }

    /// A packed checkpoint (GPTQ, AWQ, compressed-tensors) → a plain HF checkpoint: every packed linear dequantized
    /// to `dtype`, the other tensors converted, config.json without quantization_config, tokenizer files copied.
    static func exportPacked(_ source: String, to dir: String, dtype: OutDType, replace: Bool, progress: ProgressCallback?) throws -> Report {
        let ck = try HFCheckpoint.open(source)
        guard let packed = try PackedReader(configPath: ck.dir + "/config.json", weights: ck.weights) else {
            throw QKError(file: source, "is a checkpoint without quantization_config; export takes a GGUF file or a packed checkpoint (convert it instead)")
        }
        let aux = ["qzeros", "scales", "g_idx", "weight_scale", "weight_zero_point", "weight_shape", "weight_g_idx"]
        var names: [String] = []
        for n in ck.weights.names {
            guard let dot = n.lastIndex(of: ".") else { names.append(n); continue }
            let module = String(n[..<dot]), suffix = String(n[n.index(after: dot)...])
            if suffix == packed.layout.marker { names.append(module + ".weight"); continue }
            if aux.contains(suffix) && packed.isPacked(module) { continue }   // packing metadata of a packed linear
            names.append(n)
        }
        names.sort()
        let st: DType = dtype == .bf16 ? .bf16 : dtype == .f16 ? .f16 : .f32
        var shapes: [[Int]] = []
        for n in names {
            let m = String(n.dropLast(".weight".count))
            if n.hasSuffix(".weight") && packed.isPacked(m) { let q = try packed.linear(m); shapes.append([q.rows, q.cols]) }
            else if let i = ck.weights.info(n) { shapes.append(i.shape) } else { throw QKError(file: source, "missing tensor \(n)") }
        }
        let out = try OutputDirectory(path: dir, replacesFiles: replace)
        var total = 0
        try SafetensorsWriter.write(path: out.file("model.safetensors"), entries: zip(names, shapes).map { .init(name: $0, dtype: st, shape: $1) }) { k in
            progress?("export \(names[k])", k, names.count)
            guard let x = try packed.floats(names[k]) else { throw QKError(file: source, "missing tensor \(names[k])") }
            let b = try GGMLCodec.quantize(dtype == .bf16 ? .bf16 : dtype == .f16 ? .f16 : .f32, x, rowLength: shapes[k].last ?? x.count)
            total += b.count
            return b
        }
        guard case var .object(cfg) = try JSONParser.parse(file: ck.dir + "/config.json") else { throw QKError(file: ck.dir + "/config.json", "not a JSON object") }
        cfg.removeAll { $0.0 == "quantization_config" }
        if let i = cfg.firstIndex(where: { $0.0 == "torch_dtype" }) { cfg[i].1 = .string(["bf16": "bfloat16", "f16": "float16", "f32": "float32"][dtype.rawValue]!) }
        try writeFileAtomically(out.file("config.json"), Array(JSONValue.object(cfg).serialized().utf8))
        try copyTokenizerFiles(from: ck.dir, to: out)
        try out.commit()
        progress?("export", names.count, names.count)
        return Report(dir: dir, tensors: names.count, bytes: total)
    }
}
