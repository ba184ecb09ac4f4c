import Foundation
import ModelFormats
import TensorCore

/// The LlamaForCausalLM forward pass on the CPU: batched prefill with a causal mask, RoPE (rope_theta, llama3
/// scaling), GQA, SwiGLU, RMSNorm, tied or untied head. Every matmul is a cblas_sgemm; scratch memory lives with the
/// KV cache (`Scratch`), so the layers of a sequence, and the next sequences through a reset cache, reuse it.
public final class LlamaForward {
    public let w: LlamaWeights
    let c: LlamaConfig
    let invFreq: [Float]   // [headDim/2]

    /// Called with each activation that feeds linears: (layer, which, x [T × in], in); the head's input has layer −1.
    /// For calibration and importance statistics.
    public var captureLinearInput: ((Int, LlamaInput, UnsafeBufferPointer<Float>, Int) -> Void)?

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

    /// RMSNorm of each row of x [rows × n] with gain g into h [rows × n].
    static func normRows(_ x: UnsafePointer<Float>, _ g: [Float], _ h: UnsafeMutablePointer<Float>, rows: Int, n: Int, eps: Float) {
        nonisolated(unsafe) let (xs, hs) = (x, h)
        g.withUnsafeBufferPointer { gp in
            nonisolated(unsafe) let gs = gp.baseAddress!
            Parallel.forRanges(rows, minChunk: 16) { r in
                for t in r { rmsNorm(xs + t * n, gs, hs + t * n, n: n, eps: eps) }
            }
        }
    }

    /// cos and sin of each position's rotation angles: [rows × headDim/2] each, for positions pos0 ..< pos0 + rows.
    /// Every layer uses the same table, so it is kept for the last (pos0, rows) asked for.
    struct RopeTable { let pos0: Int, rows: Int, cos: [Float], sin: [Float] }
    private var ropeTable: RopeTable?
    private let ropeLock = NSLock()

    func ropeTable(pos0: Int, rows: Int) -> RopeTable {
        ropeLock.lock(); defer { ropeLock.unlock() }
        if let t = ropeTable, t.pos0 == pos0, t.rows == rows { return t }
        let half = c.headDim / 2
        var cs = [Float](repeating: 0, count: rows * half), sn = cs
        for t in 0..<rows {
            let pos = Float(pos0 + t)
            for i in 0..<half { let a = pos * invFreq[i]; cs[t * half + i] = cos(a); sn[t * half + i] = sin(a) }
        }
        let table = RopeTable(pos0: pos0, rows: rows, cos: cs, sin: sn)
        ropeTable = table
        return table
    }

    /// Rotate-half RoPE on `heads` heads of each row (row stride `stride`) with the angles of `table`.
    func rope(_ x: UnsafeMutablePointer<Float>, heads: Int, stride: Int, table: RopeTable) {
        let hd = c.headDim, half = hd / 2
        nonisolated(unsafe) let xs = x
        table.cos.withUnsafeBufferPointer { cp in table.sin.withUnsafeBufferPointer { sp in
            nonisolated(unsafe) let (cs, sn) = (cp.baseAddress!, sp.baseAddress!)
            Parallel.forRanges(table.rows, minChunk: 32) { r in
                for t in r {
                    let ct = cs + t * half, st = sn + t * half
                    for h in 0..<heads {
                        let p = xs + t * stride + h * hd
                        for i in 0..<half {
                            let x1 = p[i], x2 = p[i + half]
                            p[i] = x1 * ct[i] - x2 * st[i]
                            p[i + half] = x2 * ct[i] + x1 * st[i]
                        }
                    }
                }
            }
        } }
    }

