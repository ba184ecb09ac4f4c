import Foundation
import ModelFormats
import TensorCore

/// The grid each column is rounded to: an integer grid with per-row, per-group scale/zero (GPTQ's min-max
/// quantizer), or the block grid of a ggml type so the result packs exactly into that type: `.ggml` for Q4_0 / Q4_1 /
/// Q8_0 (32-column blocks, their scale rules written out here), `.block` for any type `BlockCodes` can write (the
/// K-quants, IQ4_NL / IQ4_XS, Q5_0 / Q5_1): each block's scales come from the type's own search (`BlockGrid`).
public enum GPTQGrid: Equatable, Sendable {
    case minmax(bits: Int, sym: Bool)
    case ggml(GGMLType)  // .q4_0, .q4_1, .q8_0
    case block(GGMLType)

    /// The grid GPTQ uses for ggml type `t`, or nil when it cannot write `t`.
    public static func forType(_ t: GGMLType) -> GPTQGrid? {
        if [.q4_0, .q4_1, .q8_0].contains(t) { return .ggml(t) }
        return BlockCodes.writable.contains(t) ? .block(t) : nil
    }
}

public struct GPTQOptions: Sendable {
    public var grid: GPTQGrid = .minmax(bits: 4, sym: true)
    /// Columns per group (−1: one group per row). ggml grids use their block size.
    public var groupSize = 128
    public var actOrder = false
    public var staticGroups = false
    public var damp: Float = 0.01
    /// ggml grids: choose each block's scale (and Q4_1 min) by llama.cpp's importance-weighted search, with the
    /// importance of column j taken from `importance` (e.g. an imatrix) or, when nil, from diag(H) (the same Σx²
    /// statistic as llama-imatrix), instead of the block's max; and from the block's values as updated by GPTQ so far.
    public var weightedBlockScales = true
    /// Per input column (original order), for `weightedBlockScales`.
    public var importance: [Float]? = nil
    public var blockSize = 128
    /// Min-max grids: the smallest zero point (1 for GPTQ v1 checkpoints, see `IntegerScheme.zeroFloor`).
    public var zeroFloor: Int32 = 0
    /// Min-max grids with groups smaller than the lazy batch: each group's scale and zero from the weights as GPTQ has
    /// updated them so far, instead of the reference's (GPTQModel's) stale copy of the batch. Measured on SmolLM2 w4
    /// g64 (32 × 512): KLD 0.362 → 0.341 symmetric, but 0.232 → 0.263 asymmetric, so it is not the default. ggml block
    /// grids always take their scales from the updated weights.
    public var updatedGroupParams = false
    /// GPTAQ (GPTQModel's `gptaq_alpha`): how much of the asymmetry correction (`GPTQ.run`'s `cross`) the pass applies.
    public var gptaqAlpha: Float = 0.25
    public init() {}
}

/// Per-row, per-group quantization parameters.
public struct GroupParams {
    public var scale: [Float]  // [rows]
    public var zero: [Float]   // [rows] (integer zero point, or the ggml min for Q4_1)
    public init(scale: [Float], zero: [Float]) { self.scale = scale; self.zero = zero }
}

/// GPTQ (Frantar et al.): quantize W column by column, each rounding error spread over the columns not yet
/// quantized through the inverse Hessian of the layer's inputs, H = 2XᵀX/n. Ported from the reference
/// `fasterquant` (lazy 128-column blocks, damping, dead columns, act-order, static groups); Cholesky in f64.
public enum GPTQ {
    public struct Result {
        /// Quantized weights, dequantized: [rows × cols], original column order.
        public var Q: [Float]
        /// Integer codes [rows × cols] and per-group params (group g covers columns of group index g, in the
        /// order `groupIndex` gives).
        public var codes: [Int32]
        public var params: [GroupParams]
        /// Group of each (original) column.
        public var groupIndex: [Int]
        public var perm: [Int]?
        /// `.block` grids: the packed blocks, [rows × cols / blockSize] row-major (codes and params stay empty).
        public var blocks: [UInt8]? = nil
        /// Σ (w − q)² / Hinv[i,i]² / 2 over all columns (the GPTQ loss).
        public var loss: Double
        public var dampUsed: Float
        public init(Q: [Float], codes: [Int32], params: [GroupParams], groupIndex: [Int], perm: [Int]?, loss: Double, dampUsed: Float) {
            self.Q = Q; self.codes = codes; self.params = params; self.groupIndex = groupIndex; self.perm = perm; self.loss = loss; self.dampUsed = dampUsed
        }
    }

