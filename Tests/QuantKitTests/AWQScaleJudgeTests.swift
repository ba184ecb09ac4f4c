@testable import Calibration
import Checkpoints
import Llama
import Quantization
@testable import QuantKit
import XCTest

/// The judge of AWQ's scales under GPTQ (`GPTQPipeline.Unscaled`): each layer is quantized from both weight sets and
/// the output closer to the target is kept. Checked against plain GPTQ runs: a scaling that ruins quantization (exact in
/// full precision: norm gains ÷ s, the columns that read them × s, s = 30 on every eighth channel) is rejected in every
/// layer, and the result is then GPTQ alone on the unscaled model, value for value; the same scaling offered as the
/// alternative is never taken, and the result is GPTQ alone on the model it runs on.
final class AWQScaleJudgeTests: XCTestCase {
    /// The micro model with every layer's norms ÷ s and their readers' columns × s (the same function).
    static func badlyScaled(_ m: LoadedModel) -> (Int) throws -> LlamaWeights.Layer {
        { l in
            var L = try m.forward.w.layer(l)
            let H = m.forward.w.config.hiddenSize
            for j in stride(from: 0, to: H, by: 8) {
                let s: Float = 30
                L[.attn][j] /= s
                L[.ffn][j] /= s
                for lin in [LlamaLinear.q, .k, .v, .gate, .up] {
                    for r in 0..<lin.shape(m.forward.w.config).rows { L[lin][r * H + j] *= s }
                }
            }
            return L
        }
    }

    /// Results of GPTQ over `model` (with `unscaled` as the judge's alternative when given), by layer and linear.
    static func run(_ model: LoadedModel, gptaq: Bool, unscaled: GPTQPipeline.Unscaled?) throws -> [String: [Float]] {
        var o = GPTQPipeline.Options()
        o.data.calibration = [Support.validText]; o.data.samples = 4; o.data.seqLen = 64; o.data.seed = 0
        o.gptq.grid = .ggml(.q4_0)
        o.gptaq = gptaq
        o.unscaled = unscaled
        var got: [String: [Float]] = [:]
        _ = try GPTQPipeline.run(model, options: o) { l, lin, r in got[lin.hfName(layer: l)] = r.Q }
        return got
    }

    func testJudgeRejectsARuinousScalingAndKeepsGPTQsResult() throws {
        let m = try LoadedModel.load(Support.microK)
        let bad = m.replacingLayers(Self.badlyScaled(m))
        let n = m.forward.w.config.numLayers
        for gptaq in [false, true] {
            let alone = try Self.run(m, gptaq: gptaq, unscaled: nil)
            XCTAssertEqual(alone.count, 7 * n)
            // the ruinous scaling on the pass, the source as the alternative: the source wins every layer
            let decisions = AWQThenGPTQ.Decisions()
            var dropped: [Int] = []
            let judged = try Self.run(bad, gptaq: gptaq, unscaled: AWQThenGPTQ.judge(m, importance: nil, dropped: { dropped.append($0) },
                                                                                       decisions: decisions))
            XCTAssertEqual(decisions.kept, Dictionary(uniqueKeysWithValues: (0..<n).map { ($0, false) }), "gptaq \(gptaq)")
            XCTAssertEqual(dropped, Array(0..<n))
            XCTAssertTrue(judged == alone, "gptaq \(gptaq): GPTQ on the source's layers, value for value")
            // and the other way round: the source on the pass, the ruinous scaling refused
            let other = AWQThenGPTQ.Decisions()
            let kept = try Self.run(m, gptaq: gptaq, unscaled: .init(layer: Self.badlyScaled(m), importance: nil) { l, k in other.kept[l] = k })
            XCTAssertEqual(other.kept, Dictionary(uniqueKeysWithValues: (0..<n).map { ($0, true) }))
            // (with GPTAQ the full-precision streams then come from the scaled layers: the same function, other roundings)
            if !gptaq { XCTAssertTrue(kept == alone) }
            // GPTQ on the ruinous scaling alone is far from the source's result: the judge had something to decide
            let ruined = try Self.run(bad, gptaq: gptaq, unscaled: nil)
            XCTAssertFalse(ruined == alone)
        }
    }