    /// Keys and values of the positions seen so far, per layer: [capacity × nkv·hd] each; and the scratch memory of
    /// the passes that use them.
    /// A layer's storage is allocated when the layer first writes to it (calibration runs single layers).
    public final class KVCache {
        public let capacity: Int
        public internal(set) var length = 0
        var k: [[Float]], v: [[Float]]
        let rowLength: Int   // nkv·hd
        let scratch = Scratch()
        public init(config c: LlamaConfig, capacity: Int) {
            self.capacity = capacity
            rowLength = c.numKVHeads * c.headDim
            k = Array(repeating: [], count: c.numLayers)
            v = k
        }
        /// Gives layer l its [capacity × nkv·hd] keys and values if it has none yet.
        func allocate(layer l: Int) {
            if k[l].isEmpty { k[l] = [Float](repeating: 0, count: capacity * rowLength) }
            if v[l].isEmpty { v[l] = [Float](repeating: 0, count: capacity * rowLength) }
        }
        /// Forgets the sequence (positions beyond `length` are never read), so the cache serves the next one.
        public func reset() { length = 0 }
        /// Frees layer l's keys and values (a layer-by-layer pass is done with them).
        public func release(layer l: Int) {
            k[l] = []
            v[l] = []
        }
    }

    /// Named scratch buffers, each grown to the largest size asked for and never zero-filled (every use writes a
    /// buffer before reading it). One pass at a time: a KV cache holds one sequence.
    final class Scratch {
        enum Buffer: Int, CaseIterable { case normed, query, attention, scores, invSums, gate, up }
        private var base = [UnsafeMutablePointer<Float>?](repeating: nil, count: Buffer.allCases.count)
        private var size = [Int](repeating: 0, count: Buffer.allCases.count)

