import XCTest
import TensorCore
@testable import Quantization

/// AWQ's pieces against direct computations: statistics, scale normalization, the Gram-matrix output error, the
/// clip search against a brute-force per-token evaluation, and the grid search's choice.
final class AWQTests: XCTestCase {
    func testStatisticsAndScales() {
        let x: [Float] = [1, -2, 3, -4, 5, 6]   // 3 rows × 2 cols
        XCTAssertEqual(AWQ.xMean([x], cols: 2), [3, 4])
        XCTAssertEqual(AWQ.xMean([Array(x[0..<2]), Array(x[2...])], cols: 2), [3, 4])
        // w_mean: |w| / (max of its group + 1e-6), averaged over rows
        let w: [Float] = [1, -2, 4, 4]           // 2 rows × 2 cols, one group per row
        let m = AWQ.wMean([w], cols: 2, groupSize: -1)
        XCTAssertEqual(m[0], (0.5 + 1) / 2, accuracy: 1e-5)
        XCTAssertEqual(m[1], (1 + 1) / 2, accuracy: 1e-5)
        // duo scaling, normalized so that max·min = 1
        let s = AWQ.scales(xMean: [1, 4, 9], wMean: [0.5, 0.5, 1], ratio: 0.5)
        XCTAssertEqual(Double(s.max()! * s.min()!), 1, accuracy: 1e-5)
        let raw = zip([Float(1), 4, 9], [Float(0.5), 0.5, 1]).map { pow($0, 0.5) / (pow($1, 0.5) + 1e-4) }
        XCTAssertEqual(s[1] / s[0], raw[1] / raw[0], accuracy: 1e-4)
        // r = 0 without duo scaling: all ones
        XCTAssertEqual(AWQ.scales(xMean: [1, 4, 9], wMean: [1, 1, 1], ratio: 0, duo: false), [1, 1, 1])
        // sampling every step-th row across blocks, as one matrix
        let rows = (0..<10).map { Float($0) }
        XCTAssertEqual(AWQ.sampleRows([Array(rows[0..<3]), Array(rows[3...])], cols: 1, tokens: 5), [0, 2, 4, 6, 8])
    }

    func testGramOutputErrorEqualsThePerTokenError() {
        var rng = SplitMix(seed: 9)
        let rows = 6, cols = 16, n = 40
        let X = (0..<(n * cols)).map { _ in rng.normal() }
        let W = (0..<(rows * cols)).map { _ in rng.normal() }
        let Q = W.map { ($0 * 4).rounded() / 4 }
        var direct = 0.0
        for t in 0..<n { for r in 0..<rows {
            var d: Double = 0
            for c in 0..<cols { d += Double(X[t * cols + c]) * Double(W[r * cols + c] - Q[r * cols + c]) }
            direct += d * d
        } }
        direct /= Double(n * rows)
        let viaGram = OutputError.mse(W, Q, gram: OutputError.gram([Array(X[0..<(10 * cols)]), Array(X[(10 * cols)...])], cols: cols), rows: rows, cols: cols)
        XCTAssertEqual(viaGram, direct, accuracy: direct * 1e-4)
    }

    func testClipSearchMatchesBruteForce() throws {
        var rng = SplitMix(seed: 4)
        let rows = 8, cols = 64, g = 32, n = 50
        var W = (0..<(rows * cols)).map { _ in rng.normal() * 0.05 }
        for r in 0..<rows { W[r * cols + r] = 0.6 }   // one outlier per row
        let X = (0..<(n * cols)).map { _ in rng.normal() }
        let scheme = IntegerScheme(bits: 4, groupSize: g, sym: false)
        let Q: AWQ.PseudoQuantize = { w, r, c in try IntegerQuant.rtn(w, rows: r, cols: c, scheme: scheme, quantizer: .awq).dequantized() }
        let clipped = try AWQ.clip(W, rows: rows, cols: cols, groupSize: g, x: X, Q: Q)
        // brute force per (row, group): try the 10 shrinks, keep the lowest mean squared partial-output error
        for r in 0..<rows { for j in 0..<(cols / g) {
            let w = Array(W[(r * cols + j * g)..<(r * cols + (j + 1) * g)])
            let amax = w.map(abs).max()!
            var best = (err: Double.infinity, m: amax)
            for i in 0..<10 {
                let m = amax * (1 - Float(i) / 20)
                let q = try Q(w.map { min(max($0, -m), m) }, 1, g)
                var err = 0.0
                for t in 0..<n { var d: Double = 0; for c in 0..<g { d += Double(X[t * cols + j * g + c]) * Double(q[c] - w[c]) }; err += d * d }
                err /= Double(n)
                if err < best.err { best = (err, m) }
            }
            for c in 0..<g { XCTAssertEqual(clipped[r * cols + j * g + c], min(max(w[c], -best.m), best.m), accuracy: 1e-7, "row \(r) group \(j)") }
        } }
        XCTAssertNotEqual(clipped, W, "the outliers are worth clipping here")
    }

    func testSearchPicksTheLowestLoss() throws {
        let xm: [Float] = [1, 2, 3, 4], wm: [Float] = [1, 1, 1, 1]
        // a loss minimal at r = 0.35
        let r = try AWQ.searchScales(xMean: xm, wMean: wm) { s in
            let ratio = Double(log(s[3] / s[0]) / log(4))   // s ∝ x^r here
            return abs(ratio - 0.35)
        }
        XCTAssertEqual(r.ratio, 0.35, accuracy: 1e-6)
        XCTAssertEqual(r.losses.count, 20)
        // the unscaled loss is `plain`; when no ratio beats it, the identity is chosen
        var calls: [[Float]] = []
        let none = try AWQ.searchScales(xMean: xm, wMean: [1, 2, 1, 2]) { s in
            calls.append(s)
            return s.allSatisfy { $0 == 1 } ? 0.5 : 1 + Double(s[3])
        }
        XCTAssertEqual(calls.first, [1, 1, 1, 1])
        XCTAssertEqual(none.ratio, -1)
        XCTAssertEqual(none.s, [1, 1, 1, 1])
        XCTAssertEqual(none.plain, 0.5)
        XCTAssertEqual(none.losses.count, 20)
        XCTAssertTrue(none.losses.allSatisfy { $0 > 0.5 }, "\(none.losses)")
    }
}
