import Checkpoints
import Foundation
import Llama
import TensorCore
import Tokenizers

/// Text generation with the KV cache: greedy by default, or temperature + top-p sampling with a seed.
public enum Generator {
    public struct Options {
        public var maxTokens = 64
        public var temperature: Float = 0
        public var topP: Float = 1
        public var seed: UInt64 = 0
        public var chat = false
        public var system: String?
        /// How decoding meets the activations (LlamaWeights.activationRounding).
        public var activations = ActivationRounding.exact
        public init() {}
    }

    /// System messages ChatML templates add when the conversation has none (SmolLM2, Qwen2.5).
    static let defaultSystemPrompts = ["You are a helpful AI assistant named SmolLM, trained by Hugging Face",
                                       "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."]

    /// The chat prompt for a model's template family (ChatML as SmolLM2 uses it, Zephyr as TinyLlama-Chat, Llama 2).
    public static func chatPrompt(template: String?, user: String, system: String?) throws -> String {
        guard let t = template else { throw QKError("the model has no chat template (tokenizer.chat_template); drop --chat") }
        if t.contains("<|im_start|>") {
            var s = ""
            if let system { s += "<|im_start|>system\n\(system)<|im_end|>\n" }
            else if let d = defaultSystemPrompts.first(where: { t.contains($0) }) {
                // the system message the template puts in when none is given
                s += "<|im_start|>system\n\(d)<|im_end|>\n"
            }
            return s + "<|im_start|>user\n\(user)<|im_end|>\n<|im_start|>assistant\n"
        }
        if t.contains("<|user|>") {
            var s = ""
            if let system { s += "<|system|>\n\(system)</s>\n" }
            return s + "<|user|>\n\(user)</s>\n<|assistant|>\n"
        }
        if t.contains("[INST]") {
            let sys = system.map { "<<SYS>>\n\($0)\n<</SYS>>\n\n" } ?? ""
            return "[INST] \(sys)\(user) [/INST]"
        }
        throw QKError("unsupported chat template family (ChatML, Zephyr and Llama 2 templates are supported)")
    }

    /// Returns the prompt's token ids and the generated ids (stopping at EOS / end-of-turn tokens).
    public static func generate(_ m: LoadedModel, prompt: String, options o: Options, onToken: ((Int32) -> Void)? = nil) throws -> (prompt: [Int32], output: [Int32]) {
        let text = o.chat ? try chatPrompt(template: m.tokenizer.vocabulary.chatTemplate, user: prompt, system: o.system) : prompt
        let ids = m.tokenizer.encode(text, addSpecial: true, parseSpecial: o.chat)
        guard !ids.isEmpty else { throw QKError("the prompt is empty") }
        let cfg = m.forward.w.config
        // every token runs every layer: keep each layer once made, as the file stores its linears where quantkit has
        // row kernels for them (decoding reads the file's bytes, not f32 copies), else as f32
        m.forward.w.keepLayers = true
        m.forward.w.storedLinears = true
        m.forward.w.activationRounding = o.activations
        try m.forward.w.holdStoredHead()
        let cache = LlamaForward.KVCache(config: cfg, capacity: ids.count + o.maxTokens)
        var stop = Set<Int32>()
        let v = m.tokenizer.vocabulary
        if let e = v.eos { stop.insert(Int32(e)) }
        if let e = v.eot { stop.insert(Int32(e)) }
        for (i, t) in v.tokens.enumerated() where ["<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>"].contains(t) { stop.insert(Int32(i)) }
        var rng = o.seed &+ 0x9E37_79B9_7F4A_7C15
        func uniform() -> Float {
            rng &+= 0x9E37_79B9_7F4A_7C15
            var z = rng
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Float((z ^ (z >> 31)) >> 40) / Float(1 << 24)
        }
        var logits = try m.forward.logits(ids, cache: cache, logitRows: (ids.count - 1)..<ids.count)
        var out: [Int32] = []
        for _ in 0..<o.maxTokens {
            let next: Int32
            if o.temperature <= 0 {
                var best = 0
                for i in 1..<logits.count where logits[i] > logits[best] { best = i }
                next = Int32(best)
            } else {
                let mx = logits.max()!
                var p = logits.enumerated().map { ($0.offset, exp(($0.element - mx) / o.temperature)) }
                let z = p.reduce(0) { $0 + $1.1 }
                p.sort { $0.1 > $1.1 }
                var kept: [(Int, Float)] = [], acc: Float = 0
                for e in p { kept.append((e.0, e.1 / z)); acc += e.1 / z; if acc >= o.topP { break } }
                var u = uniform() * acc
                var pick = kept.last!.0
                for e in kept { u -= e.1; if u <= 0 { pick = e.0; break } }
                next = Int32(pick)
            }
            if stop.contains(next) { break }
            out.append(next)
            onToken?(next)
            if out.count == o.maxTokens { break }
            try m.forward.logits([next], cache: cache, into: &logits)   // one buffer for every token's logits
        }
        return (ids, out)
    }
}