    static func maxq(_ g: GPTQGrid) -> Int {
        switch g {
        case let .minmax(bits, _): return (1 << bits) - 1
        case .ggml(.q8_0): return 255
        default: return 15
        }
    }

    /// Parameters for one group of columns (values x[r*stride + c] for c in cols) per row.
    static func findParams(_ grid: GPTQGrid, _ w: UnsafePointer<Float>, rows: Int, stride: Int, cols: [Int], importance: [Float]? = nil,
                           zeroFloor: Int32 = 0) -> GroupParams {
        var p = GroupParams(scale: [Float](repeating: 0, count: rows), zero: [Float](repeating: 0, count: rows))
        if let imp = importance, case let .ggml(t) = grid, t == .q4_0 || t == .q4_1, cols.count == 32 {
            // llama.cpp's weighted block search (quantize_row_q4_0_impl / q4_1_impl): w_j = imp_j·sqrt(σ² + x_j²)
            var x = [Float](repeating: 0, count: 32), wt = [Float](repeating: 0, count: 32)
            var L = [UInt8](repeating: 0, count: 64)
            for r in 0..<rows {
                for (j, c) in cols.enumerated() { x[j] = w[r * stride + c] }
                var sigma2: Float = 0
                for v in x { sigma2 += v * v }
                sigma2 /= 32
                for j in 0..<32 { wt[j] = imp[j] * (sigma2 + x[j] * x[j]).squareRoot() }
                x.withUnsafeBufferPointer { xp in wt.withUnsafeBufferPointer { wp in L.withUnsafeMutableBufferPointer { lp in
                    if t == .q4_0 {
                        let d = lp.baseAddress!.withMemoryRebound(to: Int8.self, capacity: 32) {
                            KQuantSearch.makeQxQuants(32, 8, xp.baseAddress!, $0, rmseType: 1, qw: wp.baseAddress!)
                        }
                        p.scale[r] = HalfFloat.roundF16(d)
                    } else {
                        var vmin: Float = 0
                        let d = KQuantSearch.makeQkxQuants(32, 15, xp.baseAddress!, wp.baseAddress!, lp.baseAddress!, &vmin, lp.baseAddress! + 32,
                                                           rmin: -0.9, rdelta: 0.05, nstep: 36, useMad: false, qkx3: true)
                        p.scale[r] = HalfFloat.roundF16(d)
                        p.zero[r] = HalfFloat.roundF16(-vmin)
                    }
                } } }
            }
            return p
        }
        for r in 0..<rows {
            var lo = Float.infinity, hi = -Float.infinity, amax: Float = 0, vmax: Float = 0
            for c in cols {
                let v = w[r * stride + c]
                lo = min(lo, v); hi = max(hi, v)
                if abs(v) > amax { amax = abs(v); vmax = v }
            }
            switch grid {
            case let .minmax(bits, sym):
                // the integer schemes' min-max quantizer (f16 scale, as packed checkpoints store it)
                let x = cols.map { w[r * stride + $0] }
                let (s, z) = x.withUnsafeBufferPointer { IntegerQuant.params($0, scheme: IntegerScheme(bits: bits, groupSize: -1, sym: sym, zeroFloor: zeroFloor),
                                                                            quantizer: .gptq) }
                p.scale[r] = s
                p.zero[r] = Float(z)
            case .ggml(.q4_0):
                p.scale[r] = HalfFloat.roundF16(vmax / -8)
            case .ggml(.q8_0):
                p.scale[r] = HalfFloat.roundF16(amax / 127)
            case .ggml(.q4_1):
                p.scale[r] = HalfFloat.roundF16((hi - lo) / 15)
                p.zero[r] = HalfFloat.roundF16(lo)
            default: break
            }
        }
        return p
    }

    /// A ggml block grid's f16 scale overflows when the block's values exceed its range: llama-quantize's validation
    /// error, raised before any code is chosen (integer grids saturate instead, see `IntegerQuant.storedScale`).
    static func checkFinite(_ p: GroupParams, _ grid: GPTQGrid, column: Int) throws {
        guard case let .ggml(t) = grid, let r = p.scale.firstIndex(where: { !$0.isFinite }) else { return }
        throw QKError("GPTQ: \(t.name) block at row \(r), column \(column) has a non-finite scale (values exceed the f16 range)")
    }

