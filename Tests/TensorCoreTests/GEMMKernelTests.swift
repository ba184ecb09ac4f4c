import XCTest
@testable import TensorCore

/// quantkit's own AVX-512 matrix product (`BLAS.Kernel.avx512`, `Sources/CRowKernels/Gemm.c`) against products summed
/// in double, on shapes around its tiles and blocks, through `gemmNT`, `gemmNN` and the thread splits of
/// `gemmNTParallel`.
final class GEMMKernelTests: XCTestCase {
    func withKernel<T>(_ k: BLAS.Kernel, threads: Int = Parallel.threads, _ body: () throws -> T) rethrows -> T {
        let (savedKernel, savedThreads) = (BLAS.kernel, Parallel.threads)
        BLAS.kernel = k
        Parallel.threads = threads
        defer { BLAS.kernel = savedKernel; Parallel.threads = savedThreads }
        return try body()
    }

    /// gemmNT (B [n × k]) and gemmNN (B [k × n], attention's softmax · V) with alpha 1 and beta 0 or 1, and with a
    /// scale and beta 0 (attention's Q · Kᵀ · scale): every value within a few ulps of Σ |terms| of the double sum.
    func testEdgeShapesAgainstDouble() throws {
        try XCTSkipUnless(BLAS.Kernel.supported.contains(.avx512), "/proc/cpuinfo lists no avx512f: the kernel is not called here")
        // around the 12 × 32 tile, the packed blocks (516 tokens, 256 outputs, 256 columns of k), and 1
        let shapes = [(1, 1, 1), (13, 33, 7), (12, 32, 256), (37, 100, 300), (121, 257, 513), (5, 31, 64), (130, 64, 40), (530, 40, 300)]
        for (i, (m, n, k)) in shapes.enumerated() {
            for nn in [false, true] {
                // strides longer than the rows; B holds n rows of k (NT) or k rows of n (NN)
                let (lda, ldb, ldc) = (k + 3, nn ? n + 2 : k + 1, n + 5)
                let a = ParallelGEMMTests.values(m * lda, seed: UInt64(i) + 1)
                let b = ParallelGEMMTests.values((nn ? k : n) * ldb, seed: UInt64(i) + 50)
                let c0 = ParallelGEMMTests.values(m * ldc, seed: UInt64(i) + 90)
                for (alpha, beta): (Float, Float) in [(1, 0), (1, 1), (0.125, 0)] {
                    var c = c0
                    withKernel(.avx512) {
                        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                            if nn {
                                BLAS.gemmNN(m: m, n: n, k: k, a: ap.baseAddress!, lda: lda, b: bp.baseAddress!, ldb: ldb,
                                            c: cp.baseAddress!, ldc: ldc, alpha: alpha, beta: beta)
                            } else {
                                BLAS.gemmNT(m: m, n: n, k: k, a: ap.baseAddress!, lda: lda, b: bp.baseAddress!, ldb: ldb,
                                            c: cp.baseAddress!, ldc: ldc, alpha: alpha, beta: beta)
                            }
                        } } }
                    }
                    var worst = 0.0
                    for r in 0..<m {
                        for j in 0..<n {
                            var dot = 0.0
                            var size = 0.0   // Σ of the terms' magnitudes: f32 sums err by a few ulps of it
                            for q in 0..<k {
                                let p = Double(a[r * lda + q]) * Double(nn ? b[q * ldb + j] : b[j * ldb + q])
                                dot += p
                                size += abs(p)
                            }
                            dot = Double(alpha) * dot + Double(beta) * Double(c0[r * ldc + j])
                            size = Double(alpha) * size + abs(Double(beta) * Double(c0[r * ldc + j]))
                            worst = max(worst, abs(Double(c[r * ldc + j]) - dot) / max(1, size))
                        }
                        // the padding between rows of C is never written
                        for j in n..<ldc { XCTAssertEqual(c[r * ldc + j], c0[r * ldc + j]) }
                    }
                    XCTAssertLessThan(worst, 1e-6, "m \(m) n \(n) k \(k) NN \(nn) alpha \(alpha) beta \(beta)")
                }
            }
        }
    }

    func testThreadSplitsGiveTheSameBytes() throws {
        try XCTSkipUnless(BLAS.Kernel.supported.contains(.avx512), "/proc/cpuinfo lists no avx512f: the kernel is not called here")
        // one shape for each rule of BLAS.split: columns of 256, 64-row blocks, 2048 columns of a wide B, 256 rows
        for (i, (m, n, k)) in [(3, 576, 40), (255, 96, 300), (100, 16384, 8), (600, 33, 257)].enumerated() {
            let a = ParallelGEMMTests.values(m * k, seed: UInt64(i) + 7), b = ParallelGEMMTests.values(n * k, seed: UInt64(i) + 70)
            func product(_ threads: Int) -> [Float] {
                var c = [Float](repeating: 0, count: m * n)
                withKernel(.avx512, threads: threads) {
                    a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                        BLAS.gemmNTParallel(m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: k,
                                            c: cp.baseAddress!, ldc: n)
                    } } }
                }
                return c
            }
            let one = product(1)
            XCTAssertTrue(product(2) == one, "m \(m) n \(n) k \(k): 2 threads differ from 1")
            XCTAssertTrue(product(3) == one, "m \(m) n \(n) k \(k): 3 threads differ from 1")
            // and within float rounding of OpenBLAS's product
            var blas = [Float](repeating: 0, count: m * n)
            withKernel(.openblas) {
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in blas.withUnsafeMutableBufferPointer { cp in
                    BLAS.gemmNTParallel(m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: k, c: cp.baseAddress!, ldc: n)
                } } }
            }
            XCTAssertFalse(blas == one && k > 64, "the kernel was not used")  // distinct summation orders
            for (x, y) in zip(one, blas) { XCTAssertEqual(x, y, accuracy: 1e-4 * max(1, abs(y))) }
        }
    }
}
