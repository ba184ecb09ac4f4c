import XCTest
@testable import TensorCore

/// `BLAS.gemmNTParallel`, `gemmNNParallel` and `gemmTNParallel` (blocks of rows or columns of C, one single-threaded
/// sgemm each) against plain loops in double, and the same bytes at 1, 2 and 3 threads.
final class ParallelGEMMTests: XCTestCase {
    /// Values in [−1, 1] in steps of 0.001.
    static func values(_ n: Int, seed: UInt64) -> [Float] {
        var g = TestLCG(seed: seed)
        return (0..<n).map { _ in Float(Int64(bitPattern: g.next() >> 11) % 2001 - 1000) / 1000 }
    }

    /// The three products, each over A and B as stored for it: NT A [m × k], B [n × k]; NN A [m × k], B [k × n];
    /// TN A [k × m], B [k × n].
    enum Product: CaseIterable { case nt, nn, tn }

    func run(_ p: Product, m: Int, n: Int, k: Int, threads: Int, beta: Float, a: [Float], b: [Float], c0: [Float]) -> [Float] {
        let saved = Parallel.threads
        Parallel.threads = threads
        defer { Parallel.threads = saved }
        BLAS.setThreads(1)
        var c = c0
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            let (a, b, c) = (ap.baseAddress!, bp.baseAddress!, cp.baseAddress!)
            switch p {
            case .nt: BLAS.gemmNTParallel(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, c: c, ldc: n, alpha: 0.5, beta: beta)
            case .nn: BLAS.gemmNNParallel(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: c, ldc: n, alpha: 0.5, beta: beta)
            case .tn: BLAS.gemmTNParallel(m: m, n: n, k: k, a: a, lda: m, b: b, ldb: n, c: c, ldc: n, alpha: 0.5, beta: beta)
            }
        } } }
        return c
    }

    func testEverySplitMatchesPlainLoopsAndIgnoresTheThreadCount() {
        // shapes for each rule: decoding (columns of 256), mid rows (64-row blocks), a wide B (2048 columns), m ≥ 512
        let shapes: [(m: Int, n: Int, k: Int, split: BLAS.Split)] = [
            (1, 576, 40, .columns(256)), (63, 300, 17, .columns(256)), (64, 70, 33, .rows(64)), (255, 96, 24, .rows(64)),
            (100, 16384, 8, .columns(2048)), (512, 40, 12, .rows(256)), (600, 33, 9, .rows(256)),
        ]
        for (i, s) in shapes.enumerated() {
            XCTAssertEqual(BLAS.split(m: s.m, n: s.n), s.split)
            let a = Self.values(s.m * s.k, seed: UInt64(i) + 1), b = Self.values(s.n * s.k, seed: UInt64(i) + 100)
            let c0 = Self.values(s.m * s.n, seed: UInt64(i) + 200)
            for p in Product.allCases {
                // A[r, q] and B[q, j] of the product C = A·B, as each product stores them
                func aAt(_ r: Int, _ q: Int) -> Float { p == .tn ? a[q * s.m + r] : a[r * s.k + q] }
                func bAt(_ q: Int, _ j: Int) -> Float { p == .nt ? b[j * s.k + q] : b[q * s.n + j] }
                for beta: Float in [0, 1] {
                    let one = run(p, m: s.m, n: s.n, k: s.k, threads: 1, beta: beta, a: a, b: b, c0: c0)
                    var worst = 0.0
                    for r in 0..<s.m {
                        for j in 0..<s.n {
                            var dot = 0.0
                            for q in 0..<s.k { dot += Double(aAt(r, q)) * Double(bAt(q, j)) }
                            let want = 0.5 * dot + Double(beta) * Double(c0[r * s.n + j])
                            worst = max(worst, abs(Double(one[r * s.n + j]) - want))
                        }
                    }
                    XCTAssertLessThan(worst, 1e-4, "\(p) m \(s.m) n \(s.n) k \(s.k) beta \(beta)")
                    for threads in [2, 3] {
                        let again = run(p, m: s.m, n: s.n, k: s.k, threads: threads, beta: beta, a: a, b: b, c0: c0)
                        XCTAssertTrue(again == one, "\(p) m \(s.m) n \(s.n): \(threads) threads differ from 1")
                    }
                }
            }
        }
    }
}

