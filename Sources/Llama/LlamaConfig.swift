import Foundation
import ModelFormats
import TensorCore

/// RoPE scaling from config.json (`rope_scaling`).
public struct RopeScaling: Equatable, Sendable {
    public var type: String
    public var factor: Double?
    public var lowFreqFactor: Double?
    public var highFreqFactor: Double?
    public var originalMaxPositionEmbeddings: Int?

    public init(type: String, factor: Double? = nil, lowFreqFactor: Double? = nil, highFreqFactor: Double? = nil,
                originalMaxPositionEmbeddings: Int? = nil) {
        self.type = type; self.factor = factor; self.lowFreqFactor = lowFreqFactor
        self.highFreqFactor = highFreqFactor; self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
    }
}

/// The model families quantkit runs: Llama's decoder layer and its variants.
public enum ModelFamily: String, Sendable, CaseIterable {
    /// LlamaForCausalLM, MistralForCausalLM: no biases; GGUF stores q/k rows permuted for ggml's interleaved RoPE.
    case llama
    /// Qwen2ForCausalLM: biases on q, k and v; GGUF keeps HF's row order (ggml's NeoX RoPE).
    case qwen2

    /// HF `architectures` entries of the family.
    public var hfArchitectures: [String] { self == .llama ? ["LlamaForCausalLM", "MistralForCausalLM"] : ["Qwen2ForCausalLM"] }
    /// GGUF `general.architecture` (and the prefix of its hyper-parameter keys).
    public var gguf: String { rawValue }

    public init?(hfArchitecture a: String) {
        guard let f = Self.allCases.first(where: { $0.hfArchitectures.contains(a) }) else { return nil }
        self = f
    }
}

/// The hyper-parameters of a LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM checkpoint.
public struct LlamaConfig: Equatable, Sendable {
    public var architecture: String = "LlamaForCausalLM"
    public var family: ModelFamily = .llama
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKVHeads: Int
    /// `head_dim` when config.json gives it, else hidden / heads.
    public var headDim: Int
    public var headDimExplicit: Bool = false
    public var vocabSize: Int
    public var rmsNormEps: Double = 1e-6
    public var ropeTheta: Double = 10000
    public var ropeThetaExplicit: Bool = true
    public var ropeScaling: RopeScaling?
    public var maxPositionEmbeddings: Int?
    public var tieWordEmbeddings: Bool = false
    public var bosTokenId: Int?
    public var eosTokenIds: [Int] = []
    public var padTokenId: Int?
    public var torchDtype: String?
    /// The raw config.json, for keys not modelled here.
    public var raw: JSONValue = .object([])

    public init(hiddenSize: Int, intermediateSize: Int, numLayers: Int, numHeads: Int, numKVHeads: Int,
                vocabSize: Int, headDim: Int? = nil) {
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads
        self.vocabSize = vocabSize
        self.headDim = headDim ?? (numHeads > 0 ? hiddenSize / numHeads : 0)
        self.headDimExplicit = headDim != nil
    }

    public static let supportedArchitectures = ModelFamily.allCases.flatMap(\.hfArchitectures)

    /// Parses and checks config.json.
    public static func load(path: String) throws -> LlamaConfig {
        let j = try JSONParser.parse(file: path)
        return try parse(j, file: path)
    }