    /// The code and the dequantized value of x under one row's params.
    @inline(__always) static func quantize(_ grid: GPTQGrid, _ x: Float, _ s: Float, _ z: Float) -> (Int32, Float) {
        switch grid {
        case let .minmax(bits, _):
            let mq = Float((1 << bits) - 1)
            let q = IntegerQuant.clampCode((x / s).rounded(.toNearestOrEven) + z, 0, mq)
            return (Int32(q), s * (q - z))
        case .ggml(.q4_0):
            guard s != 0 else { return (8, 0) }
            let q = IntegerQuant.clampCode((x / s).rounded(.toNearestOrEven) + 8, 0, 15)
            return (Int32(q), s * (q - 8))
        case .ggml(.q8_0):
            guard s != 0 else { return (0, 0) }
            let q = IntegerQuant.clampCode((x / s).rounded(.toNearestOrEven), -127, 127)
            return (Int32(q), s * q)
        case .ggml(.q4_1):
            guard s != 0 else { return (0, z) }
            let q = IntegerQuant.clampCode(((x - z) / s).rounded(.toNearestOrEven), 0, 15)
            return (Int32(q), s * q + z)
        default:
            return (0, x)
        }
    }

    /// Quantizes W [rows × cols] (HF [out, in]) given H [cols × cols]. With `cross` (GPTAQ, Li et al. 2025: asymmetric
    /// calibration), the target is the layer's output on the full-precision model's inputs X̃ rather than on the inputs X
    /// it gets from the layers quantized before it: `cross` = 2(X̃ − X)ᵀX/n [cols × cols], scaled as H, and each
    /// column's value also moves the columns after it by P = α·triu(cross·Uᵀ, 1)·U (U: the upper factor of H⁻¹),
    /// as GPTQModel's `gptaq` does.
    public static func run(W w0: [Float], rows: Int, cols: Int, H h0: [Float], cross c0: [Float]? = nil,
                           options o: GPTQOptions) throws -> Result {
        guard w0.count == rows * cols, h0.count == cols * cols else { throw QKError("GPTQ: W is \(w0.count) values, H \(h0.count); expected \(rows)×\(cols) and \(cols)²") }
        if let c0, c0.count != cols * cols { throw QKError("GPTQ: the asymmetry term has \(c0.count) values; expected \(cols)²") }
        var cross = c0
        var groupSize = o.groupSize
        var blockType: GGMLType? = nil
        if case let .block(t) = o.grid {
            guard BlockCodes.writable.contains(t) else { throw QKError("GPTQ cannot write \(t.name) blocks") }
            blockType = t
        }
        if case let .ggml(t) = o.grid { blockType = t }
        if let t = blockType {
            groupSize = t.blockSize
            guard cols % groupSize == 0 else { throw QKError("GPTQ into \(t.name): \(cols) columns are not whole blocks of \(groupSize)") }
            if o.actOrder && !o.staticGroups { throw QKError("GPTQ into ggml blocks with --act-order needs --static-groups (blocks are fixed in column order)") }
        }
        if groupSize <= 0 || groupSize > cols { groupSize = cols }
        var W = w0
        var H = h0.map(Double.init)
        // dead columns: no signal, weight zeroed
        for i in 0..<cols where H[i * cols + i] == 0 {
            H[i * cols + i] = 1
            for r in 0..<rows { W[r * cols + i] = 0 }
            if cross != nil { for r in 0..<cols { cross![r * cols + i] = 0 } }
        }
        let groupOf = (0..<cols).map { $0 / groupSize }
        // block importance for the weighted ggml block search (original column order)
        var isGGML = false
        if case .ggml = o.grid { isGGML = true }
        var isBlock = false
        if case .block = o.grid { isBlock = true }
        var imp0: [Float]? = nil
        if (isGGML && o.weightedBlockScales) || isBlock {
            if let given = o.importance {
                guard given.count == cols else { throw QKError("GPTQ: importance has \(given.count) entries for \(cols) columns") }
                imp0 = given
            } else {
                imp0 = (0..<cols).map { Float(H[$0 * cols + $0]) }
            }
        }
        func slice(_ v: [Float]?, _ r: Range<Int>) -> [Float]? { v.map { Array($0[r]) } }
        // static groups: params from the unmodified weights, in original column order
        var staticParams: [GroupParams] = []
        var grids: [BlockGrid?] = Array(repeating: nil, count: isBlock ? cols / groupSize : 0)
        if o.staticGroups && isBlock, let t = blockType {
            try W.withUnsafeBufferPointer { wp in
                for g in 0..<grids.count {
                    grids[g] = try BlockGrid(t, wp.baseAddress! + g * groupSize, rows: rows, stride: cols,
                                             importance: slice(imp0, (g * groupSize)..<((g + 1) * groupSize)))
                }
            }
        } else if o.staticGroups {
            W.withUnsafeBufferPointer { wp in
                for g in 0..<((cols + groupSize - 1) / groupSize) {
                    let r = (g * groupSize)..<min(cols, (g + 1) * groupSize)
                    staticParams.append(findParams(o.grid, wp.baseAddress!, rows: rows, stride: cols, cols: Array(r), importance: slice(imp0, r),
                                                   zeroFloor: o.zeroFloor))
                }
            }
            for (g, p) in staticParams.enumerated() { try checkFinite(p, o.grid, column: g * groupSize) }
        }
        var perm: [Int]? = nil
        if o.actOrder {
            let p = (0..<cols).sorted { H[$0 * cols + $0] > H[$1 * cols + $1] || (H[$0 * cols + $0] == H[$1 * cols + $1] && $0 < $1) }
            perm = p
            var W2 = W, H2 = H
            for r in 0..<rows { for c in 0..<cols { W2[r * cols + c] = W[r * cols + p[c]] } }
            for i in 0..<cols { for j in 0..<cols { H2[i * cols + j] = H[p[i] * cols + p[j]] } }
            W = W2; H = H2
            if let c = cross {
                var c2 = c
                for i in 0..<cols { for j in 0..<cols { c2[i * cols + j] = c[p[i] * cols + p[j]] } }
                cross = c2
            }
        }
        // damping, with automatic increase when Cholesky fails
        var meanDiag = 0.0
        for i in 0..<cols { meanDiag += H[i * cols + i] }
        meanDiag /= Double(cols)
        var damp = o.damp
        var Hinv: [Double] = []
        while true {
            var A = H
            for i in 0..<cols { A[i * cols + i] += Double(damp) * meanDiag }
            if BLAS.inverseCholeskyUpper(&A, n: cols) == 0 {
                Hinv = A  // the upper factor U of H⁻¹ = UᵀU
                break
            }
            damp += 0.01
            if damp > 1 { throw QKError("GPTQ: the Hessian is not positive definite even with damp \(damp)") }
        }
        let HinvF = Hinv.map(Float.init)
        // GPTAQ's update matrix, held through a pointer the column loop reads
        let P: UnsafeMutableBufferPointer<Float>? = cross.map {
            let m = asymmetryUpdate($0, U: HinvF, n: cols, alpha: o.gptaqAlpha)
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: m.count)
            _ = b.initialize(from: m)
            return b
        }
        defer { P?.deallocate() }
        var Q = [Float](repeating: 0, count: rows * cols)
        var codes = [Int32](repeating: 0, count: rows * cols)
        var params: [GroupParams?] = staticParams.isEmpty ? Array(repeating: nil, count: (cols + groupSize - 1) / groupSize) : staticParams
        var cur = GroupParams(scale: [], zero: [])
        var grid: BlockGrid? = nil
        var blockCodes = [UInt8](repeating: 0, count: isBlock ? rows * cols : 0)  // original column order
        var loss = 0.0
        // a block grid's blocks lie inside one lazy batch, so their scales come from the values GPTQ has updated so far
        let B = isBlock ? (max(1, o.blockSize) + groupSize - 1) / groupSize * groupSize : max(1, o.blockSize)
        var W1 = [Float](repeating: 0, count: rows * B), Err1 = [Float](repeating: 0, count: rows * B)
        var Q1 = [Float](repeating: 0, count: P == nil ? 0 : rows * B)  // GPTAQ: the batch's quantized values
        for i1 in stride(from: 0, to: cols, by: B) {
            let i2 = min(i1 + B, cols), count = i2 - i1
            for r in 0..<rows { for i in 0..<count { W1[r * B + i] = W[r * cols + i1 + i] } }
            for i in 0..<count {
                let col = i1 + i
                let orig = perm?[col] ?? col
                if isBlock, let t = blockType {
                    if o.staticGroups {
                        grid = grids[orig / groupSize]
                    } else if col % groupSize == 0 {
                        grid = try W1.withUnsafeBufferPointer {
                            try BlockGrid(t, $0.baseAddress! + i, rows: rows, stride: B, importance: slice(imp0, col..<(col + groupSize)))
                        }
                        grids[col / groupSize] = grid
                    }
                } else if !staticParams.isEmpty {
                    cur = staticParams[groupOf[orig]]
                } else if col % groupSize == 0 {
                    if B % groupSize == 0 && (isGGML || o.updatedGroupParams) {
                        // the group lies inside the lazy batch: its params from the values GPTQ has updated so far (the
                        // reference reads W there, stale for every group but a batch's first when groups are smaller)
                        cur = W1.withUnsafeBufferPointer { findParams(o.grid, $0.baseAddress!, rows: rows, stride: B, cols: Array(i..<(i + groupSize)),
                                                                      importance: slice(imp0, col..<(col + groupSize)), zeroFloor: o.zeroFloor) }
                    } else {
                        // from W, as the reference does: up to date at a batch boundary (a group as wide as the batch or
                        // wider), stale inside it
                        cur = W.withUnsafeBufferPointer { findParams(o.grid, $0.baseAddress!, rows: rows, stride: cols, cols: Array(col..<min(cols, col + groupSize)),
                                                                     zeroFloor: o.zeroFloor) }
                    }
                    try checkFinite(cur, o.grid, column: col)
                    params[col / groupSize] = cur
                }
                let d = HinvF[col * cols + col]
                let j = orig % groupSize
                // W1[r, i+1 ..< count] -= err_r · Hinv[col, i1+i+1 ..< i2], row by row through pointers (the loop vectorizes)
                // GPTAQ: and += w_r · P[col, i1+i+1 ..< i2]
                W1.withUnsafeMutableBufferPointer { w1 in
                    HinvF.withUnsafeBufferPointer { hp in
                        let h = hp.baseAddress! + col * cols + i1
                        let p = P.map { $0.baseAddress! + col * cols + i1 }
                        for r in 0..<rows {
                            let w = w1.baseAddress! + r * B
                            let wv = w[i]
                            let qv: Float
                            if let grid {
                                let (code, v) = grid.nearest(r, j, wv)
                                blockCodes[r * cols + orig] = code
                                qv = v
                            } else {
                                let (code, v) = quantize(o.grid, wv, cur.scale[r], cur.zero[r])
                                codes[r * cols + orig] = code
                                qv = v
                            }
                            Q[r * cols + orig] = qv
                            let err = (wv - qv) / d
                            loss += Double((wv - qv) * (wv - qv) / (d * d) / 2)
                            Err1[r * B + i] = err
                            if let p {
                                Q1[r * B + i] = qv
                                for c in (i + 1)..<count { w[c] -= err * h[c] - wv * p[c] }
                            } else {
                                for c in (i + 1)..<count { w[c] -= err * h[c] }
                            }
                        }
                    }
                }
            }
            // W[:, i2:] -= Err1 · Hinv[i1:i2, i2:]
            if i2 < cols {
                Err1.withUnsafeBufferPointer { ep in HinvF.withUnsafeBufferPointer { hp in W.withUnsafeMutableBufferPointer { wp in
                    BLAS.gemmNN(m: rows, n: cols - i2, k: count, a: ep.baseAddress!, lda: B, b: hp.baseAddress! + i1 * cols + i2, ldb: cols,
                                c: wp.baseAddress! + i2, ldc: cols, alpha: -1, beta: 1)
                } } }
                // GPTAQ: W[:, i2:] += Q1 · P[i1:i2, i2:] (the batch as quantized, as GPTQModel's lazy update has it)
                if let P {
                    Q1.withUnsafeBufferPointer { qp in W.withUnsafeMutableBufferPointer { wp in
                        BLAS.gemmNN(m: rows, n: cols - i2, k: count, a: qp.baseAddress!, lda: B, b: P.baseAddress! + i1 * cols + i2, ldb: cols,
                                    c: wp.baseAddress! + i2, ldc: cols, alpha: 1, beta: 1)
                    } }
                }
            }
        }
        let gIdx = (0..<cols).map { orig -> Int in
            if !staticParams.isEmpty { return groupOf[orig] }
            let pos = perm.map { p in p.firstIndex(of: orig)! } ?? orig
            return pos / groupSize
        }
        if let t = blockType, isBlock {
            // the blocks with GPTQ's codes; Q read back from them, so it is exactly what the file holds
            let nb = cols / groupSize
            var out = [UInt8](repeating: 0, count: rows * nb * t.typeSize)
            out.withUnsafeMutableBytes { op in
                blockCodes.withUnsafeBufferPointer { cp in
                    for g in 0..<nb {
                        guard let gr = grids[g] else { continue }
                        for r in 0..<rows { gr.pack(r, codes: cp.baseAddress! + r * cols + g * groupSize, into: op.baseAddress! + (r * nb + g) * t.typeSize) }
                    }
                }
            }
            Q = try out.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: rows * cols) }
            var r = Result(Q: Q, codes: [], params: [], groupIndex: gIdx, perm: perm, loss: loss, dampUsed: damp)
            r.blocks = out
            return r
        }
        return Result(Q: Q, codes: codes, params: params.map { $0 ?? GroupParams(scale: [Float](repeating: 0, count: rows), zero: [Float](repeating: 0, count: rows)) },
                      groupIndex: gIdx, perm: perm, loss: loss, dampUsed: damp)
    }

    /// GPTAQ's update matrix P = α·triu(C·Uᵀ, 1)·U [n × n] (strictly upper triangular), C the asymmetry term and U the
    /// upper factor of H⁻¹, both in the pass's column order.
    static func asymmetryUpdate(_ C: [Float], U: [Float], n: Int, alpha: Float) -> [Float] {
        var M = [Float](repeating: 0, count: n * n)
        C.withUnsafeBufferPointer { cp in U.withUnsafeBufferPointer { up in M.withUnsafeMutableBufferPointer { mp in
            BLAS.gemmNTParallel(m: n, n: n, k: n, a: cp.baseAddress!, lda: n, b: up.baseAddress!, ldb: n, c: mp.baseAddress!, ldc: n)
        } } }
        for i in 0..<n { for j in 0...i { M[i * n + j] = 0 } }
        var P = [Float](repeating: 0, count: n * n)
        M.withUnsafeBufferPointer { mp in U.withUnsafeBufferPointer { up in P.withUnsafeMutableBufferPointer { pp in
            BLAS.gemmNNParallel(m: n, n: n, k: n, a: mp.baseAddress!, lda: n, b: up.baseAddress!, ldb: n, c: pp.baseAddress!, ldc: n,
                                alpha: alpha)
        } } }
        return P
    }

    /// A result on a min-max grid as an integer-coded linear (codes, f16 scales, integer zeros, g_idx).
    public static func integerLinear(_ r: Result, rows: Int, cols: Int, scheme: IntegerScheme) -> QuantizedLinear {
        let G = r.params.count
        var scales = [Float](repeating: 0, count: rows * G), zeros = [Int32](repeating: 0, count: rows * G)
        for g in 0..<G { for row in 0..<rows { scales[row * G + g] = r.params[g].scale[row]; zeros[row * G + g] = Int32(r.params[g].zero[row]) } }
        return QuantizedLinear(rows: rows, cols: cols, scheme: scheme, codes: r.codes.map { UInt8(truncatingIfNeeded: $0) },
                               scales: scales, zeros: zeros, gIdx: r.groupIndex.map { Int32($0) })
    }

    /// Packs a GPTQ result on a ggml grid into that type's blocks ([rows × cols/32] blocks, row-major).
    public static func packGGML(_ r: Result, type: GGMLType, rows: Int, cols: Int) throws -> [UInt8] {
        let nb = cols / 32
        var out = [UInt8](repeating: 0, count: rows * nb * type.typeSize)
        for row in 0..<rows {
            for b in 0..<nb {
                let p = r.params[r.groupIndex[b * 32]]
                let o = (row * nb + b) * type.typeSize
                let c = { (j: Int) in r.codes[row * cols + b * 32 + j] }
                let d16 = HalfFloat.f32ToF16(p.scale[row])
                out[o] = UInt8(d16 & 0xff); out[o + 1] = UInt8(d16 >> 8)
                switch type {
                case .q4_0:
                    for j in 0..<16 { out[o + 2 + j] = UInt8(c(j)) | UInt8(c(j + 16)) << 4 }
                case .q4_1:
                    let m16 = HalfFloat.f32ToF16(p.zero[row])
                    out[o + 2] = UInt8(m16 & 0xff); out[o + 3] = UInt8(m16 >> 8)
                    for j in 0..<16 { out[o + 4 + j] = UInt8(c(j)) | UInt8(c(j + 16)) << 4 }
                case .q8_0:
                    for j in 0..<32 { out[o + 2 + j] = UInt8(bitPattern: Int8(c(j))) }
                default:
                    throw QKError("GPTQ cannot pack into \(type.name)")
                }
            }
        }
        return out
    }
}