    /// Into a packed checkpoint: every layer is judged and reported; a layer that kept its scales stores the scaled
    /// norms (those of the run without the judge), one that dropped them the source's (those of round-to-nearest).
    func testPackedCheckpointStoresTheJudgedNorms() throws {
        var o = PackedQuantizer.Options()
        o.method = .awqGPTQ
        o.scheme = IntegerScheme(bits: 4, groupSize: 32, sym: true)
        o.gptq.data.calibration = [Support.validText]; o.gptq.data.samples = 4; o.gptq.data.seqLen = 64
        o.gptq.gptq.actOrder = true
        o.gptq.gptq.staticGroups = true
        o.awq.data = o.gptq.data
        o.awq.clip = false
        let dir = Support.tmpDir()
        let judged = try PackedQuantizer.quantize(Support.microHF, to: dir + "/judged", options: o)
        o.awq.judgeScales = false
        let all = try PackedQuantizer.quantize(Support.microHF, to: dir + "/all", options: o)
        o.method = .rtn
        _ = try PackedQuantizer.quantize(Support.microHF, to: dir + "/rtn", options: o)
        XCTAssertTrue(all.awqLayers.allSatisfy { $0.keptUnderGPTQ == nil })
        // (on these windows the judge keeps one layer's scales and drops the other's: both cases are checked)
        XCTAssertEqual(Set(judged.awqLayers.compactMap(\.keptUnderGPTQ)), [true, false])
        let (j, a, r) = (try HFCheckpoint.open(dir + "/judged"), try HFCheckpoint.open(dir + "/all"), try HFCheckpoint.open(dir + "/rtn"))
        for rep in judged.awqLayers {
            let kept = try XCTUnwrap(rep.keptUnderGPTQ, "layer \(rep.layer) judged")
            for n in LlamaNorm.allCases {
                let name = n.hfName(layer: rep.layer)
                let expected = try (kept ? a : r).weights.floats(name)
                XCTAssertEqual(try j.weights.floats(name), expected, "\(name), scales kept: \(kept)")
            }
        }
    }

    /// A judged layer's state records the judgement, and restoring it tells the caller again; a state without it
    /// (written without the judge) is refused with a way out.
    func testJudgementIsSavedAndRestored() throws {
        let m = try LoadedModel.load(Support.microK)
        var o = GPTQPipeline.Options()
        o.data.calibration = [Support.validText]; o.data.samples = 4; o.data.seqLen = 64; o.data.seed = 0
        o.gptq.grid = .ggml(.q4_0)
        var told: [(Int, Bool)] = []
        o.unscaled = .init(layer: { try m.forward.w.layer($0) }, importance: nil) { told.append(($0, $1)) }
        let bad = m.replacingLayers(Self.badlyScaled(m))
        let method = GPTQPipeline.Layers(options: o, config: m.forward.w.config, source: m.path, consume: { _, _, _ in })
        let pass = try LayerwisePass(bad.forward, sequences: try o.data.windows(m.tokenizer))
        var L = try bad.forward.w.layer(0)
        try method.process(0, &L, pass: pass)
        XCTAssertEqual(pass.layer, 1, "the judge leaves the pass after the layer")
        XCTAssertEqual(told.map(\.1), [false])
        let dir = Support.tmpDir()
        let state = try ResumeState(output: dir + "/x", fingerprint: method.fingerprint, resume: false)
        try state.save("layer-0", method.record(0))
        try state.waitForCommit()
        let saved = try state.load("layer-0")
        XCTAssertEqual(saved.metadata["awq.scales.kept"], "false")
        let again = GPTQPipeline.Layers(options: o, config: m.forward.w.config, source: m.path, consume: { _, _, _ in })
        try again.restore(0, from: saved)
        XCTAssertEqual(told.map(\.1), [false, false])
        XCTAssertEqual(again.results.keys.count, 7)
        XCTAssertTrue(method.fingerprint.hasSuffix("|judged"))

        o.unscaled = nil
        let plain = GPTQPipeline.Layers(options: o, config: m.forward.w.config, source: m.path, consume: { _, _, _ in })
        var P = try m.forward.w.layer(0)
        try plain.process(0, &P, pass: try LayerwisePass(m.forward, sequences: try o.data.windows(m.tokenizer)))
        try state.save("layer-1", plain.record(0))
        try state.waitForCommit()
        XCTAssertThrowsError(try again.restore(0, from: try state.load("layer-1"))) {
            XCTAssertTrue("\($0)".contains("lacks the AWQ scales' judgement; run without --resume"), "\($0)")
        }
    }
}
