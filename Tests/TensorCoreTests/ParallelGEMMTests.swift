import XCTest
@testable import TensorCore

/// `BLAS.gemmNTParallel` (blocks of rows or columns, one single-threaded sgemm each) against plain loops in double,
/// and the same bytes at 1, 2 and 3 threads.
final class ParallelGEMMTests: XCTestCase {
    /// Values in [−1, 1] in steps of 0.001.
    static func values(_ n: Int, seed: UInt64) -> [Float] {
        var g = TestLCG(seed: seed)
        return (0..<n).map { _ in Float(Int64(bitPattern: g.next() >> 11) % 2001 - 1000) / 1000 }
    }

    func run(m: Int, n: Int, k: Int, threads: Int, beta: Float, a: [Float], b: [Float], c0: [Float]) -> [Float] {
        let saved = Parallel.threads
        Parallel.threads = threads
        defer { Parallel.threads = saved }
        BLAS.setThreads(1)
        var c = c0
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            BLAS.gemmNTParallel(m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: k, c: cp.baseAddress!, ldc: n,
                                alpha: 0.5, beta: beta)
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
            for beta: Float in [0, 1] {
                let one = run(m: s.m, n: s.n, k: s.k, threads: 1, beta: beta, a: a, b: b, c0: c0)
                var worst = 0.0
                for r in 0..<s.m {
                    for j in 0..<s.n {
                        var dot = 0.0
                        for q in 0..<s.k { dot += Double(a[r * s.k + q]) * Double(b[j * s.k + q]) }
                        let want = 0.5 * dot + Double(beta) * Double(c0[r * s.n + j])
                        worst = max(worst, abs(Double(one[r * s.n + j]) - want))
                    }
                }
                XCTAssertLessThan(worst, 1e-4, "m \(s.m) n \(s.n) k \(s.k) beta \(beta)")
                for threads in [2, 3] {
                    XCTAssertTrue(run(m: s.m, n: s.n, k: s.k, threads: threads, beta: beta, a: a, b: b, c0: c0) == one,
                                  "m \(s.m) n \(s.n): \(threads) threads differ from 1")
                }
            }
        }
    }
}
