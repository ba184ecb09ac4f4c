import Llama
import XCTest
import ModelFormats
import Quantization
@testable import QuantKit

final class ExportRoundTripTests: XCTestCase {
    /// GGUF (SentencePiece vocab) → export → convert gives back the same tensor bytes and tokenizer arrays.
    func testMicroSentencePieceRoundTrip() throws {
        let dir = Support.tmpDir()
        let original = dir + "/orig.gguf"
        _ = try Converter.convert(Support.microHF, to: original, outType: .f16)
        let hf = dir + "/exported"
        _ = try Exporter.export(original, to: hf, dtype: .f32)
        for f in ["config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json", "generation_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: hf + "/" + f), f)
        }
        let back = dir + "/back.gguf"
        _ = try Converter.convert(hf, to: back, outType: .f16)
        let a = try GGUFFile(path: original), b = try GGUFFile(path: back)
        XCTAssertEqual(a.tensors.map(\.name), b.tensors.map(\.name))
        for t in a.tensors {
            let u = b.tensor(t.name)!
            XCTAssertEqual(t.type, u.type, t.name)
            XCTAssertEqual(Array(a.bytes(of: t)), Array(b.bytes(of: u)), t.name)
        }
        for k in ["tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
                  "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.add_bos_token",
                  "llama.block_count", "llama.context_length", "llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count",
                  "llama.attention.head_count_kv", "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon", "llama.rope.dimension_count"] {
            XCTAssertTrue(a[k] == b[k], "\(k): \(a[k]?.summary() ?? "nil") vs \(b[k]?.summary() ?? "nil")")
        }
    }

    func testExportedConfigMatchesTheSource() throws {
        let dir = Support.tmpDir()
        _ = try Converter.convert(Support.microHF, to: dir + "/m.gguf", outType: .bf16)
        _ = try Exporter.export(dir + "/m.gguf", to: dir + "/hf")
        let c = try LlamaConfig.load(path: dir + "/hf/config.json")
        let orig = try LlamaConfig.load(path: Support.microHF + "/config.json")
        XCTAssertEqual(c.hiddenSize, orig.hiddenSize)
        XCTAssertEqual(c.intermediateSize, orig.intermediateSize)
        XCTAssertEqual(c.numKVHeads, orig.numKVHeads)
        XCTAssertEqual(c.rmsNormEps, orig.rmsNormEps)
        XCTAssertEqual(c.ropeTheta, orig.ropeTheta)
        XCTAssertEqual(c.tieWordEmbeddings, false)
        // bf16 → bf16: the exported weights are the original bytes (q/k permuted there and back)
        let a = try SafetensorsFile(path: Support.microHF + "/model.safetensors")
        let b = try SafetensorsFile(path: dir + "/hf/model.safetensors")
        XCTAssertEqual(a.tensors.map(\.name), b.tensors.map(\.name))
        for t in a.tensors { XCTAssertEqual(Array(a.bytes(of: t)), Array(b.bytes(of: b.tensor(t.name)!)), t.name) }
    }
}
