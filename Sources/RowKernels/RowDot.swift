import TensorCore

/// Dot products of stored weight rows (read in place) with an f32 vector: the matrix-vector products of decoding,
/// which reads every weight once per token. F32, BF16 and Q8_0 widen eight weights at a time into a SIMD8<Float> and
/// multiply them with x in registers; the nibble types (Q4_0, Q5_0, Q4_K, Q6_K) decode one block or super-block into
/// a 256-value buffer that stays in L1 — with plain loops LLVM vectorizes, where SIMD8 code on nibbles came out
/// shuffled lane by lane — and take its dot product with x. The decoded values are the reference dequantizers' own
/// (the same float operations), so a row's products are those of the dequantized row.
///
/// These are the baseline x86-64 (SSE2) kernels and the reference for the C ones with AVX2/FMA/F16C
/// (Sources/CRowKernels), which `RowKernelSet` picks from /proc/cpuinfo; tests hold both to the dequantized rows.
public enum RowKind: Int, CaseIterable, Sendable {
    case f32, bf16, q8_0, q4_0, q5_0, q4_K, q6_K, f16
}

public enum RowDot {
    /// y[r] (+)= row r · x for r in `rows`, row r at w + r·rowBytes, n values per row (a multiple of the kind's
    /// block, and of 8).
    public static func matvec(_ kind: RowKind, _ w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>,
                              x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        switch kind {
        case .f32: each(rows, w, rowBytes, y, accumulate) { f32($0, x, n) }
        case .bf16: each(rows, w, rowBytes, y, accumulate) { bf16($0, x, n) }
        case .f16: each(rows, w, rowBytes, y, accumulate) { f16($0, x, n) }
        case .q8_0: each(rows, w, rowBytes, y, accumulate) { q8_0($0, x, n / 32) }
        case .q4_0: decoded(rows, w, rowBytes, x, n, y, accumulate, values: 32, bytes: 18, decodeQ4_0)
        case .q5_0: decoded(rows, w, rowBytes, x, n, y, accumulate, values: 32, bytes: 22, decodeQ5_0)
        case .q4_K: decoded(rows, w, rowBytes, x, n, y, accumulate, values: 256, bytes: 144, decodeQ4_K)
        case .q6_K: decoded(rows, w, rowBytes, x, n, y, accumulate, values: 256, bytes: 210, decodeQ6_K)
        }
    }

