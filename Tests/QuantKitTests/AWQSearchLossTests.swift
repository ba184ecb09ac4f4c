@testable import Calibration
import Checkpoints
import Llama
import Quantization
import XCTest

/// `AWQPipeline.Options.searchLoss`: the q/k/v and gate/up scale searches judged by the block's output (AutoAWQ) or by
/// the group's linears' own outputs through their input's Gram matrix.
final class AWQSearchLossTests: XCTestCase {
    let scheme = IntegerScheme(bits: 4, groupSize: 32, sym: false)

    func awq(_ loss: AWQPipeline.SearchLoss, times: PhaseTimes? = nil) throws -> [AWQPipeline.LayerReport] {
        let m = try LoadedModel.load(Support.microHF)
        var o = AWQPipeline.Options()
        o.data.calibration = [Support.validText]; o.data.samples = 6; o.data.seqLen = 48; o.groupSize = 32
        o.clip = false
        o.searchLoss = loss
        o.times = times
        return try AWQPipeline.run(m, options: o, Q: { _, _ in { W, rows, cols in
            try IntegerQuant.rtn(W, rows: rows, cols: cols, scheme: self.scheme, quantizer: .awq).dequantized()
        } }) { _, _, _ in }
    }

    /// Layer 0's unscaled q/k/v and gate/up losses under `.linear` are the mean over every token and every output of
    /// the linears' squared output errors, X·(W − Q(W))ᵀ, summed token by token here; the o and down groups report the
    /// same losses under either setting; and no block runs.
    func testLinearLossIsTheLinearsOutputErrorOverEveryToken() throws {
        let times = PhaseTimes()
        let linear = try awq(.linear, times: times)
        let block = try awq(.block)
        XCTAssertFalse(times.phases.contains { $0.name == "awq search blocks" })
        XCTAssertTrue(times.phases.contains { $0.name == "awq search linears" })
        let m = try LoadedModel.load(Support.microHF)
        let c = m.forward.w.config
        var o = AWQPipeline.Options()
        o.data.calibration = [Support.validText]; o.data.samples = 6; o.data.seqLen = 48
        let pass = try LayerwisePass(m.forward, sequences: try o.data.windows(m.tokenizer))
        let L = try m.forward.w.layer(0)
        var X: [LlamaInput: [[Float]]] = [:]
        pass.run(L, capturing: [.attnNormed, .ffnNormed], advance: false) { _, input, x, _ in X[input, default: []].append(Array(x)) }
        for (group, input, linears) in [("qkv", LlamaInput.attnNormed, [LlamaLinear.q, .k, .v]), ("mlp", .ffnNormed, [.gate, .up])] {
            var sum = 0.0, count = 0
            for lin in linears {
                let (rows, cols) = lin.shape(c)
                let Q = try IntegerQuant.rtn(L[lin], rows: rows, cols: cols, scheme: scheme, quantizer: .awq).dequantized()
                for x in X[input]! {
                    for t in 0..<(x.count / cols) {
                        for r in 0..<rows {
                            var e = 0.0
                            for k in 0..<cols { e += Double(x[t * cols + k]) * Double(L[lin][r * cols + k] - Q[r * cols + k]) }
                            sum += e * e
                            count += 1
                        }
                    }
                }
            }
            let got = try XCTUnwrap(linear[0].ratios.first { $0.group == group })
            XCTAssertEqual(got.lossPlain, sum / Double(count), accuracy: 1e-4 * sum / Double(count), group)
            let blockLoss = try XCTUnwrap(block[0].ratios.first { $0.group == group })
            XCTAssertNotEqual(blockLoss.lossPlain, got.lossPlain, "\(group): the block's output error is another number")
            XCTAssertLessThanOrEqual(got.lossBest, got.lossPlain)
        }
        for l in 0..<2 {
            for group in ["o", "down"] {
                let a = try XCTUnwrap(linear[l].ratios.first { $0.group == group })
                let b = try XCTUnwrap(block[l].ratios.first { $0.group == group })
                if l == 0 { XCTAssertEqual(a.lossPlain, b.lossPlain, "layer 0 \(group)") }
                XCTAssertLessThanOrEqual(a.lossBest, a.lossPlain)
            }
        }
    }
}
