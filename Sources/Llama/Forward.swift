import Foundation
import ModelFormats
import TensorCore

/// The LlamaForCausalLM forward pass on the CPU: batched prefill with a causal mask, RoPE (rope_theta, llama3
/// scaling), GQA, SwiGLU, RMSNorm, tied or untied head. Every matmul is a cblas_sgemm; scratch is allocated once
/// per sequence length.
public final class LlamaForward {
    public let w: LlamaWeights
    let c: LlamaConfig
    let invFreq: [Float]   // [headDim/2]

    /// Called with the input of each linear layer: (layer, name, x [T × in]). For calibration.
    public var captureLinearInput: ((Int, String, UnsafeBufferPointer<Float>, Int) -> Void)?

    public init(_ w: LlamaWeights) {
        BLAS.setThreads(1)  // parallel at this level instead (see BLAS.gemmNTParallel)
        self.w = w
        let c = w.config
        self.c = c
        let hd = c.headDim
        var f = (0..<(hd / 2)).map { i in Float(1 / pow(c.ropeTheta, Double(2 * i) / Double(hd))) }
        if let rs = c.ropeScaling, rs.type.lowercased() == "llama3" {
            let factor = Float(rs.factor ?? 8), low = Float(rs.lowFreqFactor ?? 1), high = Float(rs.highFreqFactor ?? 4)
            let old = Float(rs.originalMaxPositionEmbeddings ?? 8192)
            f = f.map { fr in
                let wavelen = 2 * Float.pi / fr
                if wavelen < old / high { return fr }
                if wavelen > old / low { return fr / factor }
                let smooth = (old / wavelen - low) / (high - low)
                return (1 - smooth) * fr / factor + smooth * fr
            }
        } else if let rs = c.ropeScaling, rs.type == "linear", let factor = rs.factor {
            f = f.map { $0 / Float(factor) }
        }
        invFreq = f
    }

    @inline(__always) static func rmsNorm(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, n: Int, eps: Float) {
        var ss: Float = 0
        for i in 0..<n { ss += x[i] * x[i] }
        let r = 1 / (ss / Float(n) + eps).squareRoot()
        for i in 0..<n { out[i] = x[i] * r * g[i] }
    }

    /// RMSNorm of each row of x [rows × n] with gain g into h.
    public static func normRows(_ x: [Float], _ g: [Float], _ h: inout [Float], rows: Int, n: Int, eps: Float) {
        x.withUnsafeBufferPointer { xp in h.withUnsafeMutableBufferPointer { hp in g.withUnsafeBufferPointer { gp in
            nonisolated(unsafe) let (xs, hs, gs) = (xp.baseAddress!, hp.baseAddress!, gp.baseAddress!)
            Parallel.forRanges(rows, minChunk: 16) { r in
                for t in r { rmsNorm(xs + t * n, gs, hs + t * n, n: n, eps: eps) }
            }
        } } }
    }

    /// Rotate-half RoPE on `heads` heads of each row (row stride `stride`), positions pos0 + t.
    func rope(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, stride: Int, pos0: Int) {
        let hd = c.headDim, half = hd / 2
        for t in 0..<rows {
            let pos = Float(pos0 + t)
            for i in 0..<half {
                let a = pos * invFreq[i]
                let cs = cos(a), sn = sin(a)
                for h in 0..<heads {
                    let p = x + t * stride + h * hd
                    let x1 = p[i], x2 = p[i + half]
                    p[i] = x1 * cs - x2 * sn
                    p[i + half] = x2 * cs + x1 * sn
                }
            }
        }
    }

    /// Keys and values of the positions seen so far, per layer: [capacity × nkv·hd] each.
    public final class KVCache {
        public let capacity: Int
        public internal(set) var length = 0
        var k: [[Float]], v: [[Float]]
        public init(config c: LlamaConfig, capacity: Int, layers: Int? = nil) {
            self.capacity = capacity
            let kvd = c.numKVHeads * c.headDim
            k = Array(repeating: [Float](repeating: 0, count: capacity * kvd), count: layers ?? c.numLayers)
            v = k
        }
    }