    /// Rows of blocks of `values` values in `bytes` bytes each: a run of blocks is decoded into a buffer of 256
    /// values, then its dot product with x is accumulated.
    @inline(__always) static func decoded(_ rows: Range<Int>, _ w: UnsafeRawPointer, _ rowBytes: Int,
                                          _ x: UnsafePointer<Float>, _ n: Int, _ y: UnsafeMutablePointer<Float>,
                                          _ accumulate: Bool, values: Int, bytes: Int,
                                          _ decode: (UnsafeRawPointer, UnsafeMutablePointer<Float>) -> Void) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 256) { buffer in
            let f = buffer.baseAddress!
            let perRun = 256 / values
            each(rows, w, rowBytes, y, accumulate) { row in
                var s = V8(), t = V8()
                var j = 0, p = row
                while j < n {
                    let m = min(256, n - j)
                    for b in 0..<(m / values) { decode(p + b * bytes, f + b * values) }
                    var i = 0
                    while i + 16 <= m {
                        s += load8(f + i) * load8(x + j + i)
                        t += load8(f + i + 8) * load8(x + j + i + 8)
                        i += 16
                    }
                    if i < m { s += load8(f + i) * load8(x + j + i) }
                    j += m
                    p += perRun * bytes
                }
                return (s + t).sum()
            }
        }
    }

    /// Q4_0: f16 d, 16 bytes (value j in the low nibble of byte j, value j + 16 in the high); x = (q − 8)·d.
    @inline(__always) static func decodeQ4_0(_ p: UnsafeRawPointer, _ o: UnsafeMutablePointer<Float>) {
        let d = half(p)
        let q = (p + 2).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {
            o[j] = Float(Int32(q[j] & 15) - 8) * d
            o[j + 16] = Float(Int32(q[j] >> 4) - 8) * d
        }
    }

    /// Q5_0: f16 d, u32 of fifth bits (bit j for value j), 16 bytes of nibbles as Q4_0; x = (q − 16)·d.
    @inline(__always) static func decodeQ5_0(_ p: UnsafeRawPointer, _ o: UnsafeMutablePointer<Float>) {
        let d = half(p)
        let qh = UInt32(littleEndian: (p + 2).loadUnaligned(as: UInt32.self))
        let q = (p + 6).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {   // a mask test per value, not a shift by the value's index (no per-lane shifts before AVX2)
            let h0: Int32 = qh & (1 << UInt32(j)) != 0 ? 16 : 0, h1: Int32 = qh & (1 << UInt32(j + 16)) != 0 ? 16 : 0
            o[j] = Float((Int32(q[j] & 15) | h0) - 16) * d
            o[j + 16] = Float((Int32(q[j] >> 4) | h1) - 16) * d
        }
    }

    /// Q4_K's 6-bit scale and min of sub-block j from the 12 packed bytes at q (ggml's get_scale_min_k4).
    @inline(__always) static func scaleMinK4(_ j: Int, _ q: UnsafePointer<UInt8>) -> (UInt8, UInt8) {
        if j < 4 { return (q[j] & 63, q[j + 4] & 63) }
        return ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }

    /// Q4_K: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles (each 64 values: 32 bytes,
    /// low nibbles first); x = d·sc·q − dmin·m per 32 values.
    @inline(__always) static func decodeQ4_K(_ p: UnsafeRawPointer, _ o: UnsafeMutablePointer<Float>) {
        let d = half(p), dmin = half(p + 2)
        let sc = (p + 4).assumingMemoryBound(to: UInt8.self)
        for j in 0..<4 {
            let (s1, m1) = scaleMinK4(2 * j, sc), (s2, m2) = scaleMinK4(2 * j + 1, sc)
            let d1 = d * Float(s1), mm1 = dmin * Float(m1), d2 = d * Float(s2), mm2 = dmin * Float(m2)
            let q = (p + 16 + 32 * j).assumingMemoryBound(to: UInt8.self), ob = o + 64 * j
            for l in 0..<32 { ob[l] = d1 * Float(q[l] & 0xF) - mm1 }
            for l in 0..<32 { ob[32 + l] = d2 * Float(q[l] >> 4) - mm2 }
        }
    }

    /// Q6_K: 128 bytes of low nibbles, 64 of 2-bit highs, 16 int8 scales, f16 d; x = d·sc·(q − 32) per 16 values.
    @inline(__always) static func decodeQ6_K(_ p: UnsafeRawPointer, _ o: UnsafeMutablePointer<Float>) {
        let d = half(p + 208)
        for n in 0..<2 {
            let ql = (p + 64 * n).assumingMemoryBound(to: UInt8.self)
            let qh = (p + 128 + 32 * n).assumingMemoryBound(to: UInt8.self)
            let sc = (p + 192 + 8 * n).assumingMemoryBound(to: Int8.self), ob = o + 128 * n
            for part in 0..<2 {   // l in 16·part ..< 16·part + 16 share scale index `part`
                let s0 = d * Float(sc[part]), s2 = d * Float(sc[part + 2])
                let s4 = d * Float(sc[part + 4]), s6 = d * Float(sc[part + 6])
                for l in (16 * part)..<(16 * part + 16) {
                    let h = Int32(qh[l])
                    ob[l] = s0 * Float((Int32(ql[l] & 0xF) | ((h & 3) << 4)) - 32)
                    ob[l + 32] = s2 * Float((Int32(ql[l + 32] & 0xF) | (((h >> 2) & 3) << 4)) - 32)
                    ob[l + 64] = s4 * Float((Int32(ql[l] >> 4) | (((h >> 4) & 3) << 4)) - 32)
                    ob[l + 96] = s6 * Float((Int32(ql[l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32)
                }
            }
        }
    }

    @inline(__always) static func each(_ rows: Range<Int>, _ w: UnsafeRawPointer, _ rowBytes: Int, _ y: UnsafeMutablePointer<Float>,
                                       _ accumulate: Bool, _ dot: (UnsafeRawPointer) -> Float) {
        for r in rows {
            let v = dot(w + r * rowBytes)
            y[r] = accumulate ? y[r] + v : v
        }
    }

    /// The dot product of one row: the kernel `matvec` runs (tests).
    public static func dot(_ kind: RowKind, _ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, n: Int) -> Float {
        var y: Float = 0
        matvec(kind, row, rowBytes: 0, rows: 0..<1, x: x, n: n, y: &y, accumulate: false)
        return y
    }

    typealias V8 = SIMD8<Float>

    @inline(__always) static func load8(_ x: UnsafePointer<Float>) -> V8 { UnsafeRawPointer(x).loadUnaligned(as: V8.self) }

    /// Eight signed bytes as floats.
    @inline(__always) static func int8x8(_ p: UnsafeRawPointer) -> V8 {
        Widen.float(Widen.int32(p.loadUnaligned(as: SIMD8<Int8>.self)))
    }

    /// The f16 at p as f32 (exact; branch-free, no library call).
    @inline(__always) static func half(_ p: UnsafeRawPointer) -> Float {
        HalfFloat.f16ToF32Fast(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self)))
    }

    /// Σ w[j]·x[j] for a row of n values (a multiple of 8) that `widen(j)` gives as floats eight at a time.
    @inline(__always) static func plain(_ x: UnsafePointer<Float>, _ n: Int, _ widen: (Int) -> V8) -> Float {
        var s = V8(), t = V8()
        var j = 0
        while j + 16 <= n {
            s += widen(j) * load8(x + j)
            t += widen(j + 8) * load8(x + j + 8)
            j += 16
        }
        if j < n { s += widen(j) * load8(x + j) }
        return (s + t).sum()
    }

    @inline(__always) static func f32(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        let w = row.assumingMemoryBound(to: Float.self)
        return plain(x, n) { load8(w + $0) }
    }

    /// Eight f16 as f32: HalfFloat.f16ToF32Fast lane by lane, the normal and subnormal forms both made and one kept
    /// by a bit mask (plain integer lane operations: a SIMD mask select is an out-of-line call here).
    @inline(__always) static func halves(_ p: UnsafeRawPointer) -> V8 {
        typealias U8 = SIMD8<UInt32>
        let w = Widen.uint32(p.loadUnaligned(as: SIMD8<UInt16>.self)) &<< 16
        let twice = w &+ w
        let normal = unsafeBitCast((twice &>> 4) &+ (0xE0 << 23), to: V8.self) * Float(bitPattern: 0x0780_0000)
        let subnormal = unsafeBitCast((twice &>> 17) | (126 << 23), to: V8.self) - 0.5
        let top = twice &>> 27                          // 0 for a subnormal (or zero) f16
        let sub = ((top | (U8() &- top)) &>> 31) &- 1   // all ones where top is 0, else 0
        let bits = (unsafeBitCast(normal, to: U8.self) & ~sub) | (unsafeBitCast(subnormal, to: U8.self) & sub)
        return unsafeBitCast((w & 0x8000_0000) | bits, to: V8.self)
    }

    @inline(__always) static func f16(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        plain(x, n) { halves(row + 2 * $0) }
    }

    @inline(__always) static func bf16(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        plain(x, n) { j in
            let h = row.loadUnaligned(fromByteOffset: 2 * j, as: SIMD8<UInt16>.self)
            return unsafeBitCast(Widen.uint32(h) &<< 16, to: V8.self)
        }
    }

    /// Q8_0: f16 d, 32 × int8; x = d·q.
    @inline(__always) static func q8_0(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ blocks: Int) -> Float {
        var acc = V8(), acc2 = V8()
        for b in 0..<blocks {
            let p = row + 34 * b, xb = x + 32 * b
            let d = half(p)
            let s = int8x8(p + 2) * load8(xb) + int8x8(p + 10) * load8(xb + 8)
            let t = int8x8(p + 18) * load8(xb + 16) + int8x8(p + 26) * load8(xb + 24)
            acc += d * s
            acc2 += d * t
        }
        return (acc + acc2).sum()
    }
}
