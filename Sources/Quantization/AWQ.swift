import Foundation
import TensorCore

/// Activation-aware weight quantization (Lin et al.; AutoAWQ's defaults): per input channel scales s that protect
/// the channels with large activations, chosen by a grid search on the block output, folded into the previous op;
/// then a per-group clipping search. The pseudo-quantizer Q is a parameter: an integer scheme, or a ggml block type.
public enum AWQ {
    /// Q(W) for W [rows × cols]: quantize and dequantize.
    public typealias PseudoQuantize = (_ W: [Float], _ rows: Int, _ cols: Int) throws -> [Float]

    /// The 20-point grid of ratios r = i/20, i = 0 … 19.
    public static let grid = 20

    /// mean |x| per column over the rows of the blocks (each [rows_k × cols]): the activation statistic s_X.
    public static func xMean(_ blocks: [[Float]], cols: Int) -> [Float] {
        var acc = [Double](repeating: 0, count: cols)
        var n = 0
        for x in blocks {
            let rows = x.count / max(1, cols)
            n += rows
            x.withUnsafeBufferPointer { p in
                var part = [Float](repeating: 0, count: cols)   // per-block sums in f32, then f64
                for t in 0..<rows { for c in 0..<cols { part[c] += abs(p[t * cols + c]) } }
                for c in 0..<cols { acc[c] += Double(part[c]) }
            }
        }
        return acc.map { Float($0 / Double(max(1, n))) }
    }

    /// The weight statistic: the linears' rows stacked, each group of |w| divided by its max (+1e-6), averaged over
    /// rows per column.
    public static func wMean(_ weights: [[Float]], cols: Int, groupSize: Int) -> [Float] {
        let g = groupSize <= 0 ? cols : groupSize
        var acc = [Double](repeating: 0, count: cols)
        var rows = 0
        for W in weights {
            let r = W.count / cols
            rows += r
            W.withUnsafeBufferPointer { p in
                for row in 0..<r {
                    for j in stride(from: 0, to: cols, by: g) {
                        let end = min(cols, j + g)
                        var m: Float = 0
                        for c in j..<end { m = max(m, abs(p[row * cols + c])) }
                        let inv = 1 / (m + 1e-6)
                        for c in j..<end { acc[c] += Double(abs(p[row * cols + c]) * inv) }
                    }
                }
            }
        }
        return acc.map { Float($0 / Double(max(1, rows))) }
    }

    /// Scales for ratio r: duo scaling x^r / (w^(1−r) + 1e-4) (or x^r alone), at least 1e-4, normalized by
    /// sqrt(max·min); non-finite values become 1.
    public static func scales(xMean: [Float], wMean: [Float], ratio r: Float, duo: Bool = true) -> [Float] {
        var s = zip(xMean, wMean).map { x, w -> Float in
            duo ? max(pow(x, r) / (pow(w, 1 - r) + 1e-4), 1e-4) : max(pow(x, r), 1e-4)
        }
        let norm = ((s.max() ?? 1) * (s.min() ?? 1)).squareRoot()
        s = s.map { $0 / norm }
        return s.map { $0.isFinite ? $0 : 1 }
    }

    /// Q(W·s)/s: W [rows × cols] scaled per column, pseudo-quantized, unscaled.
    public static func scaledPseudoQuantize(_ W: [Float], rows: Int, cols: Int, s: [Float], Q: PseudoQuantize) throws -> [Float] {
        var Ws = W
        for r in 0..<rows { for c in 0..<cols { Ws[r * cols + c] *= s[c] } }
        var q = try Q(Ws, rows, cols)
        for r in 0..<rows { for c in 0..<cols { q[r * cols + c] /= s[c] } }
        return q
    }

