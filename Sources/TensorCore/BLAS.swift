import CBLAS
import CRowKernels
import Foundation

/// Row-major single-precision GEMM through OpenBLAS: C[M×N] = alpha·op(A)·op(B) + beta·C.
public enum BLAS {
    /// What computes `gemmNT` (the forward pass's products of activations and weights).
    public enum Kernel: String, Sendable {
        /// OpenBLAS's sgemm, with the core its detection or the environment's OPENBLAS_CORETYPE chose.
        case openblas
        /// quantkit's own product (`Sources/CRowKernels/Gemm.c`), AVX-512F: an environment may pin OpenBLAS to its
        /// Haswell kernels, which quantkit leaves as set (`bench-sgemm` on two cores of an AVX-512 EPYC: Haswell
        /// 226–229 GFLOP/s, SkylakeX 400, this kernel 344–360; a GPTQ job 136 s, 96 s, 99 s).
        case avx512

        /// The kernels this CPU runs: avx512 where /proc/cpuinfo lists avx512f.
        public static let supported: [Kernel] = CPUFeatures.flags.contains("avx512f") ? [.openblas, .avx512] : [.openblas]
    }

    /// avx512 where this CPU runs it, unless QUANTKIT_GEMM=openblas; else openblas.
    nonisolated(unsafe) public static var kernel: Kernel = {
        let asked = ProcessInfo.processInfo.environment["QUANTKIT_GEMM"]
        return Kernel.supported.contains(.avx512) && asked != Kernel.openblas.rawValue ? .avx512 : .openblas
    }()

