import Foundation
import TensorCore

/// The output error of a quantized linear from its inputs' Gram matrix: for inputs X [n × cols] and D = W − Q
/// [rows × cols], mean over tokens and outputs of (X·Dᵀ)² = Σ_r d_r·(XᵀX/n)·d_rᵀ / rows. One [rows × cols × cols]
/// product instead of a pass over the tokens, exact for any number of them.
public enum OutputError {
    /// `gram` is XᵀX/n [cols × cols] times `gramScale` (GPTQ's H = 2XᵀX/n passes 0.5).
    public static func mse(_ W: [Float], _ Q: [Float], gram: [Float], rows: Int, cols: Int, gramScale: Double = 1) -> Double {
        var D = W
        for i in D.indices { D[i] -= Q[i] }
        var DG = [Float](repeating: 0, count: rows * cols)   // [rows × cols] = D · gram
        D.withUnsafeBufferPointer { dp in gram.withUnsafeBufferPointer { gp in
            BLAS.gemmNTParallel(m: rows, n: cols, k: cols, a: dp.baseAddress!, lda: cols, b: gp.baseAddress!, ldb: cols, c: &DG, ldc: cols)
        } }
        var acc = 0.0
        for i in D.indices { acc += Double(D[i]) * Double(DG[i]) }
        return acc * gramScale / Double(max(1, rows))
    }

    /// XᵀX/n of the rows of the given blocks (each [rows_k × cols]), accumulated in f32 by `BLAS.gramLowerParallel`
    /// (the lower triangle, mirrored).
    public static func gram(_ blocks: [[Float]], cols: Int) -> [Float] {
        var G = [Float](repeating: 0, count: cols * cols)
        var n = 0
        for x in blocks {
            let rows = x.count / cols
            n += rows
            x.withUnsafeBufferPointer { xp in G.withUnsafeMutableBufferPointer { gp in
                BLAS.gramLowerParallel(n: cols, k: rows, x: xp.baseAddress!, ldx: cols, c: gp.baseAddress!, ldc: cols)
            } }
        }
        G.withUnsafeMutableBufferPointer { BLAS.mirrorLower($0.baseAddress!, n: cols, ldc: cols) }
        let inv = 1 / Float(max(1, n))
        for i in G.indices { G[i] *= inv }
        return G
    }
}