    /// Mean squared difference.
    public static func mse(_ a: [Float], _ b: [Float]) -> Double {
        var acc = 0.0
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
            for i in 0..<min(ap.count, bp.count) { let d = Double(ap[i] - bp[i]); acc += d * d }
        } }
        return acc / Double(max(1, a.count))
    }

    /// Result of a scale search: the best ratio, its scales and the loss of every ratio tried.
    /// The search's choice: `ratio` of the grid, or −1 for the identity (no scaling); the loss of every grid ratio; the
    /// loss without scaling (`plain`).
    public struct ScaleSearch { public var ratio: Float; public var s: [Float]; public var losses: [Double]; public var plain: Double }

    /// Grid search: `loss(s)` is the block-output MSE with the block's linears replaced by Q(W·s)/s. The identity (no
    /// scaling) is a candidate beside the grid, so AWQ declines to scale where no ratio helps (AutoAWQ's duo-scaled grid
    /// has no identity: its r = 0 is s = 1/w_mean). A ratio whose scaled weights leave a ggml block's f16 scale range is
    /// not a candidate (loss +∞); if none is, that error.
    public static func searchScales(xMean: [Float], wMean: [Float], duo: Bool = true, identity candidate: Bool = true,
                                    loss: ([Float]) throws -> Double) throws -> ScaleSearch {
        var overflow: Error? = nil
        func tried(_ s: [Float]) throws -> Double {
            do { return try loss(s) } catch where GGMLCodec.isScaleOverflow(error) {
                overflow = error
                return .infinity
            }
        }
        let identity = [Float](repeating: 1, count: xMean.count)
        let plain = try tried(identity)
        var best = ScaleSearch(ratio: -1, s: identity, losses: [], plain: plain)
        var bestLoss = candidate ? plain : .infinity
        for i in 0..<grid {
            let r = Float(i) / Float(grid)
            let s = scales(xMean: xMean, wMean: wMean, ratio: r, duo: duo)
            let l = try tried(s)
            best.losses.append(l)
            if l < bestLoss { bestLoss = l; best.ratio = r; best.s = s }
        }
        if bestLoss == .infinity, let overflow { throw overflow }
        return best
    }

    /// Clip search (after scaling): for each (row, group), max |w| shrunk by (1 − i/20), i = 0 … 9, symmetric clamp,
    /// then Q; keeps the shrink with the lowest MSE of the group's partial output over `x` [n × cols] (AutoAWQ samples
    /// 512 tokens evenly). Returns the clipped W.
    public static func clip(_ W: [Float], rows: Int, cols: Int, groupSize: Int, x: [Float], Q: PseudoQuantize, shrinkSteps: Int = 10) throws -> [Float] {
        let g = groupSize <= 0 ? cols : groupSize
        guard cols % g == 0 else { throw QKError("AWQ clip: group size \(g) does not divide \(cols) columns") }
        let G = cols / g, n = x.count / cols
        // original max |w| per (row, group)
        var orgMax = [Float](repeating: 0, count: rows * G)
        for r in 0..<rows { for j in 0..<G {
            var m: Float = 0
            for c in (j * g)..<((j + 1) * g) { m = max(m, abs(W[r * cols + c])) }
            orgMax[r * G + j] = m
        } }
        var bestMax = orgMax
        var minErr = [Double](repeating: 1e9, count: rows * G)
        var E = [Float](repeating: 0, count: n * rows)   // [n × rows] partial-output error of one group
        var acc = [Double](repeating: 0, count: rows)
        for i in 0..<shrinkSteps {
            let f = 1 - Float(i) / Float(grid)
            var Wc = W
            for r in 0..<rows { for j in 0..<G {
                let m = orgMax[r * G + j] * f
                for c in (j * g)..<((j + 1) * g) { Wc[r * cols + c] = min(max(Wc[r * cols + c], -m), m) }
            } }
            var D = try Q(Wc, rows, cols)           // [rows × cols]: Q(clamp(W)) − W
            for k in D.indices { D[k] -= W[k] }
            for j in 0..<G {
                // E = x[:, group j] · D[:, group j]ᵀ
                x.withUnsafeBufferPointer { xp in D.withUnsafeBufferPointer { dp in
                    BLAS.gemmNTParallel(m: n, n: rows, k: g, a: xp.baseAddress! + j * g, lda: cols, b: dp.baseAddress! + j * g, ldb: cols, c: &E, ldc: rows)
                } }
                // Σ_t E[t, r]², token by token along E's rows (each row's sum in the same order as a column walk)
                for r in 0..<rows { acc[r] = 0 }
                E.withUnsafeBufferPointer { ep in acc.withUnsafeMutableBufferPointer { ap in
                    for t in 0..<n {
                        let e = ep.baseAddress! + t * rows
                        for r in 0..<rows { let v = Double(e[r]); ap[r] += v * v }
                    }
                } }
                for r in 0..<rows {
                    let err = acc[r] / Double(max(1, n))
                    if err < minErr[r * G + j] { minErr[r * G + j] = err; bestMax[r * G + j] = orgMax[r * G + j] * f }
                }
            }
        }
        var out = W
        for r in 0..<rows { for j in 0..<G {
            let m = bestMax[r * G + j]
            for c in (j * g)..<((j + 1) * g) { out[r * cols + c] = min(max(out[r * cols + c], -m), m) }
        } }
        return out
    }

    /// Every `step`-th row of the blocks (each [rows_k × cols], taken as one [n × cols] matrix) so that about
    /// `tokens` rows remain (AutoAWQ's n_sample_token).
    public static func sampleRows(_ blocks: [[Float]], cols: Int, tokens: Int = 512) -> [Float] {
        let n = blocks.reduce(0) { $0 + $1.count / cols }
        let step = max(1, n / tokens)
        var out: [Float] = []
        out.reserveCapacity((n / step + 1) * cols)
        var base = 0   // global row index of the block's first row
        for x in blocks {
            let rows = x.count / cols
            var t = (step - base % step) % step
            while t < rows { out.append(contentsOf: x[(t * cols)..<((t + 1) * cols)]); t += step }
            base += rows
        }
        return out
    }
}
