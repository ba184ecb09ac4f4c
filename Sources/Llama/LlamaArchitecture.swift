import ModelFormats
import TensorCore

/// The Llama decoder layer, named once. Every other module asks these tables for a tensor's HF and GGUF names, the
/// activation that feeds a linear (what calibration captures), its stage and its shape; a variant of the
/// architecture is a change here, not a string switch elsewhere.

/// An activation inside a decoder layer that feeds linears; also the calibration stages, in execution order
/// (true-sequential GPTQ quantizes the linears of one stage, then re-runs the layer for the next).
public enum LlamaInput: Int, CaseIterable, Sendable, Comparable {
    /// input_layernorm(x) [T × hidden] → q, k, v
    case attnNormed
    /// softmax(q·kᵀ/√d)·v [T × heads·headDim] → o
    case attention
    /// post_attention_layernorm(x) [T × hidden] → gate, up
    case ffnNormed
    /// silu(gate)·up [T × intermediate] → down
    case mlpHidden
    /// model.norm(x) [T × hidden] → lm_head (after the last layer)
    case output

    /// The linears this activation feeds, in table order.
    public var linears: [LlamaLinear] { LlamaLinear.allCases.filter { $0.input == self } }
    /// The stages of a decoder layer (everything but the head's input).
    public static let layerStages: [LlamaInput] = [.attnNormed, .attention, .ffnNormed, .mlpHidden]
    public static func < (a: LlamaInput, b: LlamaInput) -> Bool { a.rawValue < b.rawValue }
}

/// The RMSNorm gains of a decoder layer.
public enum LlamaNorm: Int, CaseIterable, Sendable {
    case attn, ffn

    public var hf: String { Self.names[rawValue].hf }
    public var gguf: String { Self.names[rawValue].gguf }
    public func hfName(layer l: Int) -> String { "model.layers.\(l).\(hf).weight" }

    static let names: [(hf: String, gguf: String)] = [("input_layernorm", "attn_norm"), ("post_attention_layernorm", "ffn_norm")]
}

/// The linears of a decoder layer.
public enum LlamaLinear: Int, CaseIterable, Sendable {
    case q, k, v, o, gate, up, down

    struct Spec {
        let hf: String
        let gguf: String
        let input: LlamaInput
        /// [out, in] from the config.
        let shape: @Sendable (LlamaConfig) -> (rows: Int, cols: Int)
        /// Heads of llama.cpp's q/k row permutation (GGUF stores q and k rows interleaved per head).
        let permutedHeads: (@Sendable (LlamaConfig) -> Int)?
    }

    static let specs: [Spec] = [
        Spec(hf: "self_attn.q_proj", gguf: "attn_q", input: .attnNormed, shape: { ($0.numHeads * $0.headDim, $0.hiddenSize) },
             permutedHeads: { $0.numHeads }),
        Spec(hf: "self_attn.k_proj", gguf: "attn_k", input: .attnNormed, shape: { ($0.numKVHeads * $0.headDim, $0.hiddenSize) },
             permutedHeads: { $0.numKVHeads }),
        Spec(hf: "self_attn.v_proj", gguf: "attn_v", input: .attnNormed, shape: { ($0.numKVHeads * $0.headDim, $0.hiddenSize) },
             permutedHeads: nil),
        Spec(hf: "self_attn.o_proj", gguf: "attn_output", input: .attention, shape: { ($0.hiddenSize, $0.numHeads * $0.headDim) },
             permutedHeads: nil),
        Spec(hf: "mlp.gate_proj", gguf: "ffn_gate", input: .ffnNormed, shape: { ($0.intermediateSize, $0.hiddenSize) }, permutedHeads: nil),
        Spec(hf: "mlp.up_proj", gguf: "ffn_up", input: .ffnNormed, shape: { ($0.intermediateSize, $0.hiddenSize) }, permutedHeads: nil),
        Spec(hf: "mlp.down_proj", gguf: "ffn_down", input: .mlpHidden, shape: { ($0.hiddenSize, $0.intermediateSize) }, permutedHeads: nil),
    ]

