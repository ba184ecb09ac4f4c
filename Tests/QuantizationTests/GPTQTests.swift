import XCTest
import ModelFormats
import TensorCore
@testable import Quantization

final class GPTQTests: XCTestCase {
    /// Correlated inputs X [n × cols], weights W [rows × cols], H = 2XᵀX/n.
    func problem(rows: Int, cols: Int, n: Int, seed: UInt64) -> (W: [Float], X: [Float], H: [Float]) {
        var rng = SplitMix(seed: seed)
        let W = (0..<(rows * cols)).map { _ in rng.normal() * 0.05 }
        let mix = (0..<(cols * cols)).map { _ in rng.normal() / Float(cols).squareRoot() }
        var X = [Float](repeating: 0, count: n * cols)
        for s in 0..<n {
            let z = (0..<cols).map { _ in rng.normal() }
            for c in 0..<cols { var v: Float = 0; for k in 0..<cols { v += z[k] * mix[k * cols + c] }; X[s * cols + c] = v + 0.3 * z[c] * Float(1 + c % 5) }
        }
        var H = [Float](repeating: 0, count: cols * cols)
        X.withUnsafeBufferPointer { xp in BLAS.gemmTN(m: cols, n: cols, k: n, a: xp.baseAddress!, lda: cols, b: xp.baseAddress!, ldb: cols, c: &H, ldc: cols, alpha: 2 / Float(n), beta: 0) }
        return (W, X, H)
    }

    /// ‖X·(W − Q)ᵀ‖² / n: the layer-output error GPTQ minimizes.
    func outputError(_ X: [Float], _ W: [Float], _ Q: [Float], rows: Int, cols: Int, n: Int) -> Double {
        var e = 0.0
        for s in 0..<n {
            for r in 0..<rows {
                var d: Float = 0
                for c in 0..<cols { d += X[s * cols + c] * (W[r * cols + c] - Q[r * cols + c]) }
                e += Double(d * d)
            }
        }
        return e / Double(n)
    }

    func testBeatsRoundToNearestOnTheSameGrid() throws {
        let rows = 32, cols = 128, n = 512
        let (W, X, H) = problem(rows: rows, cols: cols, n: n, seed: 5)
        for (grid, g, act) in [(GPTQGrid.minmax(bits: 4, sym: true), 32, false), (.minmax(bits: 4, sym: false), 64, false),
                               (.minmax(bits: 4, sym: true), -1, true), (.ggml(.q4_0), 32, false), (.ggml(.q4_1), 32, false),
                               (.ggml(.q8_0), 32, false), (.minmax(bits: 3, sym: false), 32, false), (.minmax(bits: 8, sym: true), 128, false)] {
            var o = GPTQOptions()
            o.grid = grid; o.groupSize = g; o.actOrder = act; o.blockSize = 48
            let r = try GPTQ.run(W: W, rows: rows, cols: cols, H: H, options: o)
            // RTN: the same grid, no error feedback (H = identity makes GPTQ plain rounding)
            var id = [Float](repeating: 0, count: cols * cols)
            for i in 0..<cols { id[i * cols + i] = 1 }
            var ro = o; ro.actOrder = false
            let rtn = try GPTQ.run(W: W, rows: rows, cols: cols, H: id, options: ro)
            let eG = outputError(X, W, r.Q, rows: rows, cols: cols, n: n), eR = outputError(X, W, rtn.Q, rows: rows, cols: cols, n: n)
            XCTAssertLessThan(eG, eR * 0.9, "\(grid) g\(g) act \(act): GPTQ \(eG) vs RTN \(eR)")
        }
    }

    func testGGMLGridPacksExactly() throws {
        let rows = 8, cols = 64
        let (W, _, H) = problem(rows: rows, cols: cols, n: 128, seed: 9)
        for t: GGMLType in [.q4_0, .q4_1, .q8_0] {
            var o = GPTQOptions(); o.grid = .ggml(t)
            let r = try GPTQ.run(W: W, rows: rows, cols: cols, H: H, options: o)
            let bytes = try GPTQ.packGGML(r, type: t, rows: rows, cols: cols)
            XCTAssertEqual(bytes.count, rows * t.rowBytes(cols))
            let back = try bytes.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: rows * cols) }
            XCTAssertEqual(back, r.Q, t.name)
        }
    }

    func testDeadColumnsAndIllConditionedH() throws {
        let rows = 4, cols = 32
        let (W, _, H0) = problem(rows: rows, cols: cols, n: 64, seed: 2)
        var H = H0
        for j in 0..<cols { H[3 * cols + j] = 0; H[j * cols + 3] = 0 }  // column 3 never active
        let r = try GPTQ.run(W: W, rows: rows, cols: cols, H: H, options: GPTQOptions())
        for row in 0..<rows { XCTAssertEqual(r.Q[row * cols + 3], 0) }
        // rank-1 H: Cholesky needs more damping, which is raised automatically
        var h1 = [Float](repeating: 0, count: cols * cols)
        for i in 0..<cols { for j in 0..<cols { h1[i * cols + j] = 1 } }
        var o = GPTQOptions(); o.damp = 0
        let r1 = try GPTQ.run(W: W, rows: rows, cols: cols, H: h1, options: o)
        XCTAssertGreaterThan(r1.dampUsed, 0)
    }
}