    /// C = A[M×K] · Bᵀ where B is [N×K] (a Linear weight in HF [out, in] layout); leading dimensions given. One
    /// thread (callers split the work). With `kernel` avx512 and beta 0 (alpha then applied to each sum) or alpha 1
    /// and beta 1, each value of C is summed in an order that depends on k only, not on m, n or the block of C computed.
    @inline(__always)
    public static func gemmNT(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                              c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, beta: Float = 0) {
        if kernel == .avx512 && (alpha == 1 && beta == 1 || beta == 0),
           qk_sgemm_nt_avx512(m, n, k, a, lda, b, ldb, c, ldc, 0, n, beta == 1 ? 1 : 0) == 0 {
            if alpha != 1 { scale(c, ldc: ldc, m: m, n: n, by: alpha) }   // alpha · (Σ), as sgemm rounds it
            return
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// C = A[M×K] · B[K×N]; with `kernel` avx512 as `gemmNT`.
    @inline(__always)
    public static func gemmNN(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                              c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, beta: Float = 0) {
        if kernel == .avx512 && (alpha == 1 && beta == 1 || beta == 0),
           qk_sgemm_nn_avx512(m, n, k, a, lda, b, ldb, c, ldc, 0, n, beta == 1 ? 1 : 0) == 0 {
            if alpha != 1 { scale(c, ldc: ldc, m: m, n: n, by: alpha) }
            return
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// C[i, j] ← alpha · C[i, j] for the m × n block at c.
    static func scale(_ c: UnsafeMutablePointer<Float>, ldc: Int, m: Int, n: Int, by alpha: Float) {
        for i in 0..<m {
            let row = c + i * ldc
            for j in 0..<n { row[j] *= alpha }
        }
    }

    /// C[M×N] += alpha · Aᵀ · B with A [K×M] and B [K×N] (e.g. H += XᵀX).
    @inline(__always)
    public static func gemmTN(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                              c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, beta: Float = 1) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// In-place Cholesky factor of a symmetric positive-definite n×n matrix (row-major, f64): lower = true gives
    /// L with A = L·Lᵀ in the lower triangle. Returns LAPACK's info (0 = success, > 0 = not positive definite).
    public static func cholesky(_ a: inout [Double], n: Int, lower: Bool) -> Int {
        // row-major lower == column-major upper
        var uplo: CChar = lower ? 85 : 76  // "U" : "L" in column-major terms
        var nn = Int32(n), lda = Int32(n), info: Int32 = 0
        a.withUnsafeMutableBufferPointer { dpotrf_(&uplo, &nn, $0.baseAddress!, &lda, &info) }
        return Int(info)
    }

    /// Inverse of an SPD matrix from its Cholesky factor (as left by `cholesky(lower:)`), filled symmetric.
    public static func choleskyInverse(_ a: inout [Double], n: Int, lower: Bool) -> Int {
        var uplo: CChar = lower ? 85 : 76
        var nn = Int32(n), lda = Int32(n), info: Int32 = 0
        a.withUnsafeMutableBufferPointer { dpotri_(&uplo, &nn, $0.baseAddress!, &lda, &info) }
        if info != 0 { return Int(info) }
        for i in 0..<n { for j in 0..<i { if lower { a[j * n + i] = a[i * n + j] } else { a[i * n + j] = a[j * n + i] } } }
        return 0
    }

    /// The upper Cholesky factor U of A⁻¹ (A⁻¹ = UᵀU, GPTQ's Hinv) for an SPD n×n matrix A (row-major, f64), from one
    /// factorization and one triangular inverse (half the work of factor, invert, factor again): with J the reversal
    /// permutation, JAJ = L̃L̃ᵀ gives A⁻¹ = J L̃⁻ᵀ L̃⁻¹ J = UᵀU for U = J L̃⁻¹ J, which is upper triangular. The strictly
    /// lower part of the result is zero. Returns LAPACK's info (> 0: A is not positive definite).
    public static func inverseCholeskyUpper(_ a: inout [Double], n: Int) -> Int {
        var b = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i { b[i * n + j] = a[(n - 1 - i) * n + (n - 1 - j)] }
        }
        let info = cholesky(&b, n: n, lower: true)
        if info != 0 { return info }
        var uplo: CChar = 85  // row-major lower == column-major "U"
        var diag: CChar = 78  // "N"
        var nn = Int32(n), lda = Int32(n), tinfo: Int32 = 0
        b.withUnsafeMutableBufferPointer { dtrtri_(&uplo, &diag, &nn, $0.baseAddress!, &lda, &tinfo) }
        if tinfo != 0 { return Int(tinfo) }
        for i in 0..<n {
            for j in 0..<n { a[i * n + j] = j < i ? 0 : b[(n - 1 - i) * n + (n - 1 - j)] }
        }
        return 0
    }

    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }

    /// gemmNT split over our own threads, each calling a single-threaded OpenBLAS: OpenBLAS's own threads spin
    /// between calls and starve the non-GEMM work. The blocks depend on the shape only (see `split`), not on the
    /// thread count, so the bytes computed are the same at any thread count.
    public static func gemmNTParallel(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                      c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, beta: Float = 0) {
        nonisolated(unsafe) let (ap, bp, cp) = (a, b, c)
        forSplit(m: m, n: n) { rows, columns in
            gemmNT(m: rows.count, n: columns.count, k: k, a: ap + rows.lowerBound * lda, lda: lda,
                   b: bp + columns.lowerBound * ldb, ldb: ldb, c: cp + rows.lowerBound * ldc + columns.lowerBound, ldc: ldc,
                   alpha: alpha, beta: beta)
        }
    }

    /// gemmNN over our threads in `split`'s blocks of C, as `gemmNTParallel`.
    public static func gemmNNParallel(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                      c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, beta: Float = 0) {
        nonisolated(unsafe) let (ap, bp, cp) = (a, b, c)
        forSplit(m: m, n: n) { rows, columns in
            gemmNN(m: rows.count, n: columns.count, k: k, a: ap + rows.lowerBound * lda, lda: lda,
                   b: bp + columns.lowerBound, ldb: ldb, c: cp + rows.lowerBound * ldc + columns.lowerBound, ldc: ldc,
                   alpha: alpha, beta: beta)
        }
    }

    /// gemmTN (C += alpha · Aᵀ · B by default) over our threads in `split`'s blocks of C, as `gemmNTParallel`: rows of
    /// C are columns of A [k × m].
    public static func gemmTNParallel(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                      c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, beta: Float = 1) {
        nonisolated(unsafe) let (ap, bp, cp) = (a, b, c)
        forSplit(m: m, n: n) { rows, columns in
            gemmTN(m: rows.count, n: columns.count, k: k, a: ap + rows.lowerBound, lda: lda,
                   b: bp + columns.lowerBound, ldb: ldb, c: cp + rows.lowerBound * ldc + columns.lowerBound, ldc: ldc,
                   alpha: alpha, beta: beta)
        }
    }

    /// Calls `body(rows, columns)` for the blocks of C [m × n] that `split` gives, spread over the threads.
    static func forSplit(m: Int, n: Int, _ body: (Range<Int>, Range<Int>) -> Void) {
        switch split(m: m, n: n) {
        case .rows(let rows):
            Parallel.forBlocks(m, block: rows) { r in body(r, 0..<n) }
        case .columns(let columns):
            Parallel.forBlocks(n, block: columns) { r in body(0..<m, r) }
        }
    }

    /// Blocks of C [m × n] for the parallel products: this many rows, or this many columns.
    public enum Split: Equatable { case rows(Int), columns(Int) }

    /// - m ≥ 512: 256 rows;
    /// - 64 ≤ m < 512: 64 rows (both threads busy on e.g. 255 rows), but 2048 columns when B is wide (n ≥ 16384, an
    ///   LM head), so each thread packs only its part of the large weight;
    /// - m < 64 (decoding): 256 columns, so both threads share even a 576-row weight.
    public static func split(m: Int, n: Int) -> Split {
        if m >= 512 { return .rows(256) }
        if m >= 64 { return n < 16384 ? .rows(64) : .columns(2048) }
        return .columns(256)
    }

    /// C[N×N] += XᵀX for X [K×N] (row stride ldx), the Gram matrix of X's columns (GPTQ's Hessian), lower triangle
    /// only (`mirrorLower` copies it up once the sum is complete). Two parts of equal work, one single-threaded BLAS call
    /// sequence each, spread over the threads: rows [0, b) by ssyrk, and rows [b, N) by one sgemm for the columns left
    /// of b plus ssyrk for the rest, with b ≈ N/√2 (both parts hold N²/4 products). The parts depend on the shape only,
    /// so the bytes are the same at any thread count; ssyrk at K in the thousands runs at sgemm's rate, where one
    /// gemm per 64-row block packed X again for every block (half the rate).
    /// With `kernel` avx512: blocks of 128 rows of C, each with the columns up to its diagonal, by the AVX-512 product
    /// reading X as stored (the part of a block right of the diagonal is summed too and left for `mirrorLower` to
    /// overwrite).
    public static func gramLowerParallel(n: Int, k: Int, x: UnsafePointer<Float>, ldx: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        nonisolated(unsafe) let (xp, cp) = (x, c)
        if kernel == .avx512 && n > 0 && k > 0 {
            Parallel.forBlocks(n, block: 128) { rows in
                let (a, m, w) = (xp + rows.lowerBound, rows.count, rows.upperBound)
                let y = cp + rows.lowerBound * ldc
                // the kernel fails (no memory for its packed blocks) before it touches C: OpenBLAS then
                if qk_sgemm_tn_avx512(m, w, k, a, ldx, xp, ldx, y, ldc, 0, w, 1) != 0 {
                    gemmTN(m: m, n: w, k: k, a: a, lda: ldx, b: xp, ldb: ldx, c: y, ldc: ldc)
                }
            }
            return
        }
        let b = gramSplit(n)
        Parallel.forBlocks(b < n ? 2 : 1, block: 1) { part in
            if part.lowerBound == 0 {
                syrkTN(n: b, k: k, x: xp, ldx: ldx, c: cp, ldc: ldc)
                return
            }
            gemmTN(m: n - b, n: b, k: k, a: xp + b, lda: ldx, b: xp, ldb: ldx, c: cp + b * ldc, ldc: ldc, alpha: 1, beta: 1)
            syrkTN(n: n - b, k: k, x: xp + b, ldx: ldx, c: cp + b * ldc + b, ldc: ldc)
        }
    }

    /// The first part's rows in `gramLowerParallel`: N/√2 rounded to a multiple of 32 (N below 64: all of them).
    public static func gramSplit(_ n: Int) -> Int {
        if n < 64 { return n }
        return min(n, (Int((Double(n) / 2.0.squareRoot()).rounded()) + 16) / 32 * 32)
    }

    /// Lower triangle of C[N×N] += XᵀX for X [K×N], one single-threaded ssyrk.
    @inline(__always)
    public static func syrkTN(n: Int, k: Int, x: UnsafePointer<Float>, ldx: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, Int32(n), Int32(k), 1, x, Int32(ldx), 1, c, Int32(ldc))
    }

    /// c[i, j] = c[j, i] for j > i: the upper triangle of an n×n matrix from its lower one.
    public static func mirrorLower(_ c: UnsafeMutablePointer<Float>, n: Int, ldc: Int) {
        for i in 0..<n {
            for j in (i + 1)..<max(i + 1, n) { c[i * ldc + j] = c[j * ldc + i] }
        }
    }

    public static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }
}
