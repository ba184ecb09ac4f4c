import Checkpoints
import XCTest
import ModelFormats
import Quantization
@testable import QuantKit

/// SLOW, real model (SmolLM2-135M-Instruct, fetched by Scripts/fetch-model): the Q4_1 GGUF from PyPI,
/// exported and converted back, reproduces the tokenizer metadata and the dequantized tensor values.
final class SmolLM2RoundTripTests: XCTestCase {
    func testExportThenConvertReproducesTokenizerAndValues() throws {
        let q41 = try Support.requiredEnv("QUANTKIT_SMOLLM2_GGUF")
        let dir = Support.tmpDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try Exporter.export(q41, to: dir + "/hf", dtype: .f32)
        _ = try Converter.convert(dir + "/hf", to: dir + "/back.gguf", outType: .f32)
        let a = try GGUFFile(path: q41), b = try GGUFFile(path: dir + "/back.gguf")
        for k in ["tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                  "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
                  "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_space_prefix", "tokenizer.chat_template"] {
            XCTAssertNotNil(a[k], k)
            XCTAssertTrue(a[k] == b[k], "\(k): \(a[k]?.summary() ?? "nil") vs \(b[k]?.summary() ?? "nil")")
        }
        XCTAssertEqual((a["tokenizer.ggml.merges"]?.array?.count), 48900)
        XCTAssertEqual(a.tensors.count, b.tensors.count)
        for t in a.tensors {
            guard let u = b.tensor(t.name) else { XCTFail("missing \(t.name)"); continue }
            XCTAssertEqual(u.ne, t.ne, t.name)
            let want = try GGMLCodec.dequantize(t.type, a.bytes(of: t), count: t.elementCount)
            let got = try GGMLCodec.dequantize(u.type, b.bytes(of: u), count: u.elementCount)
            XCTAssertTrue(want == got, "\(t.name) (\(t.type.name)) values differ after export + convert")
        }
    }

    /// The default model as Scripts/fetch-model leaves it: bf16 safetensors whose values are the bf16-rounded Q4_1 values.
    func testDefaultCheckpointIsTheBF16RoundedOriginal() throws {
        let q41 = try Support.requiredEnv("QUANTKIT_SMOLLM2_GGUF")
        let dir = try Support.requiredEnv("QUANTKIT_SMOLLM2_DIR")
        let ck = try HFCheckpoint.open(dir)
        XCTAssertEqual(ck.config.hiddenSize, 576)
        XCTAssertEqual(ck.config.numLayers, 30)
        XCTAssertTrue(ck.config.tieWordEmbeddings)
        let g = try GGUFFile(path: q41)
        let t = g.tensor("blk.7.ffn_down.weight")!
        let want = try GGMLCodec.dequantize(t.type, g.bytes(of: t), count: t.elementCount).map { HalfFloat_bf16Round($0) }
        XCTAssertTrue(try ck.weights.floats("model.layers.7.mlp.down_proj.weight") == want)
    }
}

import TensorCore
func HalfFloat_bf16Round(_ x: Float) -> Float { HalfFloat.bf16ToF32(HalfFloat.f32ToBF16(x)) }
