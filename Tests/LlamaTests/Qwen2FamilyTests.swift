import XCTest
import ModelFormats
@testable import Llama

/// Qwen2 through the model table: its config, biases on q/k/v, no q/k permutation, refusals.
final class Qwen2FamilyTests: XCTestCase {
    /// Qwen2.5-Coder-0.5B-Instruct's config.json (the keys quantkit reads).
    static let config = """
    {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
     "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
     "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "max_position_embeddings": 32768, "tie_word_embeddings": true,
     "use_sliding_window": false, "sliding_window": 32768, "max_window_layers": 24, "bos_token_id": 151643,
     "eos_token_id": 151645, "torch_dtype": "bfloat16"}
    """

    func parse(_ s: String) throws -> LlamaConfig {
        try LlamaConfig.parse(JSONParser.parse(Data(s.utf8), file: "config.json"), file: "config.json")
    }

    func testConfigTensorsAndRowOrder() throws {
        let c = try parse(Self.config)
        XCTAssertEqual(c.family, .qwen2)
        XCTAssertEqual(c.headDim, 64)
        let expected = Dictionary(uniqueKeysWithValues: LlamaTensors.expected(c).map { ($0.name, $0.shape) })
        XCTAssertEqual(expected["model.layers.3.self_attn.q_proj.bias"], [896])
        XCTAssertEqual(expected["model.layers.3.self_attn.k_proj.bias"], [128])
        XCTAssertEqual(expected["model.layers.3.self_attn.v_proj.bias"], [128])
        XCTAssertNil(expected["model.layers.3.self_attn.o_proj.bias"])
        XCTAssertNil(expected["lm_head.weight"], "tied")
        XCTAssertEqual(expected.count, 1 + 24 * (2 + 7 + 3) + 1)
        // GGUF keeps HF's q/k row order for Qwen2 (ggml's NeoX RoPE); Llama permutes
        XCTAssertNil(LlamaLinear.q.permutedHeads(c))
        let rows = (0..<(896 * 2)).map { Float($0) }
        var small = c
        small.hiddenSize = 2
        XCTAssertEqual(try LlamaLinear.q.toGGUF(rows, small), rows)
        var smallLlama = small
        smallLlama.family = .llama
        XCTAssertNotEqual(try LlamaLinear.q.toGGUF(rows, smallLlama), rows)
        var llama = c
        llama.family = .llama
        XCTAssertEqual(LlamaLinear.q.permutedHeads(llama), 14)
        XCTAssertEqual(LlamaTensorNames.gguf("model.layers.3.self_attn.k_proj.bias"), "blk.3.attn_k.bias")
        XCTAssertEqual(LlamaTensorNames.hf("blk.3.attn_v.bias"), "model.layers.3.self_attn.v_proj.bias")
    }

    func testConfigJSONRoundTripsAsQwen2() throws {
        let c = try parse(Self.config)
        let j = c.json()
        XCTAssertEqual(j["model_type"]?.string, "qwen2")
        XCTAssertEqual(j["use_sliding_window"]?.bool, false)
        let back = try LlamaConfig.parse(j, file: "config.json")
        XCTAssertEqual(back.family, .qwen2)
        for kp in [\LlamaConfig.hiddenSize, \.intermediateSize, \.numLayers, \.numHeads, \.numKVHeads, \.vocabSize, \.headDim] {
            XCTAssertEqual(back[keyPath: kp], c[keyPath: kp])
        }
        XCTAssertEqual(back.ropeTheta, c.ropeTheta)
        XCTAssertEqual(back.tieWordEmbeddings, c.tieWordEmbeddings)
    }

    func testWhatItDoesNotRunIsRefusedByName() {
        let sliding = Self.config.replacingOccurrences(of: "\"use_sliding_window\": false", with: "\"use_sliding_window\": true")
        XCTAssertThrowsError(try parse(sliding)) { XCTAssertTrue("\($0)".contains("sliding-window"), "\($0)") }
        let moe = Self.config.replacingOccurrences(of: "Qwen2ForCausalLM", with: "Qwen2MoeForCausalLM")
        XCTAssertThrowsError(try parse(moe)) { XCTAssertTrue("\($0)".contains("unsupported architecture Qwen2MoeForCausalLM"), "\($0)") }
        let biased = Self.config.replacingOccurrences(of: "\"model_type\": \"qwen2\"", with: "\"model_type\": \"qwen2\", \"mlp_bias\": true")
        XCTAssertThrowsError(try parse(biased)) { XCTAssertTrue("\($0)".contains("mlp_bias"), "\($0)") }
    }
}
