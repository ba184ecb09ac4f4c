import XCTest
import TensorCore
@testable import Quantization

/// GPTAQ (asymmetric calibration): GPTQ's pass with the asymmetry term 2(X̃ − X)ᵀX/n, checked against a
/// straightforward f64 port of the reference's `fasterquant` and by the error it is meant to lower.
final class GPTAQTests: XCTestCase {
    /// Full-precision inputs X̃ [n × cols] (correlated columns of different scales), the inputs X a quantized model
    /// before the layer would give (X̃ plus a systematic distortion and noise), weights W [rows × cols], H = 2XᵀX/n and
    /// the asymmetry term C = 2(X̃ − X)ᵀX/n.
    struct Problem {
        let rows: Int, cols: Int, n: Int
        var W: [Float] = [], Xfp: [Float] = [], X: [Float] = [], H: [Float] = [], C: [Float] = []

        init(rows: Int, cols: Int, n: Int, seed: UInt64) {
            self.rows = rows
            self.cols = cols
            self.n = n
            var rng = SplitMix(seed: seed)
            W = (0..<(rows * cols)).map { _ in rng.normal() * 0.05 }
            let mix = (0..<(cols * cols)).map { _ in rng.normal() / Float(cols).squareRoot() }
            let distort = (0..<(cols * cols)).map { _ in rng.normal() * 0.15 / Float(cols).squareRoot() }
            Xfp = [Float](repeating: 0, count: n * cols)
            X = Xfp
            for s in 0..<n {
                let z = (0..<cols).map { _ in rng.normal() }
                for c in 0..<cols {
                    var v: Float = 0
                    for k in 0..<cols { v += z[k] * mix[k * cols + c] }
                    Xfp[s * cols + c] = v + 0.3 * z[c] * Float(1 + c % 5)
                }
                for c in 0..<cols {
                    var d: Float = 0
                    for k in 0..<cols { d += Xfp[s * cols + k] * distort[k * cols + c] }
                    X[s * cols + c] = Xfp[s * cols + c] + d + 0.05 * rng.normal()
                }
            }
            let D = zip(Xfp, X).map { $0 - $1 }
            H = [Float](repeating: 0, count: cols * cols)
            C = H
            X.withUnsafeBufferPointer { x in
                BLAS.gemmTN(m: cols, n: cols, k: n, a: x.baseAddress!, lda: cols, b: x.baseAddress!, ldb: cols, c: &H, ldc: cols,
                            alpha: 2 / Float(n), beta: 0)
                D.withUnsafeBufferPointer { d in
                    BLAS.gemmTN(m: cols, n: cols, k: n, a: d.baseAddress!, lda: cols, b: x.baseAddress!, ldb: cols, c: &C, ldc: cols,
                                alpha: 2 / Float(n), beta: 0)
                }
            }
        }

        /// ‖X̃·Wᵀ − X·Qᵀ‖² / n: the layer's output on its quantized inputs against the full-precision model's output.
        func asymmetricError(_ Q: [Float]) -> Double {
            var e = 0.0
            for s in 0..<n {
                for r in 0..<rows {
                    var d = 0.0
                    for c in 0..<cols {
                        d += Double(Xfp[s * cols + c]) * Double(W[r * cols + c]) - Double(X[s * cols + c]) * Double(Q[r * cols + c])
                    }
                    e += d * d
                }
            }
            return e / Double(n)
        }
    }