    public static func parse(_ j: JSONValue, file: String) throws -> LlamaConfig {
        guard j.object != nil else { throw QKError(file: file, "config.json is not a JSON object") }
        let archs = j["architectures"]?.array?.compactMap(\.string) ?? []
        guard let arch = archs.first else {
            throw QKError(file: file, "no \"architectures\" entry; quantkit converts \(supportedArchitectures.joined(separator: ", "))")
        }
        guard let family = ModelFamily(hfArchitecture: arch) else {
            throw QKError(file: file, "unsupported architecture \(arch); quantkit converts \(supportedArchitectures.joined(separator: ", "))")
        }
        if j["attention_bias"]?.bool == true || j["mlp_bias"]?.bool == true {
            throw QKError(file: file, "attention_bias / mlp_bias are not supported for \(arch)")
        }
        if family == .qwen2, j["use_sliding_window"]?.bool == true {
            throw QKError(file: file, "sliding-window attention (use_sliding_window) is not supported")
        }
        func int(_ k: String, required: Bool = true) throws -> Int? {
            guard let v = j[k], !v.isNull else {
                if required { throw QKError(file: file, "missing \"\(k)\"") }
                return nil
            }
            guard let i = v.int else { throw QKError(file: file, "\"\(k)\" must be an integer, found \(v.serialized(indent: 0))") }
            return i
        }
        func positive(_ k: String) throws -> Int {
            let v = try int(k)!
            guard v > 0 && v <= 1 << 24 else { throw QKError(file: file, "\"\(k)\" = \(v) is out of range") }
            return v
        }
        let hidden = try positive("hidden_size")
        let inter = try positive("intermediate_size")
        let layers = try positive("num_hidden_layers")
        let heads = try positive("num_attention_heads")
        let kvHeads = try int("num_key_value_heads", required: false) ?? heads
        let vocab = try positive("vocab_size")
        guard kvHeads > 0, heads % kvHeads == 0 else {
            throw QKError(file: file, "num_attention_heads \(heads) is not a multiple of num_key_value_heads \(kvHeads)")
        }
        let headDim = try int("head_dim", required: false)
        if headDim == nil, hidden % heads != 0 {
            throw QKError(file: file, "hidden_size \(hidden) is not a multiple of num_attention_heads \(heads) and no head_dim is given")
        }
        var c = LlamaConfig(hiddenSize: hidden, intermediateSize: inter, numLayers: layers, numHeads: heads,
                            numKVHeads: kvHeads, vocabSize: vocab, headDim: headDim)
        guard c.headDim > 0, c.headDim % 2 == 0 else { throw QKError(file: file, "head_dim \(c.headDim) must be even and positive") }
        c.architecture = arch
        c.family = family
        if let e = j["rms_norm_eps"], !e.isNull {
            guard let d = e.double, d > 0, d.isFinite else { throw QKError(file: file, "\"rms_norm_eps\" must be a positive number") }
            c.rmsNormEps = d
        }
        let ropeParams = j["rope_parameters"]
        if let t = j["rope_theta"] ?? ropeParams?["rope_theta"], !t.isNull {
            guard let d = t.double, d > 0, d.isFinite else { throw QKError(file: file, "\"rope_theta\" must be a positive number") }
            c.ropeTheta = d
        } else {
            c.ropeThetaExplicit = false
        }
        if let rs = j["rope_scaling"], rs.object != nil {
            let type = rs["rope_type"]?.string ?? rs["type"]?.string ?? ""
            c.ropeScaling = RopeScaling(type: type, factor: rs["factor"]?.double, lowFreqFactor: rs["low_freq_factor"]?.double,
                                        highFreqFactor: rs["high_freq_factor"]?.double,
                                        originalMaxPositionEmbeddings: rs["original_max_position_embeddings"]?.int)
            if !["linear", "llama3", "yarn", "dynamic", "default", ""].contains(type) {
                throw QKError(file: file, "unsupported rope_scaling type \(type)")
            }
        }
        c.maxPositionEmbeddings = try int("max_position_embeddings", required: false)
        c.tieWordEmbeddings = j["tie_word_embeddings"]?.bool ?? false
        c.bosTokenId = j["bos_token_id"]?.int
        if let e = j["eos_token_id"] {
            if let i = e.int { c.eosTokenIds = [i] } else if let a = e.array { c.eosTokenIds = a.compactMap(\.int) }
        }
        c.padTokenId = j["pad_token_id"]?.int
        c.torchDtype = j["torch_dtype"]?.string ?? j["dtype"]?.string
        c.raw = j
        return c
    }

