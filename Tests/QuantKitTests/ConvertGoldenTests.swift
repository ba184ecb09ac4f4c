import Calibration
import ModelFormats
import XCTest
@testable import QuantKit

/// `convert` of the golden micro checkpoint is byte-identical to llama.cpp's convert_hf_to_gguf.py
/// (commit 0c1e570, gguf-py 0.19.0) at every output type it supports.
final class ConvertGoldenTests: XCTestCase {
    func testByteIdenticalToConvertHFToGGUF() throws {
        // The directory name becomes general.name, as in the converter: keep "micro-llama-hf".
        for type in ["f32", "f16", "bf16", "q8_0"] {
            let out = Support.tmpDir() + "/micro-llama-\(type).gguf"
            let r = try Converter.convert(Support.microHF, to: out, outType: Converter.OutType(rawValue: type)!)
            XCTAssertEqual(r.tensors, 21)
            XCTAssertEqual(try Support.sha256(out), try Support.goldenSHA("convert/micro-llama-\(type).gguf"), "convert --type \(type)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".partial"))
        }
    }

    func testMetadataOrderAndTypes() throws {
        let out = Support.tmpDir() + "/m.gguf"
        _ = try Converter.convert(Support.microHF, to: out, outType: .f16)
        let g = try GGUFFile(path: out)
        XCTAssertEqual(g.metadata.prefix(4).map(\.key), ["general.architecture", "general.type", "general.name", "general.size_label"])
        XCTAssertEqual(g["general.name"], .string("Micro Llama Hf"))
        XCTAssertEqual(g["general.size_label"], .string("2.1M"))
        XCTAssertEqual(g["llama.context_length"], .uint32(2048))
        XCTAssertEqual(g["llama.attention.layer_norm_rms_epsilon"], .float32(1e-5))
        XCTAssertEqual(g["tokenizer.ggml.add_bos_token"], .bool(true))
        XCTAssertEqual(g["general.file_type"], .uint32(1))
        XCTAssertEqual(g.tensors.first?.name, "output.weight")  // safetensors names sorted: lm_head first
        XCTAssertEqual(g.tensor("blk.0.attn_norm.weight")?.type, .f32)
    }

    func testAutoPicksTheCheckpointDType() throws {
        let out = Support.tmpDir() + "/micro-llama-hf.gguf"
        _ = try Converter.convert(Support.microHF, to: out, outType: .auto)
        XCTAssertEqual(try Support.sha256(out), try Support.goldenSHA("convert/micro-llama-bf16.gguf"))
    }

    func testGeneralMetadataHeuristics() {
        let s = GeneralMetadata.fromModelId("smollm2-135m-instruct", totalParams: 134_515_008)
        XCTAssertEqual(s.name, "Smollm2 135m Instruct")
        XCTAssertEqual(s.basename, "smollm2")
        XCTAssertEqual(s.sizeLabel, "135M")
        XCTAssertEqual(s.finetune, "instruct")
        let t = GeneralMetadata.fromModelId("TinyLlama/TinyLlama-1.1B-Chat-v1.0", totalParams: 1_100_048_384)
        XCTAssertEqual(t.name, "TinyLlama 1.1B Chat v1.0")
        XCTAssertEqual(t.organization, "TinyLlama")
        XCTAssertEqual(t.sizeLabel, "1.1B")
        XCTAssertEqual(t.version, "v1.0")
        XCTAssertEqual(t.finetune, "Chat")
        let m = GeneralMetadata.fromModelId("micro-llama-hf", totalParams: 2_072_736)
        XCTAssertNil(m.basename)
        XCTAssertEqual(GeneralMetadata.sizeLabel(parameters: 2_072_736), "2.1M")
        XCTAssertEqual(GeneralMetadata.sizeLabel(parameters: 134_515_008), "135M")
        XCTAssertEqual(GeneralMetadata.sizeLabel(parameters: 1_100_048_384), "1.1B")
    }
}

/// A Llama checkpoint whose SentencePiece-style tokenizer ships only as tokenizer.json (no tokenizer.model).
final class LlamaHFTokenizerJSONTests: XCTestCase {
    func testConvertsWithTheConvertersLlamaHfVocabRules() throws {
        let dir = Support.tmpDir() + "/no-spm-model"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
            try FileManager.default.copyItem(atPath: Support.microHF + "/" + f, toPath: dir + "/" + f)
        }
        _ = try Converter.convert(dir, to: dir + "/m.gguf", outType: .f16)
        _ = try Converter.convert(Support.microHF, to: dir + "/ref.gguf", outType: .f16)
        let g = try GGUFFile(path: dir + "/m.gguf"), ref = try GGUFFile(path: dir + "/ref.gguf")
        XCTAssertEqual(g["tokenizer.ggml.model"], .string("llama"))
        XCTAssertTrue(g["tokenizer.ggml.tokens"] == ref["tokenizer.ggml.tokens"])  // the same 32000 pieces in the same order
        XCTAssertTrue(g["tokenizer.ggml.scores"]?.array?.allSatisfy { $0 == .float32(-1000) } ?? false)
        let types = g["tokenizer.ggml.token_type"]?.array?.compactMap(\.int) ?? []
        XCTAssertEqual(Array(types.prefix(4)), [3, 3, 3, 6])  // <unk> <s> </s> are special → CONTROL; <0x00> BYTE
        XCTAssertEqual(types.filter { $0 == 6 }.count, 256)
        XCTAssertEqual(g["tokenizer.ggml.bos_token_id"], .uint32(1))
        XCTAssertEqual(g["tokenizer.ggml.add_bos_token"], .bool(true))
        for t in ref.tensors { XCTAssertTrue(Array(g.bytes(of: g.tensor(t.name)!)) == Array(ref.bytes(of: t)), t.name) }
    }
}

