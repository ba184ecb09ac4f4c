import XCTest
import TensorCore
@testable import ModelFormats

final class TokenizerFileTests: XCTestCase {
    func testLlama2SentencePieceModel() throws {
        let sp = try SentencePieceModel.load(path: Fixtures.golden.appendingPathComponent("micro-llama-hf/tokenizer.model").path)
        XCTAssertEqual(sp.pieces.count, 32000)
        XCTAssertEqual(sp.pieces[0], .init(piece: "<unk>", score: 0, type: .unknown))
        XCTAssertEqual(sp.pieces[1].type, .control)
        XCTAssertEqual(sp.pieces[3], .init(piece: "<0x00>", score: 0, type: .byte))
        XCTAssertEqual(sp.pieces[29871].piece, "\u{2581}")
        XCTAssertEqual(sp.modelType, 2)  // BPE
        XCTAssertTrue(sp.byteFallback)
        XCTAssertTrue(sp.addDummyPrefix)
    }

    func testGarbageSentencePieceIsAnError() {
        let p = Fixtures.write([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F], "bad.model")
        XCTAssertThrowsError(try SentencePieceModel.load(path: p)) { XCTAssertTrue("\($0)".hasPrefix(p), "\($0)") }
    }

    func testSpecialVocabOfGoldenMicroModel() throws {
        let sv = try SpecialVocab(dir: Fixtures.golden.appendingPathComponent("micro-llama-hf").path, loadMerges: false, nVocab: 32000)
        XCTAssertEqual(sv.specialIds.map(\.0), ["bos", "eos", "unk", "cls"])
        XCTAssertEqual(sv.specialIds.map(\.1), [1, 2, 0, 1])
        XCTAssertEqual(sv.addSpecial.map(\.0), ["bos", "sep", "eos"])
        XCTAssertEqual(sv.addSpecial.map(\.1), [true, false, false])
        XCTAssertEqual(sv.metadata().map(\.0), ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
                                                "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_sep_token", "tokenizer.ggml.add_eos_token"])
    }

    func testMergePairsAreJoinedWithSpacesEncoded() throws {
        let m: [JSONValue] = [.array([.string("a b"), .string("c")]), .array([.string("Ġ"), .string("t")])]
        XCTAssertEqual(try SpecialVocab.mergeStrings(m, file: "t"), ["a\u{0120}b c", "Ġ t"])
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
}