    /// A config.json for this model, as transformers writes it for its family.
    public func json() -> JSONValue {
        family == .qwen2 ? qwen2JSON() : llamaJSON()
    }

    /// Qwen2Config's keys (sliding window off: quantkit runs full attention).
    func qwen2JSON() -> JSONValue {
        var kv: [(String, JSONValue)] = [("architectures", .array([.string(architecture)])), ("attention_dropout", .double(0))]
        if let b = bosTokenId { kv.append(("bos_token_id", .int(Int64(b)))) }
        if eosTokenIds.count == 1 { kv.append(("eos_token_id", .int(Int64(eosTokenIds[0])))) }
        else if eosTokenIds.count > 1 { kv.append(("eos_token_id", .array(eosTokenIds.map { .int(Int64($0)) }))) }
        kv += [("hidden_act", .string("silu")), ("hidden_size", .int(Int64(hiddenSize))), ("initializer_range", .double(0.02)),
               ("intermediate_size", .int(Int64(intermediateSize)))]
        let maxPos = maxPositionEmbeddings ?? 32768
        kv += [("max_position_embeddings", .int(Int64(maxPos))), ("max_window_layers", .int(Int64(numLayers))),
               ("model_type", .string("qwen2")), ("num_attention_heads", .int(Int64(numHeads))),
               ("num_hidden_layers", .int(Int64(numLayers))), ("num_key_value_heads", .int(Int64(numKVHeads))),
               ("rms_norm_eps", .double(rmsNormEps)), ("rope_scaling", .null), ("rope_theta", .double(ropeTheta)),
               ("sliding_window", .int(Int64(maxPos))), ("tie_word_embeddings", .bool(tieWordEmbeddings)),
               ("torch_dtype", .string(torchDtype ?? "bfloat16")), ("use_cache", .bool(true)), ("use_sliding_window", .bool(false)),
               ("vocab_size", .int(Int64(vocabSize)))]
        return .object(kv)
    }

    /// LlamaConfig's keys.
    func llamaJSON() -> JSONValue {
        var kv: [(String, JSONValue)] = [
            ("architectures", .array([.string(architecture)])),
            ("attention_bias", .bool(false)),
            ("attention_dropout", .double(0)),
        ]
        if let b = bosTokenId { kv.append(("bos_token_id", .int(Int64(b)))) }
        if eosTokenIds.count == 1 { kv.append(("eos_token_id", .int(Int64(eosTokenIds[0])))) }
        else if eosTokenIds.count > 1 { kv.append(("eos_token_id", .array(eosTokenIds.map { .int(Int64($0)) }))) }
        kv += [
            ("head_dim", .int(Int64(headDim))),
            ("hidden_act", .string("silu")),
            ("hidden_size", .int(Int64(hiddenSize))),
            ("initializer_range", .double(0.02)),
            ("intermediate_size", .int(Int64(intermediateSize))),
        ]
        if let m = maxPositionEmbeddings { kv.append(("max_position_embeddings", .int(Int64(m)))) }
        kv += [
            ("mlp_bias", .bool(false)),
            ("model_type", .string(architecture == "MistralForCausalLM" ? "mistral" : "llama")),
            ("num_attention_heads", .int(Int64(numHeads))),
            ("num_hidden_layers", .int(Int64(numLayers))),
            ("num_key_value_heads", .int(Int64(numKVHeads))),
        ]
        if let p = padTokenId { kv.append(("pad_token_id", .int(Int64(p)))) }
        kv += [
            ("pretraining_tp", .int(1)),
            ("rms_norm_eps", .double(rmsNormEps)),
        ]
        if let s = ropeScaling {
            var r: [(String, JSONValue)] = []
            if let f = s.factor { r.append(("factor", .double(f))) }
            if let f = s.highFreqFactor { r.append(("high_freq_factor", .double(f))) }
            if let f = s.lowFreqFactor { r.append(("low_freq_factor", .double(f))) }
            if let o = s.originalMaxPositionEmbeddings { r.append(("original_max_position_embeddings", .int(Int64(o)))) }
            r.append(("rope_type", .string(s.type)))
            kv.append(("rope_scaling", .object(r)))
        } else {
            kv.append(("rope_scaling", .null))
        }
        kv += [
            ("rope_theta", .double(ropeTheta)),
            ("tie_word_embeddings", .bool(tieWordEmbeddings)),
            ("torch_dtype", .string(torchDtype ?? "bfloat16")),
            ("use_cache", .bool(true)),
            ("vocab_size", .int(Int64(vocabSize))),
        ]
        return .object(kv)
    }
}