    /// The reference's `fasterquant` with the asymmetry term, written out in f64 with plain loops: one min-max group per
    /// row (parameters from W before the pass), lazy batches of `blockSize` columns, P = α·triu(C·Uᵀ, 1)·U with
    /// H⁻¹ = UᵀU. Inside a batch each column's update uses its value before rounding; across batches, the batch as
    /// rounded (the reference's W1 after its loop).
    func referencePass(_ p: Problem, grid: GPTQGrid, blockSize: Int, alpha: Double) -> [Float] {
        let (rows, cols) = (p.rows, p.cols)
        var H = p.H.map(Double.init)
        var meanDiag = 0.0
        for i in 0..<cols { meanDiag += H[i * cols + i] }
        for i in 0..<cols { H[i * cols + i] += 0.01 * meanDiag / Double(cols) }
        let Hinv = Self.inverse(Self.cholesky(H, cols), cols)
        let U = Self.transpose(Self.cholesky(Hinv, cols), cols)  // H⁻¹ = L·Lᵀ = Uᵀ·U
        let C = p.C.map(Double.init)
        var M = [Double](repeating: 0, count: cols * cols)   // triu(C·Uᵀ, 1)
        for i in 0..<cols {
            for j in (i + 1)..<max(i + 1, cols) {
                var v = 0.0
                for k in 0..<cols { v += C[i * cols + k] * U[j * cols + k] }
                M[i * cols + j] = v
            }
        }
        var P = [Double](repeating: 0, count: cols * cols)
        for i in 0..<cols {
            for j in 0..<cols {
                var v = 0.0
                for k in 0..<cols { v += M[i * cols + k] * U[k * cols + j] }
                P[i * cols + j] = alpha * v
            }
        }
        let params = p.W.withUnsafeBufferPointer { GPTQ.findParams(grid, $0.baseAddress!, rows: rows, stride: cols, cols: Array(0..<cols)) }
        var W = p.W.map(Double.init)
        var Q = [Double](repeating: 0, count: rows * cols)
        for i1 in stride(from: 0, to: cols, by: blockSize) {
            let i2 = min(i1 + blockSize, cols)
            var W1 = [[Double]](repeating: [], count: rows)
            for r in 0..<rows { W1[r] = Array(W[(r * cols + i1)..<(r * cols + i2)]) }
            var Err1 = [[Double]](repeating: [Double](repeating: 0, count: i2 - i1), count: rows)
            for i in 0..<(i2 - i1) {
                let col = i1 + i
                let d = U[col * cols + col]
                for r in 0..<rows {
                    let w = W1[r][i]
                    let q = Double(GPTQ.quantize(grid, Float(w), params.scale[r], params.zero[r]).1)
                    Q[r * cols + col] = q
                    let err = (w - q) / d
                    Err1[r][i] = err
                    for c in i..<(i2 - i1) { W1[r][c] -= err * U[col * cols + i1 + c] - w * P[col * cols + i1 + c] }
                }
            }
            for r in 0..<rows {
                for c in i2..<cols {
                    var v = 0.0
                    for i in 0..<(i2 - i1) { v += Err1[r][i] * U[(i1 + i) * cols + c] - W1[r][i] * P[(i1 + i) * cols + c] }
                    W[r * cols + c] -= v
                }
            }
        }
        return Q.map { Float($0) }
    }