    /// Logits for `tokens` (one sequence from position 0), only for rows in `logitRows` (all when nil):
    /// [rows.count × vocab] row-major.
    public func logits(_ tokens: [Int32], logitRows: Range<Int>? = nil) throws -> [Float] {
        try logits(tokens, cache: KVCache(config: c, capacity: tokens.count), logitRows: logitRows)
    }

    /// Appends `tokens` to the sequence held in `cache` (positions cache.length ..< cache.length + T) and returns
    /// logits for `logitRows` of these T tokens.
    public func logits(_ tokens: [Int32], cache: KVCache, logitRows: Range<Int>? = nil) throws -> [Float] {
        let T = tokens.count
        let P = cache.length
        guard P + T <= cache.capacity else { throw QKError("sequence of \(P + T) tokens exceeds the cache (\(cache.capacity))") }
        var x = try embed(tokens)
        for (l, L) in w.layers.enumerated() { runLayer(l, L, x: &x, T: T, P: P, cache: cache) }
        cache.length = P + T
        return head(x, T: T, logitRows: logitRows)
    }

    /// The embedding rows of `tokens`: [T, hidden].
    public func embed(_ tokens: [Int32]) throws -> [Float] {
        let H = c.hiddenSize, V = c.vocabSize
        for t in tokens where t < 0 || Int(t) >= V { throw QKError("token id \(t) is outside the vocabulary (\(V))") }
        var x = [Float](repeating: 0, count: tokens.count * H)
        w.embed.withUnsafeBufferPointer { e in
            for t in 0..<tokens.count { for i in 0..<H { x[t * H + i] = e[Int(tokens[t]) * H + i] } }
        }
        return x
    }

    /// One decoder layer on the residual stream x [T, hidden] at positions P ..< P + T (keys/values of earlier
    /// positions from `cache`, this layer's new ones written into it). `L` may be another copy of layer l's weights
    /// (calibration runs quantized copies).
    /// `stopAfter`: return right after the input of that linear has been captured (calibration needs no more of the
    /// layer then; x is left partly updated).
    public func runLayer(_ l: Int, _ L: LlamaWeights.Layer, x: inout [Float], T: Int, P: Int, cache: KVCache, stopAfter: String? = nil) {
        let H = c.hiddenSize, qd = c.numHeads * c.headDim, F = c.intermediateSize
        let eps = Float(c.rmsNormEps)
        var h = [Float](repeating: 0, count: T * H)       // normed [T, H]
        Self.normRows(x, L.attnNorm, &h, rows: T, n: H, eps: eps)
        if let cap = captureLinearInput { h.withUnsafeBufferPointer { cap(l, "self_attn.q_proj", $0, H) } }
        if stopAfter == "self_attn.q_proj" { return }
        let att = attentionCore(l, L, normed: h, T: T, P: P, cache: cache)  // [T, nq·hd]
        if let cap = captureLinearInput { att.withUnsafeBufferPointer { cap(l, "self_attn.o_proj", $0, qd) } }
        if stopAfter == "self_attn.o_proj" { return }
        Self.linear(att, rows: T, W: L.wo, inDim: qd, outDim: H, into: &x, accumulate: true)
        Self.normRows(x, L.ffnNorm, &h, rows: T, n: H, eps: eps)
        if let cap = captureLinearInput { h.withUnsafeBufferPointer { cap(l, "mlp.gate_proj", $0, H) } }
        if stopAfter == "mlp.gate_proj" { return }
        let g = mlpHidden(L, normed: h, T: T)             // [T, F]
        if let cap = captureLinearInput { g.withUnsafeBufferPointer { cap(l, "mlp.down_proj", $0, F) } }
        Self.linear(g, rows: T, W: L.wDown, inDim: F, outDim: H, into: &x, accumulate: true)
    }

    /// y [rows, outDim] (+)= x [rows, inDim] · Wᵀ, W [outDim, inDim].
    public static func linear(_ x: [Float], rows: Int, W: [Float], inDim: Int, outDim: Int, into y: inout [Float], accumulate: Bool = false) {
        x.withUnsafeBufferPointer { xp in W.withUnsafeBufferPointer {
            BLAS.gemmNTParallel(m: rows, n: outDim, k: inDim, a: xp.baseAddress!, lda: inDim, b: $0.baseAddress!, ldb: inDim, c: &y, ldc: outDim, beta: accumulate ? 1 : 0)
        } }
    }