/// GPTQ's Hessian with half of gemm's work: the lower triangle by ssyrk in two parts, mirrored, against one full gemm;
/// the same bytes at 1, 2 and 3 threads.
final class GramTests: XCTestCase {
    func testLowerGramMirroredEqualsTheFullProduct() {
        var rng = TestLCG(seed: 7)
        for (k, n) in [(512, 576), (300, 130), (64, 1), (1, 65), (4096, 200), (200, 1536)] {
            let x = (0..<(k * n)).map { _ in Float(rng.next() >> 40) / Float(1 << 24) * 2 - 1 }
            var full = [Float](repeating: 0, count: n * n)
            var lower = [Float](repeating: 0, count: n * n)
            x.withUnsafeBufferPointer { xp in
                full.withUnsafeMutableBufferPointer { BLAS.gemmTN(m: n, n: n, k: k, a: xp.baseAddress!, lda: n, b: xp.baseAddress!, ldb: n,
                                                                  c: $0.baseAddress!, ldc: n) }
                // twice, as windows accumulate
                for _ in 0..<2 {
                    lower.withUnsafeMutableBufferPointer { BLAS.gramLowerParallel(n: n, k: k, x: xp.baseAddress!, ldx: n, c: $0.baseAddress!, ldc: n) }
                }
            }
            lower.withUnsafeMutableBufferPointer { BLAS.mirrorLower($0.baseAddress!, n: n, ldc: n) }
            // both against the sum in double: the same f32 rounding error, in another order
            var worstLower = 0.0
            var worstFull = 0.0
            for i in 0..<n {
                for j in 0..<n {
                    XCTAssertEqual(lower[i * n + j], lower[j * n + i])
                    var exact = 0.0
                    for r in 0..<k { exact += Double(x[r * n + i]) * Double(x[r * n + j]) }
                    let scale = max(1, abs(exact))
                    worstLower = max(worstLower, abs(Double(lower[i * n + j]) / 2 - exact) / scale)
                    worstFull = max(worstFull, abs(Double(full[i * n + j]) - exact) / scale)
                }
            }
            XCTAssertLessThan(worstLower, 5e-5, "k \(k) n \(n)")
            // the same bytes at 1, 2 and 3 threads (the split depends on the shape only)
            for threads in [1, 3] {
                let saved = Parallel.threads
                Parallel.threads = threads
                var again = [Float](repeating: 0, count: n * n)
                x.withUnsafeBufferPointer { xp in
                    for _ in 0..<2 {
                        again.withUnsafeMutableBufferPointer { BLAS.gramLowerParallel(n: n, k: k, x: xp.baseAddress!, ldx: n, c: $0.baseAddress!, ldc: n) }
                    }
                }
                Parallel.threads = saved
                again.withUnsafeMutableBufferPointer { BLAS.mirrorLower($0.baseAddress!, n: n, ldc: n) }
                XCTAssertTrue(again == lower, "k \(k) n \(n): \(threads) threads differ")
            }
            XCTAssertLessThan(worstFull, 5e-5, "k \(k) n \(n)")
            XCTAssertGreaterThan(lower[0], 0)
        }
    }
}

/// GPTQ's Hinv (the upper Cholesky factor of H⁻¹) from one factorization, against factor / invert / factor again.
final class InverseCholeskyTests: XCTestCase {
    func testOneFactorizationGivesTheFactorOfTheInverse() {
        var rng = TestLCG(seed: 11)
        for n in [1, 2, 7, 64, 300] {
            let k = n + 5
            let x = (0..<(k * n)).map { _ in Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1 }
            var a = [Double](repeating: 0, count: n * n)
            for i in 0..<n {
                for j in 0..<n {
                    var s = 0.0
                    for r in 0..<k { s += x[r * n + i] * x[r * n + j] }
                    a[i * n + j] = s + (i == j ? 0.01 * Double(k) : 0)
                }
            }
            var fast = a
            XCTAssertEqual(BLAS.inverseCholeskyUpper(&fast, n: n), 0)
            var chain = a
            XCTAssertEqual(BLAS.cholesky(&chain, n: n, lower: true), 0)
            XCTAssertEqual(BLAS.choleskyInverse(&chain, n: n, lower: true), 0)
            XCTAssertEqual(BLAS.cholesky(&chain, n: n, lower: false), 0)
            var worst = 0.0
            for i in 0..<n {
                for j in 0..<n {
                    if j < i {
                        XCTAssertEqual(fast[i * n + j], 0)
                    } else {
                        worst = max(worst, abs(fast[i * n + j] - chain[i * n + j]) / max(1e-3, abs(chain[i * n + j])))
                    }
                }
            }
            XCTAssertLessThan(worst, 1e-9, "n \(n)")
            // UᵀU·A = I
            var err = 0.0
            for i in 0..<n {
                for j in 0..<n {
                    var s = 0.0
                    for m in 0..<n {
                        var inv = 0.0
                        for r in 0...min(i, m) { inv += fast[r * n + i] * fast[r * n + m] }
                        s += inv * a[m * n + j]
                    }
                    err = max(err, abs(s - (i == j ? 1 : 0)))
                }
            }
            XCTAssertLessThan(err, 1e-8, "n \(n)")
        }
        var singular = [Double](repeating: 1, count: 9)
        XCTAssertGreaterThan(BLAS.inverseCholeskyUpper(&singular, n: 3), 0)
    }
}