    static func cholesky(_ A: [Double], _ n: Int) -> [Double] {
        var L = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var s = A[i * n + j]
                for k in 0..<j { s -= L[i * n + k] * L[j * n + k] }
                L[i * n + j] = i == j ? s.squareRoot() : s / L[j * n + j]
            }
        }
        return L
    }

    /// A⁻¹ from A's lower Cholesky factor, column by column (forward then back substitution).
    static func inverse(_ L: [Double], _ n: Int) -> [Double] {
        var X = [Double](repeating: 0, count: n * n)
        for e in 0..<n {
            var y = [Double](repeating: 0, count: n)
            for i in 0..<n {
                var s = i == e ? 1.0 : 0.0
                for k in 0..<i { s -= L[i * n + k] * y[k] }
                y[i] = s / L[i * n + i]
            }
            for i in stride(from: n - 1, through: 0, by: -1) {
                var s = y[i]
                for k in (i + 1)..<max(i + 1, n) { s -= L[k * n + i] * X[k * n + e] }
                X[i * n + e] = s / L[i * n + i]
            }
        }
        return X
    }

    static func transpose(_ A: [Double], _ n: Int) -> [Double] {
        var T = A
        for i in 0..<n { for j in 0..<n { T[j * n + i] = A[i * n + j] } }
        return T
    }

    func testThePassEqualsAPlainPortOfTheReference() throws {
        let p = Problem(rows: 24, cols: 80, n: 400, seed: 3)
        for (grid, alpha) in [(GPTQGrid.minmax(bits: 4, sym: true), 0.25), (.minmax(bits: 3, sym: false), 1.0)] {
            var o = GPTQOptions()
            o.grid = grid
            o.groupSize = -1
            o.blockSize = 32
            o.gptaqAlpha = Float(alpha)
            let r = try GPTQ.run(W: p.W, rows: p.rows, cols: p.cols, H: p.H, cross: p.C, options: o)
            let ref = referencePass(p, grid: grid, blockSize: 32, alpha: alpha)
            // f32 against f64: a value may land on the other side of a rounding boundary now and then
            let differ = zip(r.Q, ref).filter { $0 != $1 }.count
            XCTAssertLessThanOrEqual(differ, p.rows * p.cols / 100, "\(grid) α \(alpha): \(differ) of \(p.rows * p.cols) values differ")
            let e = p.asymmetricError(r.Q), eRef = p.asymmetricError(ref)
            XCTAssertEqual(e, eRef, accuracy: eRef * 0.01, "\(grid) α \(alpha)")
        }
    }

    func testLowersTheOutputErrorAgainstTheFullPrecisionModel() throws {
        let p = Problem(rows: 32, cols: 128, n: 512, seed: 11)
        for grid in [GPTQGrid.minmax(bits: 4, sym: true), .ggml(.q4_0), .block(.q4_K)] {
            var o = GPTQOptions()
            o.grid = grid
            o.groupSize = 32
            if case .block = grid { o.groupSize = 256 }
            let cols = grid == .block(.q4_K) ? 256 : p.cols
            let q = cols == p.cols ? p : Problem(rows: 32, cols: cols, n: 512, seed: 11)
            let plain = try GPTQ.run(W: q.W, rows: q.rows, cols: q.cols, H: q.H, options: o)
            let asym = try GPTQ.run(W: q.W, rows: q.rows, cols: q.cols, H: q.H, cross: q.C, options: o)
            o.gptaqAlpha = 1
            let full = try GPTQ.run(W: q.W, rows: q.rows, cols: q.cols, H: q.H, cross: q.C, options: o)
            let (e0, e1, e2) = (q.asymmetricError(plain.Q), q.asymmetricError(asym.Q), q.asymmetricError(full.Q))
            XCTAssertLessThan(e1, e0 * 0.95, "\(grid): GPTAQ α 0.25 \(e1) against GPTQ \(e0)")
            XCTAssertLessThan(e2, e1, "\(grid): GPTAQ α 1 \(e2) against α 0.25 \(e1)")
        }
    }

    /// With no asymmetry (X̃ = X) the pass is GPTQ's, value for value.
    func testAZeroTermGivesGPTQ() throws {
        let p = Problem(rows: 16, cols: 64, n: 256, seed: 7)
        for grid in [GPTQGrid.minmax(bits: 4, sym: false), .ggml(.q4_0)] {
            var o = GPTQOptions()
            o.grid = grid
            o.groupSize = 32
            o.blockSize = 48
            let plain = try GPTQ.run(W: p.W, rows: p.rows, cols: p.cols, H: p.H, options: o)
            let zero = try GPTQ.run(W: p.W, rows: p.rows, cols: p.cols, H: p.H, cross: [Float](repeating: 0, count: p.cols * p.cols),
                                    options: o)
            XCTAssertEqual(plain.Q, zero.Q, "\(grid)")
            XCTAssertEqual(plain.codes, zero.codes, "\(grid)")
        }
        var o = GPTQOptions()
        o.grid = .minmax(bits: 4, sym: true)
        XCTAssertThrowsError(try GPTQ.run(W: p.W, rows: p.rows, cols: p.cols, H: p.H, cross: [0, 0], options: o)) {
            XCTAssertTrue("\($0)".contains("the asymmetry term has 2 values; expected 64²"), "\($0)")
        }
    }
}
