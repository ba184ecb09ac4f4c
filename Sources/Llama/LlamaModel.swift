import Foundation
import ModelFormats
import Quantization
import TensorCore

/// Llama weights as f32, HF layout ([out, in] row-major, q/k rows in rotate-half order), converted once per load.
public final class LlamaWeights {
    public struct Layer {
        public var attnNorm: [Float], ffnNorm: [Float]
        public var wq: [Float], wk: [Float], wv: [Float], wo: [Float]
        public var wGate: [Float], wUp: [Float], wDown: [Float]
    }
    public let config: LlamaConfig
    public var embed: [Float]       // [vocab, hidden]
    public var norm: [Float]        // [hidden]
    public var lmHead: [Float]?     // [vocab, hidden]; nil when tied
    public var layers: [Layer]

    public init(config: LlamaConfig, embed: [Float], norm: [Float], lmHead: [Float]?, layers: [Layer]) {
        self.config = config; self.embed = embed; self.norm = norm; self.lmHead = lmHead; self.layers = layers
    }

    /// Loads from any source of named f32 tensors in HF layout.
    public static func load(config c: LlamaConfig, tensor: (String) throws -> [Float]?) throws -> LlamaWeights {
        func req(_ n: String, _ count: Int) throws -> [Float] {
            guard let t = try tensor(n) else { throw QKError("missing tensor \(n)") }
            guard t.count == count else { throw QKError("tensor \(n) has \(t.count) values, expected \(count)") }
            return t
        }
        let h = c.hiddenSize, q = c.numHeads * c.headDim, kv = c.numKVHeads * c.headDim, f = c.intermediateSize
        var layers: [Layer] = []
        for l in 0..<c.numLayers {
            let p = "model.layers.\(l)."
            layers.append(Layer(attnNorm: try req(p + "input_layernorm.weight", h), ffnNorm: try req(p + "post_attention_layernorm.weight", h),
                                wq: try req(p + "self_attn.q_proj.weight", q * h), wk: try req(p + "self_attn.k_proj.weight", kv * h),
                                wv: try req(p + "self_attn.v_proj.weight", kv * h), wo: try req(p + "self_attn.o_proj.weight", h * q),
                                wGate: try req(p + "mlp.gate_proj.weight", f * h), wUp: try req(p + "mlp.up_proj.weight", f * h),
                                wDown: try req(p + "mlp.down_proj.weight", h * f)))
        }
        let embed = try req("model.embed_tokens.weight", c.vocabSize * h)
        let head = c.tieWordEmbeddings ? nil : try tensor("lm_head.weight")
        return LlamaWeights(config: c, embed: embed, norm: try req("model.norm.weight", h), lmHead: head, layers: layers)
    }

    /// An HF checkpoint (F32/F16/BF16 safetensors).
    public static func load(hfCheckpoint ck: SafetensorsCheckpoint, config: LlamaConfig) throws -> LlamaWeights {
        try load(config: config) { n in ck.info(n) == nil ? nil : try ck.floats(n) }
    }

    /// A GGUF file of any type quantkit can dequantize; q/k rows are permuted back to HF order.
    public static func load(gguf g: GGUFFile, config c: LlamaConfig) throws -> LlamaWeights {
        var byHF: [String: GGUFTensorInfo] = [:]
        for t in g.tensors { if let hf = LlamaTensorNames.hf(t.name) { byHF[hf] = t } }
        return try load(config: c) { n in
            guard let t = byHF[n] else { return nil }
            var x = try GGMLCodec.dequantize(t.type, g.bytes(of: t), count: t.elementCount)
            if t.ne.count == 2 && n.hasSuffix("q_proj.weight") {
                x = LlamaTensorNames.gatherRows(x, rowLength: t.ne[0], src: try LlamaTensorNames.qkInversePermutation(rows: t.ne[1], heads: c.numHeads))
            }
            if t.ne.count == 2 && n.hasSuffix("k_proj.weight") {
                x = LlamaTensorNames.gatherRows(x, rowLength: t.ne[0], src: try LlamaTensorNames.qkInversePermutation(rows: t.ne[1], heads: c.numKVHeads))
            }
            return x
        }
    }
}