extension LlamaConfig {
    /// The Llama hyper-parameters a GGUF file's metadata describes.
    public init(gguf g: GGUFFile) throws {
        guard let arch = g["general.architecture"]?.string else { throw QKError(file: g.path, "missing general.architecture") }
        guard let family = ModelFamily(rawValue: arch) else {
            let known = ModelFamily.allCases.map(\.gguf).joined(separator: ", ")
            throw QKError(file: g.path, "unsupported architecture \(arch) (quantkit reads \(known))")
        }
        let a = family.gguf
        let hidden = try g.requireInt(a + ".embedding_length")
        let heads = try g.requireInt(a + ".attention.head_count")
        let kvHeads = g[a + ".attention.head_count_kv"]?.int ?? heads
        let layers = try g.requireInt(a + ".block_count")
        guard let ffv = g[a + ".feed_forward_length"] else { throw QKError(file: g.path, "missing metadata key \(a).feed_forward_length") }
        guard let ff = ffv.int ?? ffv.array?.first?.int else { throw QKError(file: g.path, "\(a).feed_forward_length is not an integer") }
        let nTokens = g["tokenizer.ggml.tokens"]?.array?.count
        let vocab = g[a + ".vocab_size"]?.int ?? nTokens ?? g.tensor("token_embd.weight")?.ne.last ?? 0
        guard hidden > 0, heads > 0, kvHeads > 0, heads % kvHeads == 0, layers > 0, ff > 0, vocab > 0 else {
            throw QKError(file: g.path, "inconsistent \(a) hyper-parameters (embedding \(hidden), heads \(heads)/\(kvHeads), layers \(layers), " +
                          "ffn \(ff), vocab \(vocab))")
        }
        let headDim = g[a + ".attention.key_length"]?.int ?? g[a + ".rope.dimension_count"]?.int ?? hidden / heads
        var c = LlamaConfig(hiddenSize: hidden, intermediateSize: ff, numLayers: layers, numHeads: heads, numKVHeads: kvHeads,
                            vocabSize: vocab, headDim: headDim)
        c.family = family
        c.architecture = family.hfArchitectures[0]
        c.rmsNormEps = g[a + ".attention.layer_norm_rms_epsilon"]?.double.map { Double(String(Float($0))) ?? $0 } ?? 1e-5
        c.ropeTheta = g[a + ".rope.freq_base"]?.double ?? 10000
        c.maxPositionEmbeddings = g[a + ".context_length"]?.int
        c.tieWordEmbeddings = g.tensor("output.weight") == nil
        c.bosTokenId = g["tokenizer.ggml.bos_token_id"]?.int
        if let e = g["tokenizer.ggml.eos_token_id"]?.int { c.eosTokenIds = [e] }
        c.padTokenId = g["tokenizer.ggml.padding_token_id"]?.int
        if let t = g[a + ".rope.scaling.type"]?.string, t != "none" {
            c.ropeScaling = RopeScaling(type: t, factor: g[a + ".rope.scaling.factor"]?.double,
                                        originalMaxPositionEmbeddings: g[a + ".rope.scaling.original_context_length"]?.int)
        }
        self = c
    }
}
