import XCTest
import ModelFormats
import TensorCore
@testable import Llama

/// The architecture's tables against real checkpoints and llama.cpp's names.
final class LlamaArchitectureTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Walks the table against a checkpoint: every tensor it holds is one the table names (or one converters drop),
    /// and every tensor the table names is there with the table's shape.
    func walk(_ dir: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let c = try LlamaConfig.load(path: dir + "/config.json")
        let ck = try SafetensorsCheckpoint.open(dir)
        let expected = LlamaTensors.expected(c)
        let held = Set(ck.names.filter { !LlamaTensorNames.isIgnored($0) })
        let named = Set(expected.map(\.name))
        XCTAssertEqual(held.subtracting(named).sorted(), [], "tensors the table does not name", file: file, line: line)
        XCTAssertEqual(named.subtracting(held).sorted(), [], "tensors the table names that are missing", file: file, line: line)
        for (n, shape) in expected { XCTAssertEqual(ck.info(n)?.shape, shape, n, file: file, line: line) }
        XCTAssertEqual(expected.count, 9 * c.numLayers + 2 + (c.tieWordEmbeddings ? 0 : 1))
    }

    func testTableWalksTheGoldenMicroCheckpoint() throws {
        try walk(Self.repo.appendingPathComponent("Formats/golden/micro-llama-hf").path)
    }

    func testTableWalksSmolLM2() throws {
        guard let dir = ProcessInfo.processInfo.environment["QUANTKIT_SMOLLM2_DIR"], FileManager.default.fileExists(atPath: dir + "/config.json") else {
            throw XCTSkip("QUANTKIT_SMOLLM2_DIR is not set (Scripts/test sets it)")
        }
        try walk(dir)
    }

    func testLinearsAndStages() {
        var c = LlamaConfig(hiddenSize: 576, intermediateSize: 1536, numLayers: 30, numHeads: 9, numKVHeads: 3, vocabSize: 49152)
        c.tieWordEmbeddings = true
        XCTAssertEqual(LlamaLinear.allCases.map { $0.shape(c).rows }, [576, 192, 192, 576, 1536, 1536, 576])
        XCTAssertEqual(LlamaLinear.allCases.map { $0.shape(c).cols }, [576, 576, 576, 576, 576, 576, 1536])
        XCTAssertEqual(LlamaInput.layerStages.map { $0.linears }, [[.q, .k, .v], [.o], [.gate, .up], [.down]])
        XCTAssertEqual(LlamaInput.output.linears, [])
        XCTAssertEqual(LlamaLinear.allCases.compactMap { $0.permutedHeads(c) }, [9, 3])
        XCTAssertEqual(LlamaLinear.q.ggufName(layer: 3), "blk.3.attn_q.weight")
        XCTAssertEqual(LlamaLinear.down.hfName(layer: 29), "model.layers.29.mlp.down_proj.weight")
        XCTAssertEqual(LlamaLinear.parse(hfName: "model.layers.7.mlp.up_proj.weight")?.layer, 7)
        XCTAssertEqual(LlamaLinear.parse(hfName: "model.layers.7.mlp.up_proj.weight")?.linear, .up)
        XCTAssertNil(LlamaLinear.parse(hfName: "model.layers.7.input_layernorm.weight"))
        XCTAssertEqual(LlamaTensorNames.linear(of: "model.layers.1.self_attn.k_proj.bias"), .k)
        for lin in LlamaLinear.allCases {
            XCTAssertEqual(LlamaTensorNames.gguf(lin.hfName(layer: 5)), lin.ggufName(layer: 5))
            XCTAssertEqual(LlamaTensorNames.hf(lin.ggufName(layer: 5)), lin.hfName(layer: 5))
        }
    }

    func testGGUFRowOrderRoundTrips() throws {
        let c = LlamaConfig(hiddenSize: 16, intermediateSize: 24, numLayers: 1, numHeads: 4, numKVHeads: 2, vocabSize: 8)
        for lin in LlamaLinear.allCases {
            let (rows, cols) = lin.shape(c)
            let x = (0..<(rows * cols)).map { Float($0) }
            let g = try lin.toGGUF(x, c)
            XCTAssertEqual(try lin.fromGGUF(g, c), x, "\(lin)")
            XCTAssertEqual(g == x, lin.permutedHeads(c) == nil, "\(lin) is permuted exactly when the table says so")
            let bytes = x.withUnsafeBytes { Array($0) }
            XCTAssertEqual(try lin.toGGUF(rowBytes: bytes, rowBytes: cols * 4, c), g.withUnsafeBytes { Array($0) })
        }
    }

    func testQKPermutationMatchesReshapeFormulaAndInverts() throws {
        // heads 2, head_dim 4: rows (h, 2j+t) <- (h, t*2 + j)
        XCTAssertEqual(try LlamaTensorNames.qkPermutation(rows: 8, heads: 2), [0, 2, 1, 3, 4, 6, 5, 7])
        let fwd = try LlamaTensorNames.qkPermutation(rows: 576, heads: 9)
        let inv = try LlamaTensorNames.qkInversePermutation(rows: 576, heads: 9)
        for r in 0..<576 { XCTAssertEqual(inv[fwd[r]], r) }
        XCTAssertThrowsError(try LlamaTensorNames.qkPermutation(rows: 10, heads: 4))
    }

    func testTensorNamesMapBothWays() {
        for hf in ["model.embed_tokens.weight", "lm_head.weight", "model.norm.weight", "model.layers.12.self_attn.o_proj.weight",
                   "model.layers.0.mlp.down_proj.weight", "model.layers.3.post_attention_layernorm.weight", "model.layers.1.self_attn.q_proj.bias"] {
            XCTAssertEqual(LlamaTensorNames.gguf(hf).flatMap(LlamaTensorNames.hf), hf)
        }
        XCTAssertEqual(LlamaTensorNames.gguf("model.layers.12.self_attn.o_proj.weight"), "blk.12.attn_output.weight")
        XCTAssertNil(LlamaTensorNames.gguf("model.layers.0.mlp.experts.0.weight"))
        XCTAssertTrue(LlamaTensorNames.isIgnored("model.layers.0.self_attn.rotary_emb.inv_freq"))
    }

    /// A checkpoint missing a layer's tensor, or with a tensor of the wrong shape, is refused when the model is
    /// opened (the table makes it one check), not when that layer first runs.
    func testMissingOrMisshapenTensorsAreNamedBeforeAnyWork() throws {
        let c = ForwardReferenceTests.config()
        let w = ForwardReferenceTests.weights(c, seed: 3)
        let last = c.numLayers - 1
        var missing = w
        missing[LlamaLinear.down.hfName(layer: last)] = nil
        XCTAssertThrowsError(try LlamaWeights.load(config: c, tensors: missing)) {
            XCTAssertEqual("\($0)", "missing tensor model.layers.\(last).mlp.down_proj.weight")
        }
        var misshapen = w
        misshapen[LlamaNorm.ffn.hfName(layer: last)] = [Float](repeating: 1, count: c.hiddenSize + 1)
        XCTAssertThrowsError(try LlamaWeights.load(config: c, tensors: misshapen)) {
            XCTAssertTrue("\($0)".contains("post_attention_layernorm.weight has shape [\(c.hiddenSize + 1)], expected [\(c.hiddenSize)]"), "\($0)")
        }
        // a well-formed model makes its layers on demand, the same values as given
        let m = try LlamaWeights.load(config: c, tensors: w)
        XCTAssertEqual(try m.layer(last)[.gate], w[LlamaLinear.gate.hfName(layer: last)])
        XCTAssertEqual(try m.embedding([3, 1]), Array(w["model.embed_tokens.weight"]![(3 * c.hiddenSize)..<(4 * c.hiddenSize)])
                       + Array(w["model.embed_tokens.weight"]![(1 * c.hiddenSize)..<(2 * c.hiddenSize)]))
    }
}