/// The micro Qwen2 checkpoint (`quantkit synth micro-qwen2` + Qwen2.5's tokenizer files): convert is byte-identical to
/// convert_hf_to_gguf.py at f32/f16/bf16/q8_0 and quantize of its bf16 GGUF to llama-quantize's Q4_K_M and Q4_0
/// (Formats/golden/micro-qwen2/SHA256SUMS, made by Scripts/golden-micro-qwen2 with llama.cpp 0c1e570).
final class MicroQwen2GoldenTests: XCTestCase {
    static let golden = Support.golden.appendingPathComponent("micro-qwen2").path

    func goldenSums() throws -> [String: String] {
        let text = try String(contentsOfFile: Self.golden + "/SHA256SUMS", encoding: .utf8)
        var d: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            d[String(parts[1])] = String(parts[0])
        }
        return d
    }

    /// The checkpoint as the golden script makes it, in a directory named as there (general.name comes from it).
    static func makeCheckpoint() throws -> String {
        let dir = Support.tmpDir() + "/micro-qwen2-hf"
        try SyntheticCheckpoint.write(shape: "micro-qwen2", to: dir)
        let zst = try Data(contentsOf: URL(fileURLWithPath: Self.golden + "/tokenizer.json.zst"))
        try Corpus.decompressZstd(zst, file: "tokenizer.json.zst").write(to: URL(fileURLWithPath: dir + "/tokenizer.json"))
        for f in ["tokenizer_config.json", "special_tokens_map.json", "generation_config.json"] {
            try FileManager.default.copyItem(atPath: Self.golden + "/" + f, toPath: dir + "/" + f)
        }
        return dir
    }

    func testConvertAndPresetsMatchLlamaCpp() throws {
        let sums = try goldenSums()
        XCTAssertEqual(sums.count, 8)
        let hf = try Self.makeCheckpoint()
        XCTAssertEqual(try Support.sha256(hf + "/config.json"), sums["micro-qwen2-hf/config.json"], "synth config.json")
        XCTAssertEqual(try Support.sha256(hf + "/model.safetensors"), sums["micro-qwen2-hf/model.safetensors"], "synth weights")
        let out = Support.tmpDir()
        for type in ["f32", "f16", "bf16", "q8_0"] {
            let path = out + "/micro-qwen2-\(type).gguf"
            let r = try Converter.convert(hf, to: path, outType: Converter.OutType(rawValue: type)!)
            XCTAssertEqual(r.tensors, 26)   // 2 × (7 linears + 3 biases + 2 norms) + embedding + final norm; output tied
            XCTAssertEqual(try Support.sha256(path), sums["micro-qwen2-\(type).gguf"], "convert --type \(type)")
        }
        let g = try GGUFFile(path: out + "/micro-qwen2-bf16.gguf")
        XCTAssertEqual(g["general.architecture"], .string("qwen2"))
        XCTAssertEqual(g["tokenizer.ggml.pre"], .string("qwen2"))
        XCTAssertNil(g.tensor("output.weight"))
        XCTAssertEqual(g.tensor("blk.1.attn_k.bias")?.type, .f32)
        for preset in ["Q4_K_M", "Q4_0"] {
            let path = out + "/micro-qwen2-\(preset).gguf"
            _ = try GGUFQuantizer.quantize(out + "/micro-qwen2-bf16.gguf", to: path, options: .init(preset: .named(preset)!))
            XCTAssertEqual(try Support.sha256(path), sums["micro-qwen2-\(preset).gguf"], "quantize --type \(preset)")
        }
    }
}