    /// The self-attention block's output (after o_proj) for normed inputs h [T, hidden] of one sequence from
    /// position 0: [T, hidden]. For calibration (AWQ inspects this block).
    public func selfAttention(_ l: Int, _ L: LlamaWeights.Layer, normed h: [Float], T: Int) -> [Float] {
        let H = c.hiddenSize, qd = c.numHeads * c.headDim
        let att = attentionCore(l, L, normed: h, T: T, P: 0, cache: KVCache(config: c, capacity: T, layers: l + 1))
        var y = [Float](repeating: 0, count: T * H)
        Self.linear(att, rows: T, W: L.wo, inDim: qd, outDim: H, into: &y)
        return y
    }

    /// The MLP block's output (after down_proj) for normed inputs h [T, hidden]: [T, hidden].
    public func mlp(_ L: LlamaWeights.Layer, normed h: [Float], T: Int) -> [Float] {
        let H = c.hiddenSize, F = c.intermediateSize
        let g = mlpHidden(L, normed: h, T: T)
        var y = [Float](repeating: 0, count: T * H)
        Self.linear(g, rows: T, W: L.wDown, inDim: F, outDim: H, into: &y)
        return y
    }

    /// silu(h·Wgateᵀ) ⊙ (h·Wupᵀ): [T, intermediate], the input of down_proj.
    public func mlpHidden(_ L: LlamaWeights.Layer, normed h: [Float], T: Int) -> [Float] {
        let H = c.hiddenSize, F = c.intermediateSize
        var g = [Float](repeating: 0, count: T * F)       // [T, F]
        var u = [Float](repeating: 0, count: T * F)
        Self.linear(h, rows: T, W: L.wGate, inDim: H, outDim: F, into: &g)
        Self.linear(h, rows: T, W: L.wUp, inDim: H, outDim: F, into: &u)
        g.withUnsafeMutableBufferPointer { gp in u.withUnsafeBufferPointer { up in
            nonisolated(unsafe) let (gs, us) = (gp.baseAddress!, up.baseAddress!)
            Parallel.forRanges(T * F, minChunk: 4096) { r in
                for i in r { let a = gs[i]; gs[i] = a / (1 + FastExp.exp(-a)) * us[i] }
            }
        } }
        return g
    }