        /// At least `count` floats of buffer `b` (its earlier contents are kept only while it does not grow).
        func get(_ b: Buffer, count: Int) -> UnsafeMutablePointer<Float> {
            let i = b.rawValue
            if let p = base[i], size[i] >= count { return p }
            base[i]?.deallocate()
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, count))
            base[i] = p
            size[i] = count
            return p
        }

        deinit { for p in base { p?.deallocate() } }
    }

    /// Logits for `tokens` (one sequence from position 0), only for rows in `logitRows` (all when nil):
    /// [rows.count × vocab] row-major.
    public func logits(_ tokens: [Int32], logitRows: Range<Int>? = nil) throws -> [Float] {
        try logits(tokens, cache: KVCache(config: c, capacity: tokens.count), logitRows: logitRows)
    }

    /// Appends `tokens` to the sequence held in `cache` (positions cache.length ..< cache.length + T) and returns
    /// logits for `logitRows` of these T tokens.
    public func logits(_ tokens: [Int32], cache: KVCache, logitRows: Range<Int>? = nil) throws -> [Float] {
        var out: [Float] = []
        try logits(tokens, cache: cache, logitRows: logitRows, into: &out)
        return out
    }

    /// `logits(_:cache:logitRows:)` into `out` (its storage reused when the size matches).
    public func logits(_ tokens: [Int32], cache: KVCache, logitRows: Range<Int>? = nil, into out: inout [Float]) throws {
        let T = tokens.count
        let P = cache.length
        guard P + T <= cache.capacity else { throw QKError("sequence of \(P + T) tokens exceeds the cache (\(cache.capacity))") }
        var x = try embed(tokens)
        for l in 0..<c.numLayers { runLayer(l, try w.layer(l), x: &x, T: T, P: P, cache: cache) }
        cache.length = P + T
        head(x, T: T, logitRows: logitRows, into: &out)
    }

    /// The residual stream after the last layer for each of `sequences` (each from position 0), layer by layer: every
    /// sequence goes through layer l before layer l+1 is made, so each layer's f32 weights are made once for all of
    /// them and dropped after (a model streamed from its file holds one layer). The same values as `logits` computes
    /// per sequence. [T_s × hidden] each.
    public func finalHidden(_ sequences: [[Int32]], cache: KVCache) throws -> [[Float]] {
        let pass = try LayerwisePass(self, sequences: sequences, cache: cache)
        for l in 0..<c.numLayers { pass.advance(try w.layer(l)) }
        return pass.residuals
    }

    /// How many sequences of `tokens` go through a layer-by-layer pass together: their residual streams take at
    /// most about 256 MiB (each layer is made f32 once per pass).
    public static func sequencesPerPass(tokens: Int, hidden: Int) -> Int {
        max(1, (256 << 20) / max(1, tokens * hidden * 4))
    }

    /// The embedding rows of `tokens`: [T, hidden].
    public func embed(_ tokens: [Int32]) throws -> [Float] {
        let V = c.vocabSize
        for t in tokens where t < 0 || Int(t) >= V { throw QKError("token id \(t) is outside the vocabulary (\(V))") }
        return try w.embedding(tokens)
    }

    /// One decoder layer on the residual stream x [T, hidden] at positions P ..< P + T (keys/values of earlier
    /// positions from `cache`, this layer's new ones written into it). `L` may be another copy of layer l's weights
    /// (calibration runs quantized copies).
    /// `stopAfter`: return right after that activation has been captured (calibration needs no more of the layer
    /// then; x is left partly updated).
    public func runLayer(_ l: Int, _ L: LlamaWeights.Layer, x: inout [Float], T: Int, P: Int, cache: KVCache, stopAfter: LlamaInput? = nil) {
        let H = c.hiddenSize, qd = c.numHeads * c.headDim, F = c.intermediateSize
        let eps = Float(c.rmsNormEps)
        let s = cache.scratch
        let h = s.get(.normed, count: T * H)               // normed [T, H]
        x.withUnsafeMutableBufferPointer { xb in
            guard let xs = xb.baseAddress else { return }
            Self.normRows(xs, L[.attn], h, rows: T, n: H, eps: eps)
            if let cap = captureLinearInput { cap(l, .attnNormed, UnsafeBufferPointer(start: h, count: T * H), H) }
            if stopAfter == .attnNormed { return }
            let att = s.get(.attention, count: T * qd)     // [T, nq·hd]
            attentionCore(l, L, normed: h, T: T, P: P, cache: cache, into: att)
            if let cap = captureLinearInput { cap(l, .attention, UnsafeBufferPointer(start: att, count: T * qd), qd) }
            if stopAfter == .attention { return }
            project(L, .o, att, rows: T, into: xs, accumulate: true)
            Self.normRows(xs, L[.ffn], h, rows: T, n: H, eps: eps)
            if let cap = captureLinearInput { cap(l, .ffnNormed, UnsafeBufferPointer(start: h, count: T * H), H) }
            if stopAfter == .ffnNormed { return }
            let g = s.get(.gate, count: T * F)             // [T, F]
            mlpHidden(L, normed: h, T: T, into: g, scratch: s)
            if let cap = captureLinearInput { cap(l, .mlpHidden, UnsafeBufferPointer(start: g, count: T * F), F) }
            project(L, .down, g, rows: T, into: xs, accumulate: true)
        }
    }

    /// y [rows, out] (+)= x [rows, in] · Wᵀ for linear `lin` of layer L, from its stored form when the layer holds
    /// one, else its f32 weights.
    func project(_ L: LlamaWeights.Layer, _ lin: LlamaLinear, _ x: UnsafePointer<Float>, rows: Int,
                        into y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        if let m = L.stored[lin.rawValue] {
            m.multiply(x, count: rows, into: y, accumulate: accumulate, rounding: w.activationRounding)
            return
        }
        let (outDim, inDim) = lin.shape(c)
        Self.linear(x, rows: rows, W: L[lin], inDim: inDim, outDim: outDim, into: y, accumulate: accumulate)
    }

    /// `project` for linears that read the same x, into their own outputs; stored ones as one group (StoredMatrix's
    /// group product).
    func project(_ L: LlamaWeights.Layer, _ lins: [LlamaLinear], _ x: UnsafePointer<Float>, rows: Int, into ys: [UnsafeMutablePointer<Float>]) {
        let stored = lins.compactMap { L.stored[$0.rawValue] }
        if stored.count == lins.count {
            StoredMatrix.multiply(stored, x, count: rows, into: ys, rounding: w.activationRounding)
            return
        }
        for (lin, y) in zip(lins, ys) { project(L, lin, x, rows: rows, into: y) }
    }

    /// y[r, :] += b for each of `rows` rows of y [rows, b.count] (nothing for an empty bias).
    static func addBias(_ y: UnsafeMutablePointer<Float>, rows: Int, _ b: [Float]) {
        guard !b.isEmpty else { return }
        let n = b.count
        b.withUnsafeBufferPointer { bp in
            for r in 0..<rows {
                let yr = y + r * n
                for i in 0..<n { yr[i] += bp[i] }
            }
        }
    }

    /// y [rows, outDim] (+)= x [rows, inDim] · Wᵀ, W [outDim, inDim].
    static func linear(_ x: UnsafePointer<Float>, rows: Int, W: [Float], inDim: Int, outDim: Int, into y: UnsafeMutablePointer<Float>,
                       accumulate: Bool = false) {
        W.withUnsafeBufferPointer {
            BLAS.gemmNTParallel(m: rows, n: outDim, k: inDim, a: x, lda: inDim, b: $0.baseAddress!, ldb: inDim, c: y, ldc: outDim, beta: accumulate ? 1 : 0)
        }
    }

    /// The self-attention block's output (after o_proj) for normed inputs h [T, hidden] of one sequence from
    /// position 0: [T, hidden]. For calibration (AWQ inspects this block).
    public func selfAttention(_ l: Int, _ L: LlamaWeights.Layer, normed h: [Float], T: Int) -> [Float] {
        let H = c.hiddenSize, qd = c.numHeads * c.headDim
        let cache = KVCache(config: c, capacity: T)
        let att = cache.scratch.get(.attention, count: T * qd)  // [T, nq·hd]
        var y = [Float].uninitialized(count: T * H)
        h.withUnsafeBufferPointer { hp in y.withUnsafeMutableBufferPointer { yp in
            guard let hs = hp.baseAddress, let ys = yp.baseAddress else { return }
            attentionCore(l, L, normed: hs, T: T, P: 0, cache: cache, into: att)
            project(L, .o, att, rows: T, into: ys)
        } }
        return y
    }

    /// The MLP block's output (after down_proj) for normed inputs h [T, hidden]: [T, hidden].
    public func mlp(_ L: LlamaWeights.Layer, normed h: [Float], T: Int) -> [Float] {
        let H = c.hiddenSize, F = c.intermediateSize
        let s = Scratch()
        let g = s.get(.gate, count: T * F)                 // [T, F]
        var y = [Float].uninitialized(count: T * H)
        h.withUnsafeBufferPointer { hp in y.withUnsafeMutableBufferPointer { yp in
            guard let hs = hp.baseAddress, let ys = yp.baseAddress else { return }
            mlpHidden(L, normed: hs, T: T, into: g, scratch: s)
            project(L, .down, g, rows: T, into: ys)
        } }
        return y
    }

    /// silu(h·Wgateᵀ) ⊙ (h·Wupᵀ) into g [T, intermediate], the input of down_proj. Each block of rows gets its gate
    /// and up products and their SwiGLU on one thread while the block is in cache (the blocks are gemmNTParallel's,
    /// so the bytes are the same as two separate GEMMs).
    func mlpHidden(_ L: LlamaWeights.Layer, normed h: UnsafePointer<Float>, T: Int, into g: UnsafeMutablePointer<Float>, scratch s: Scratch) {
        let H = c.hiddenSize, F = c.intermediateSize
        // few rows (decoding) or stored weights: one product after the other, each on all threads
        guard case .rows(let rows) = BLAS.split(m: T, n: F), L.stored[LlamaLinear.gate.rawValue] == nil else {
            let u = s.get(.up, count: T * F)               // [T, F]
            project(L, [.gate, .up], h, rows: T, into: [g, u])
            Self.swiGLU(g, u, count: T * F)
            return
        }
        let workers = min(Parallel.threads, (T + rows - 1) / rows)
        nonisolated(unsafe) let (hs, gs) = (h, g)
        nonisolated(unsafe) let us = s.get(.up, count: workers * rows * F)  // each worker's up product [rows, F]
        L[.gate].withUnsafeBufferPointer { wg in L[.up].withUnsafeBufferPointer { wu in
            nonisolated(unsafe) let (wgs, wus) = (wg.baseAddress!, wu.baseAddress!)
            Parallel.forBlocksWithWorker(T, block: rows) { worker, r in
                let gb = gs + r.lowerBound * F, ub = us + worker * rows * F
                BLAS.gemmNT(m: r.count, n: F, k: H, a: hs + r.lowerBound * H, lda: H, b: wgs, ldb: H, c: gb, ldc: F)
                BLAS.gemmNT(m: r.count, n: F, k: H, a: hs + r.lowerBound * H, lda: H, b: wus, ldb: H, c: ub, ldc: F)
                Self.swiGLU(gb, ub, count: r.count * F)
            }
        } }
    }

    /// g[i] = silu(g[i]) · u[i] = g[i] / (1 + e^−g[i]) · u[i].
    @inline(__always) static func swiGLU(_ g: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { let a = g[i]; g[i] = a / (1 + FastExp.exp(-a)) * u[i] }
    }

    /// q/k/v projections, RoPE, causal softmax attention with GQA into att [T, nq·hd], the input of o_proj. Writes
    /// this layer's keys and values for positions P ..< P + T into `cache`.
    func attentionCore(_ l: Int, _ L: LlamaWeights.Layer, normed h: UnsafePointer<Float>, T: Int, P: Int, cache: KVCache,
                       into att: UnsafeMutablePointer<Float>) {
        let hd = c.headDim, nq = c.numHeads, nkv = c.numKVHeads
        let qd = nq * hd, kvd = nkv * hd, group = nq / nkv
        let S = P + T                                      // keys visible to the last new token
        let scale = 1 / Float(hd).squareRoot()
        let table = ropeTable(pos0: P, rows: T)
        let plan = Self.attentionPlan(heads: nq, rows: T, past: P, threads: Parallel.threads)
        let rowBlock = Self.attentionRowBlock
        let s = cache.scratch
        nonisolated(unsafe) let q = s.get(.query, count: T * qd)                               // [T, nq·hd]
        nonisolated(unsafe) let scores = s.get(.scores, count: plan.count * min(T, rowBlock) * S)  // [rowBlock, S] per thread
        nonisolated(unsafe) let invSums = s.get(.invSums, count: plan.count * rowBlock)          // [rowBlock] per thread
        nonisolated(unsafe) let aps = att
        // the new keys and values go straight into rows P ..< P + T of the cache ([capacity, nkv·hd] each)
        cache.allocate(layer: l)
        cache.k[l].withUnsafeMutableBufferPointer { kc in cache.v[l].withUnsafeMutableBufferPointer { vc in
            let kNew = kc.baseAddress! + P * kvd, vNew = vc.baseAddress! + P * kvd
            project(L, [.q, .k, .v], h, rows: T, into: [q, kNew, vNew])
            Self.addBias(q, rows: T, L.bias(.q))
            rope(q, heads: nq, stride: qd, table: table)
            Self.addBias(kNew, rows: T, L.bias(.k))
            Self.addBias(vNew, rows: T, L.bias(.v))
            rope(kNew, heads: nkv, stride: kvd, table: table)
        } }
        if T == 1 {   // decoding: one query row per head, heads split over the threads (no GEMM call per head)
            cache.k[l].withUnsafeBufferPointer { kp in cache.v[l].withUnsafeBufferPointer { vp in
                nonisolated(unsafe) let (ks, vs) = (kp.baseAddress!, vp.baseAddress!)
                // each worker's scores [S] in its own row of the scratch; a head's result does not depend on the split
                let perWorker = S * nq * hd >= 1 << 15 ? (nq + plan.count - 1) / plan.count : nq
                Parallel.forBlocksWithWorker(nq, block: perWorker) { worker, heads in
                    Self.singleQueryAttention(q: q, keys: ks, values: vs, count: S, heads: heads, group: group,
                                              headDim: hd, rowLength: kvd, scale: scale, scores: scores + worker * S,
                                              into: aps)
                }
            } }
            return
        }
        cache.k[l].withUnsafeBufferPointer { kp in cache.v[l].withUnsafeBufferPointer { vp in
            nonisolated(unsafe) let (ks, vs) = (kp.baseAddress!, vp.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: plan.count) { th in
                let sb = scores + th * min(T, rowBlock) * S    // this thread's scores [rowBlock, S]
                let ib = invSums + th * rowBlock               // and 1 / Σ of each row [rowBlock]
                for task in plan[th] {
                    let hh = task.head, kvh = hh / group
                    // causal blocks of query rows: rows t0 ..< t1 see keys 0 ..< P + t1 only, so the masked upper
                    // triangle is neither multiplied nor exponentiated
                    let t0 = task.firstRow, t1 = min(T, t0 + rowBlock), Sb = P + t1
                    // scores [t1 − t0, Sb] (ld S) = Q_h · K_hᵀ · scale; new token t sees keys 0 ... P + t
                    BLAS.gemmNT(m: t1 - t0, n: Sb, k: hd, a: q + t0 * qd + hh * hd, lda: qd,
                                b: ks + kvh * hd, ldb: kvd, c: sb, ldc: S, alpha: scale)
                    // unnormalized softmax: e^(score − max) and 1 / Σ per row; the division is applied to the
                    // output rows (hd values) instead of the scores (up to Sb values)
                    for t in t0..<t1 {
                        let row = sb + (t - t0) * S
                        let visible = P + t + 1             // keys 0 ..< visible (half-open loops vectorize)
                        let m = Reductions.max(row, visible)
                        for j in 0..<visible { row[j] = FastExp.exp(row[j] - m) }
                        ib[t - t0] = 1 / Reductions.sum(row, visible)
                        for j in visible..<Sb { row[j] = 0 }
                    }
                    // O_h = softmax · V_h  [t1 − t0, hd]
                    let o = aps + t0 * qd + hh * hd
                    BLAS.gemmNN(m: t1 - t0, n: hd, k: Sb, a: sb, lda: S, b: vs + kvh * hd, ldb: kvd, c: o, ldc: qd)
                    for t in 0..<(t1 - t0) {
                        let inv = ib[t], ot = o + t * qd
                        for d in 0..<hd { ot[d] *= inv }
                    }
                }
            }
        } }
    }

    /// Attention of one query row q [heads·hd] over `count` cached keys and values ([count, rowLength] each, head h
    /// reading KV head h / group) into att [heads·hd]: per head, scores = q·kⱼ·scale, e^(score − max), the weighted
    /// sum of the values divided by Σ e. `scores`: at least `count` floats.
    static func singleQueryAttention(q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, count S: Int,
                                     heads: Range<Int>, group: Int, headDim hd: Int, rowLength kvd: Int, scale: Float,
                                     scores: UnsafeMutablePointer<Float>, into att: UnsafeMutablePointer<Float>) {
        for h in heads {
            let qh = q + h * hd, kh = keys + (h / group) * hd, vh = values + (h / group) * hd
            for j in 0..<S {
                let k = kh + j * kvd
                var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
                var d = 0
                while d + 4 <= hd {
                    s0 += qh[d] * k[d]; s1 += qh[d + 1] * k[d + 1]; s2 += qh[d + 2] * k[d + 2]; s3 += qh[d + 3] * k[d + 3]
                    d += 4
                }
                while d < hd { s0 += qh[d] * k[d]; d += 1 }
                scores[j] = ((s0 + s1) + (s2 + s3)) * scale
            }
            let m = Reductions.max(scores, S)
            for j in 0..<S { scores[j] = FastExp.exp(scores[j] - m) }
            let inv = 1 / Reductions.sum(scores, S)
            let o = att + h * hd
            for d in 0..<hd { o[d] = 0 }
            for j in 0..<S {
                let p = scores[j], v = vh + j * kvd
                for d in 0..<hd { o[d] += p * v[d] }
            }
            for d in 0..<hd { o[d] *= inv }
        }
    }

    /// One unit of attention work: a head and a block of query rows starting at `firstRow`.
    struct AttentionTask: Equatable { let head: Int, firstRow: Int }

    /// The (head, row block) tasks dealt to `threads` lists of about equal cost (a block's cost is its rows times the
    /// keys it sees), largest first, each to the least loaded list. Which thread runs a task does not change its
    /// result.
    static func attentionPlan(heads: Int, rows T: Int, past P: Int, threads: Int) -> [[AttentionTask]] {
        var tasks: [(task: AttentionTask, cost: Int)] = []
        for h in 0..<heads {
            for t0 in stride(from: 0, to: T, by: attentionRowBlock) {
                let t1 = min(T, t0 + attentionRowBlock)
                tasks.append((AttentionTask(head: h, firstRow: t0), (t1 - t0) * (P + t1)))
            }
        }
        tasks.sort { $0.cost != $1.cost ? $0.cost > $1.cost : ($0.task.head, $0.task.firstRow) < ($1.task.head, $1.task.firstRow) }
        let n = max(1, min(threads, tasks.count))
        var plan = [[AttentionTask]](repeating: [], count: n), load = [Int](repeating: 0, count: n)
        for (task, cost) in tasks {
            let i = load.indices.min { load[$0] != load[$1] ? load[$0] < load[$1] : $0 < $1 } ?? 0
            plan[i].append(task)
            load[i] += cost
        }
        return plan
    }

    /// Query rows per causal block in attention.
    static let attentionRowBlock = 128

    /// Final norm and LM head for `logitRows` of x [T, hidden]: [rows × vocab].
    public func head(_ x: [Float], T: Int, logitRows: Range<Int>?) -> [Float] {
        var out: [Float] = []
        head(x, T: T, logitRows: logitRows, into: &out)
        return out
    }

    /// `head` into `out`, reusing its storage when it already has rows × vocab values (evaluation reuses one buffer
    /// per model: a fresh 50 MB buffer per chunk costs its page faults every time).
    public func head(_ x: [Float], T: Int, logitRows: Range<Int>?, into out: inout [Float]) {
        let H = c.hiddenSize, V = c.vocabSize
        let eps = Float(c.rmsNormEps)
        let rows = logitRows ?? 0..<T
        var h = [Float].uninitialized(count: rows.count * H)  // normed rows [rows, H]
        x.withUnsafeBufferPointer { xp in h.withUnsafeMutableBufferPointer { hp in w.norm.withUnsafeBufferPointer { gp in
            for (r, t) in rows.enumerated() { Self.rmsNorm(xp.baseAddress! + t * H, gp.baseAddress!, hp.baseAddress! + r * H, n: H, eps: eps) }
        } } }
        if let cap = captureLinearInput { h.withUnsafeBufferPointer { cap(-1, .output, $0, H) } }
        if out.count != rows.count * V { out = .uninitialized(count: rows.count * V) }
        if let m = w.storedHead {
            h.withUnsafeBufferPointer { hp in out.withUnsafeMutableBufferPointer {
                m.multiply(hp.baseAddress!, count: rows.count, into: $0.baseAddress!, accumulate: false,
                           rounding: w.activationRounding)
            } }
            return
        }
        let head = w.headWeights
        h.withUnsafeBufferPointer { hp in head.withUnsafeBufferPointer { wp in out.withUnsafeMutableBufferPointer {
            BLAS.gemmNTParallel(m: rows.count, n: V, k: H, a: hp.baseAddress!, lda: H, b: wp.baseAddress!, ldb: H, c: $0.baseAddress!, ldc: V)
        } } }
    }
}
