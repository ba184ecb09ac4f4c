import CBLAS

/// Row-major single-precision GEMM through OpenBLAS: C[M×N] = alpha·op(A)·op(B) + beta·C.
public enum BLAS {
    /// C = A[M×K] · Bᵀ where B is [N×K] (a Linear weight in HF [out, in] layout); leading dimensions given.
    @inline(__always)
    public static func gemmNT(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                              c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, beta: Float = 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// C = A[M×K] · B[K×N].
    @inline(__always)
    public static func gemmNN(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                              c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, beta: Float = 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }

    public static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }
}