    /// q/k/v projections, RoPE, causal softmax attention with GQA: the input of o_proj, [T, nq·hd]. Writes this
    /// layer's keys and values for positions P ..< P + T into `cache`.
    func attentionCore(_ l: Int, _ L: LlamaWeights.Layer, normed h: [Float], T: Int, P: Int, cache: KVCache) -> [Float] {
        let H = c.hiddenSize, hd = c.headDim, nq = c.numHeads, nkv = c.numKVHeads
        let qd = nq * hd, kvd = nkv * hd, group = nq / nkv
        var q = [Float](repeating: 0, count: T * qd)      // [T, nq·hd]
        var k = [Float](repeating: 0, count: T * kvd)     // [T, nkv·hd] (new positions)
        var v = [Float](repeating: 0, count: T * kvd)
        var att = [Float](repeating: 0, count: T * qd)    // attention output [T, nq·hd]
        let S = P + T                                      // keys visible to the last new token
        let nThreads = max(1, min(Parallel.threads, nq))
        var scores = [Float](repeating: 0, count: nThreads * T * S)  // one [T, S] block per thread
        let scale = 1 / Float(hd).squareRoot()
        Self.linear(h, rows: T, W: L.wq, inDim: H, outDim: qd, into: &q)
        Self.linear(h, rows: T, W: L.wk, inDim: H, outDim: kvd, into: &k)
        Self.linear(h, rows: T, W: L.wv, inDim: H, outDim: kvd, into: &v)
        q.withUnsafeMutableBufferPointer { rope($0.baseAddress!, rows: T, heads: nq, stride: qd, pos0: P) }
        k.withUnsafeMutableBufferPointer { rope($0.baseAddress!, rows: T, heads: nkv, stride: kvd, pos0: P) }
        for i in 0..<(T * kvd) { cache.k[l][P * kvd + i] = k[i]; cache.v[l][P * kvd + i] = v[i] }
        q.withUnsafeBufferPointer { qp in cache.k[l].withUnsafeBufferPointer { kp in cache.v[l].withUnsafeBufferPointer { vp in
            scores.withUnsafeMutableBufferPointer { spAll in att.withUnsafeMutableBufferPointer { ap in
              nonisolated(unsafe) let (qs, ks, vs, ss, aps) = (qp.baseAddress!, kp.baseAddress!, vp.baseAddress!, spAll.baseAddress!, ap.baseAddress!)
              DispatchQueue.concurrentPerform(iterations: nThreads) { th in
                let sp = UnsafeMutableBufferPointer(start: ss + th * T * S, count: T * S)
                let qp = UnsafeBufferPointer(start: qs, count: T * qd), kp = UnsafeBufferPointer(start: ks, count: cache.capacity * kvd)
                let vp = UnsafeBufferPointer(start: vs, count: cache.capacity * kvd), ap = UnsafeMutableBufferPointer(start: aps, count: T * qd)
                for hh in stride(from: th, to: nq, by: nThreads) {
                    let kvh = hh / group
                    // causal blocks of query rows: rows t0 ..< t1 see keys 0 ..< P + t1 only, so the masked upper
                    // triangle is neither multiplied nor exponentiated
                    for t0 in stride(from: 0, to: T, by: Self.attentionRowBlock) {
                        let t1 = min(T, t0 + Self.attentionRowBlock), Sb = P + t1
                        let sb = sp.baseAddress! + t0 * S                 // scores rows t0 ..< t1, [t1 − t0, Sb] (ld S)
                        // scores = Q_h · K_hᵀ · scale; new token t sees keys 0 ... P + t
                        BLAS.gemmNT(m: t1 - t0, n: Sb, k: hd, a: qp.baseAddress! + t0 * qd + hh * hd, lda: qd,
                                    b: kp.baseAddress! + kvh * hd, ldb: kvd, c: sb, ldc: S, alpha: scale)
                        for t in t0..<t1 {
                            let row = sp.baseAddress! + t * S
                            let visible = P + t + 1             // keys 0 ..< visible (half-open loops vectorize)
                            var m = -Float.infinity
                            for j in 0..<visible { m = max(m, row[j]) }
                            for j in 0..<visible { row[j] = FastExp.exp(row[j] - m) }
                            var s: Float = 0
                            for j in 0..<visible { s += row[j] }
                            let inv = 1 / s
                            for j in 0..<visible { row[j] *= inv }
                            for j in visible..<Sb { row[j] = 0 }
                        }
                        // O_h = softmax · V_h  [t1 − t0, hd]
                        BLAS.gemmNN(m: t1 - t0, n: hd, k: Sb, a: sb, lda: S, b: vp.baseAddress! + kvh * hd, ldb: kvd,
                                    c: ap.baseAddress! + t0 * qd + hh * hd, ldc: qd)
                    }
                }
              }
            } }
        } } }
        return att
    }

    /// Query rows per causal block in attention.
    static let attentionRowBlock = 128

    /// Final norm and LM head for `logitRows` of x [T, hidden]: [rows × vocab].
    public func head(_ x: [Float], T: Int, logitRows: Range<Int>?) -> [Float] {
        let H = c.hiddenSize, V = c.vocabSize
        let eps = Float(c.rmsNormEps)
        var h = [Float](repeating: 0, count: T * H)
        let rows = logitRows ?? 0..<T
        x.withUnsafeBufferPointer { xp in h.withUnsafeMutableBufferPointer { hp in w.norm.withUnsafeBufferPointer { gp in
            for (r, t) in rows.enumerated() { Self.rmsNorm(xp.baseAddress! + t * H, gp.baseAddress!, hp.baseAddress! + r * H, n: H, eps: eps) }
        } } }
        if let cap = captureLinearInput { h.withUnsafeBufferPointer { cap(-1, "lm_head", UnsafeBufferPointer(rebasing: $0[0..<(rows.count * H)]), H) } }
        var out = [Float](repeating: 0, count: rows.count * V)
        let head = w.lmHead ?? w.embed
        h.withUnsafeBufferPointer { hp in head.withUnsafeBufferPointer {
            BLAS.gemmNTParallel(m: rows.count, n: V, k: H, a: hp.baseAddress!, lda: H, b: $0.baseAddress!, ldb: H, c: &out, ldc: V)
        } }
        return out
    }
}