    var spec: Spec { Self.specs[rawValue] }
    /// The HF module name inside a layer ("self_attn.q_proj").
    public var hf: String { spec.hf }
    /// The GGUF tensor stem ("attn_q").
    public var gguf: String { spec.gguf }
    /// The activation that feeds it (and its calibration stage).
    public var input: LlamaInput { spec.input }
    /// [out, in] under `c`.
    public func shape(_ c: LlamaConfig) -> (rows: Int, cols: Int) { spec.shape(c) }
    /// Heads of the q/k row permutation GGUF applies to this linear's rows, nil when its rows keep their order (and
    /// always for Qwen2, whose GGUF keeps HF's order).
    public func permutedHeads(_ c: LlamaConfig) -> Int? { c.family == .llama ? spec.permutedHeads?(c) : nil }
    /// Whether the linear has a bias [rows] under `c` (Qwen2's q, k, v).
    public func hasBias(_ c: LlamaConfig) -> Bool { c.family.biasedLinears.contains(self) }
    /// "model.layers.L.self_attn.q_proj" (the packed formats' module name).
    public func module(layer l: Int) -> String { "model.layers.\(l).\(hf)" }
    /// "model.layers.L.self_attn.q_proj.weight"
    public func hfName(layer l: Int) -> String { module(layer: l) + ".weight" }
    /// "blk.L.attn_q.weight"
    public func ggufName(layer l: Int) -> String { "blk.\(l).\(gguf).weight" }
    /// "model.layers.L.self_attn.q_proj.bias"
    public func biasHFName(layer l: Int) -> String { module(layer: l) + ".bias" }
    /// "blk.L.attn_q.bias"
    public func biasGGUFName(layer l: Int) -> String { "blk.\(l).\(gguf).bias" }

    /// The linear of an HF module suffix ("self_attn.q_proj"), nil for anything else.
    public init?(hf: String) {
        guard let i = Self.specs.firstIndex(where: { $0.hf == hf }) else { return nil }
        self.init(rawValue: i)
    }

    /// (layer, linear) of an HF weight name "model.layers.L.<hf>.weight".
    public static func parse(hfName n: String) -> (layer: Int, linear: LlamaLinear)? {
        guard n.hasSuffix(".weight"), let lin = LlamaTensorNames.linear(of: n), let l = LlamaTensorNames.layer(of: n) else { return nil }
        return (l, lin)
    }

    /// HF rows → GGUF rows for q/k (identity for the others): applied where GGUF is written.
    public func toGGUF<T>(_ x: [T], _ c: LlamaConfig) throws -> [T] {
        guard let heads = permutedHeads(c) else { return x }
        let (rows, cols) = shape(c)
        return LlamaTensorNames.gatherRows(x, rowLength: cols, src: try LlamaTensorNames.qkPermutation(rows: rows, heads: heads))
    }

    /// GGUF rows → HF rows for q/k (identity for the others): applied where GGUF is read.
    public func fromGGUF<T>(_ x: [T], _ c: LlamaConfig) throws -> [T] {
        guard let heads = permutedHeads(c) else { return x }
        let (rows, cols) = shape(c)
        return LlamaTensorNames.gatherRows(x, rowLength: cols, src: try LlamaTensorNames.qkInversePermutation(rows: rows, heads: heads))
    }

    /// Packed rows (any bytes per row) HF → GGUF order.
    public func toGGUF(rowBytes x: [UInt8], rowBytes: Int, _ c: LlamaConfig) throws -> [UInt8] {
        guard let heads = permutedHeads(c) else { return x }
        let src = try LlamaTensorNames.qkPermutation(rows: shape(c).rows, heads: heads)
        return x.withUnsafeBytes { LlamaTensorNames.gatherRowBytes($0, rowBytes: rowBytes, src: src) }
    }
}

extension ModelFamily {
    /// The linears that carry a bias.
    public var biasedLinears: Set<LlamaLinear> { self == .qwen2 ? [.q, .k, .v] : [] }
}

/// Every tensor of a Llama checkpoint by HF name with its expected shape ([out, in] / [n]) under `c`: what a
/// checkpoint must hold (lm_head only when untied).
public enum LlamaTensors {
    public static func expected(_ c: LlamaConfig) -> [(name: String, shape: [Int])] {
        let h = c.hiddenSize
        var t: [(String, [Int])] = [("model.embed_tokens.weight", [c.vocabSize, h])]
        for l in 0..<c.numLayers {
            for norm in LlamaNorm.allCases { t.append((norm.hfName(layer: l), [h])) }
            for lin in LlamaLinear.allCases {
                let (rows, cols) = lin.shape(c)
                t.append((lin.hfName(layer: l), [rows, cols]))
                if lin.hasBias(c) { t.append((lin.biasHFName(layer: l), [rows])) }
            }
        }
        t.append(("model.norm.weight", [h]))
        if !c.tieWordEmbeddings { t.append(("lm_head.weight", [c.vocabSize, h])) }
        return t
    }
}
