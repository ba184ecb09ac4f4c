import Llama
import Quantization
import TestScratch
import XCTest
@testable import Calibration
@testable import Checkpoints

/// The layer-wise pass every model-running job shares, the AWQ scaling-group table, and the compact hold of packed
/// linears.
final class LayerwiseTests: XCTestCase {
    func testLayerByLayerPassGivesTheLogitsOfEachSequenceRunAlone() throws {
        let m = try LoadedModel.load(Support.microHF)
        let fwd = m.forward, c = fwd.w.config
        let seqs: [[Int32]] = [[1, 5, 9, 200, 17, 3], [1, 44, 2], [1, 7, 7, 7, 300, 12, 90, 4, 5]]
        let pass = try LayerwisePass(fwd, sequences: seqs)
        for l in 0..<c.numLayers { pass.advance(try fwd.w.layer(l)) }
        XCTAssertEqual(pass.layer, c.numLayers)
        for (s, toks) in seqs.enumerated() {
            let alone = try fwd.logits(toks)
            let layered = fwd.head(pass.residuals[s], T: toks.count, logitRows: nil)
            XCTAssertEqual(layered.count, toks.count * c.vocabSize)
            let scale = alone.map(abs).max() ?? 1
            for i in alone.indices { XCTAssertEqual(layered[i], alone[i], accuracy: 1e-5 * scale, "sequence \(s) value \(i)") }
        }
    }

    func testCaptureWithoutAdvanceKeepsTheResidualsAndStopsAtTheLastInputWanted() throws {
        let m = try LoadedModel.load(Support.microHF)
        let fwd = m.forward, c = fwd.w.config
        let pass = try LayerwisePass(fwd, sequences: [[1, 5, 9, 200], [1, 44, 2, 8, 9]])
        let before = pass.residuals
        let L = try fwd.w.layer(0)
        var seen: [(Int, LlamaInput, Int)] = []
        pass.run(L, capturing: [.attnNormed, .attention], advance: false) { s, input, x, width in seen.append((s, input, x.count / width)) }
        XCTAssertEqual(seen.map { "\($0.0) \($0.1) \($0.2)" }, ["0 attnNormed 4", "0 attention 4", "1 attnNormed 5", "1 attention 5"])
        XCTAssertEqual(pass.residuals, before)
        XCTAssertEqual(pass.layer, 0)
        // a range of the sequences (GPTAQ runs a few windows at a time): those alone, the same values as in a full run
        var full: [String: [Float]] = [:]
        pass.run(L, capturing: [.ffnNormed], advance: false) { s, _, x, _ in full["\(s)"] = Array(x) }
        var part: [String: [Float]] = [:]
        pass.run(L, capturing: [.ffnNormed], advance: false, sequences: 1..<2) { s, _, x, _ in part["\(s)"] = Array(x) }
        XCTAssertEqual(Array(part.keys), ["1"])
        XCTAssertEqual(part["1"], full["1"])
        XCTAssertEqual(pass.residuals, before)
        var widths: [LlamaInput: Int] = [:]
        pass.run(L, capturing: Set(LlamaInput.layerStages), advance: true) { _, input, _, width in widths[input] = width }
        XCTAssertEqual(widths, [.attnNormed: c.hiddenSize, .attention: c.numHeads * c.headDim, .ffnNormed: c.hiddenSize,
                                .mlpHidden: c.intermediateSize])
        XCTAssertNotEqual(pass.residuals, before)
        XCTAssertEqual(pass.layer, 1)
        XCTAssertNil(fwd.captureLinearInput, "the capture hook is removed after the run")
    }

    /// True-sequential calibration's stage-by-stage runs (each continuing from the last) against running the layer from
    /// its start for every stage, with the layer changed between stages in the linears the stage feeds, as GPTQ does:
    /// the same inputs at every stage and the same residual streams after the layer, bit for bit.
    func testStageByStageRunsEqualRunningTheLayerFromItsStartForEachStage() throws {
        let m = try LoadedModel.load(Support.microHF)
        let fwd = m.forward
        let seqs: [[Int32]] = [[1, 5, 9, 200, 17, 3], [1, 44, 2], [1, 7, 7, 7, 300, 12, 90, 4, 5]]
        let staged = try LayerwisePass(fwd, sequences: seqs)
        let fromStart = try LayerwisePass(fwd, sequences: seqs)
        for l in 0..<2 {
            var A = try fwd.w.layer(l)
            var B = A
            for stage in LlamaInput.layerStages {
                var got: [[Float]] = []
                var want: [[Float]] = []
                staged.runStage(A, stage) { _, x, _ in got.append(Array(x)) }
                fromStart.run(B, capturing: [stage], advance: false) { _, _, x, _ in want.append(Array(x)) }
                XCTAssertEqual(got.count, seqs.count)
                XCTAssertEqual(got, want, "layer \(l) \(stage)")
                // "quantize" the linears this stage feeds
                for lin in stage.linears {
                    A[lin] = A[lin].map { ($0 * 16).rounded() / 16 }
                    B[lin] = A[lin]
                }
            }
            staged.advance(A)
            fromStart.advance(B)
            XCTAssertEqual(staged.residuals, fromStart.residuals, "layer \(l)")
            XCTAssertEqual(staged.layer, l + 1)
        }
    }

    func testAWQScalingGroupsFoldVIntoOWithOrWithoutGQA() {
        var c = LlamaConfig(hiddenSize: 64, intermediateSize: 128, numLayers: 1, numHeads: 4, numKVHeads: 4, vocabSize: 10, headDim: 16)
        XCTAssertEqual(AWQPipeline.ScalingGroup.llama.filter { $0.applies(c) }.map(\.name), ["qkv", "o", "mlp", "down"])
        c.numKVHeads = 2   // tied: one scale per KV channel (AWQTiedVOTests)
        XCTAssertEqual(AWQPipeline.ScalingGroup.llama.filter { $0.applies(c) }.map(\.name), ["qkv", "o", "mlp", "down"])
        XCTAssertEqual(AWQPipeline.ScalingGroup.llama.map { $0.linears }, [[.q, .k, .v], [.o], [.gate, .up], [.down]])
    }

    func testHeldLinearsComeBackAsTheyWereAdded() throws {
        var rng = SystemRandomNumberGenerator()
        for bits in [2, 3, 4, 8] {
            let (rows, cols) = (3, 33)   // odd count: the last byte holds one 4-bit code
            let scheme = IntegerScheme(bits: bits, groupSize: -1, sym: false)
            let codes = (0..<(rows * cols)).map { _ in UInt8.random(in: 0...UInt8(scheme.maxq), using: &rng) }
            let q = QuantizedLinear(rows: rows, cols: cols, scheme: scheme, codes: codes, scales: [0.5, 0.25, 2],
                                    zeros: [Int32(bits == 8 ? 0 : 1), 2, 3], gIdx: [Int32](repeating: 0, count: cols))
            let spill = Scratch.path("spill")
            for held in [try PackedCheckpoint.Linears(), try PackedCheckpoint.Linears(spillPath: spill)] {
                try held.add("m", q)
                try held.add("n", q)
                XCTAssertEqual(held.hasZeroPoint0, bits == 8)
                XCTAssertEqual(try held.take("n"), q, "\(bits) bits")
                XCTAssertEqual(try held.take("m"), q, "\(bits) bits")
                XCTAssertNil(try held.take("m"), "taken once")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: spill), "the scratch file is removed with its holder")
        }
    }
}
