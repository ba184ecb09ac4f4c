import TensorCore

/// Dot products of stored weight rows with activations rounded to int8 the way llama.cpp rounds them before its
/// integer dot products: per 32 values (its Q8_0 blocks, for Q4_0, Q5_0 and Q8_0 weights) or per 256 (Q8_K, for Q4_K
/// and Q6_K). Weights and activations meet as 16-bit integers: the sums of products are exact; the only floats are
/// one scale product per block.
///
/// Activations are held widened to Int16, each 32 values as their 16 even-indexed then their 16 odd-indexed ones, so
/// that two neighbouring weights loaded as one 16-bit lane (a byte pair, or a pair of nibbles) meet their two
/// activations lane by lane without shuffles. For Q8_0, Q4_0 and Q5_0 products stay in 16 bits (at most 2 · 128 · 127
/// and 4 · 16 · 127 per lane) and are widened in pairs to 32 bits; Q4_K and Q6_K multiply their sub-block scales into
/// the 16-bit weights and sum 32-bit products, which LLVM makes pmaddwd (a super-block's sum is under 2²⁷).
public enum Int8Dot {
    typealias I16 = SIMD16<Int16>
    typealias H16 = SIMD8<Int16>
    typealias I32 = SIMD8<Int32>
    typealias F8 = SIMD8<Float>

    /// Values per activation block for a kind's integer kernel (nil: the kind has none).
    public static func block(_ kind: RowKind) -> Int? {
        switch kind {
        case .q8_0, .q4_0, .q5_0: return 32
        case .q4_K, .q6_K: return 256
        case .f32, .bf16, .f16: return nil
        }
    }

    /// Rounds x [n] (a multiple of `block`, 32 or 256) into `values` [n] (the lane order above), `scales`
    /// [n / block] and `sums` [n / 16] (the sum of each 16 consecutive rounded values).
    /// block 32: llama.cpp's Q8_0 row (AVX2 form): d = max|x| / 127, q = x · 127 / max|x| rounded to nearest even,
    /// d kept as f16. block 256: its Q8_K row: the value of largest magnitude maps to −127, q = nearest(x · −127 / that
    /// value) capped at 127, d = 1 / (−127 / that value) as f32.
    public static func quantize(_ x: UnsafePointer<Float>, n: Int, block: Int, values: UnsafeMutablePointer<Int16>,
                                scales: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Int32>) {
        withUnsafeTemporaryAllocation(of: Int16.self, capacity: 256) { qb in
            let q = qb.baseAddress!
            for b in 0..<(n / block) {
                let xb = x + b * block
                var amax: Float = 0, vmax: Float = 0
                for i in 0..<block where abs(xb[i]) > amax {
                    amax = abs(xb[i])
                    vmax = xb[i]
                }
                if block == 32 {
                    let id: Float = amax != 0 ? 127 / amax : 0
                    for i in 0..<32 { q[i] = int8(xb[i] * id) }
                    scales[b] = HalfFloat.f16ToF32Fast(HalfFloat.f32ToF16Fast(amax / 127))
                } else if amax == 0 {
                    for i in 0..<block { q[i] = 0 }
                    scales[b] = 0
                } else {
                    let iscale = -127 / vmax
                    for i in 0..<block { q[i] = int8(iscale * xb[i]) }
                    scales[b] = 1 / iscale
                }
                for g in 0..<(block / 32) {
                    let o = values + b * block + 32 * g
                    for k in 0..<16 {
                        o[k] = q[32 * g + 2 * k]
                        o[16 + k] = q[32 * g + 2 * k + 1]
                    }
                }
                for s in 0..<(block / 16) {
                    var t: Int32 = 0
                    for i in 0..<16 { t += Int32(q[16 * s + i]) }
                    sums[b * block / 16 + s] = t
                }
            }
        }
    }

    /// v rounded to nearest even and held in −128…127 (NaN as 0: activations a hostile file made non-finite give
    /// non-finite products through the scale, not a trap).
    @inline(__always) static func int8(_ v: Float) -> Int16 {
        v.isNaN ? 0 : Int16(max(-128, min(127, v.rounded(.toNearestOrEven))))
    }

    /// y[r] (+)= row r · x̂ for r in `rows`, x̂ the rounded activations (`quantize` with the kind's block). Each row is
    /// one call of its kind's kernel: inlined into this switch, Q4_K's products lose LLVM's pmaddwd form (11 → 4 GB/s).
    public static func matvec(_ kind: RowKind, _ w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>,
                              values: UnsafePointer<Int16>, scales: UnsafePointer<Float>, sums: UnsafePointer<Int32>,
                              n: Int, y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let a = UnsafeRawPointer(values)
        q5Table.withUnsafeBufferPointer { table in   // the global read once per call, not per row
            let q5 = table.baseAddress!
            for r in rows {
                let row = w + r * rowBytes
                let v: Float
                switch kind {
                case .q8_0: v = q8_0(row, a, scales, n / 32)
                case .q4_0: v = q4_0(row, a, scales, n / 32)
                case .q5_0: v = q5_0(row, a, scales, n / 32, q5)
                case .q4_K: v = q4_K(row, a, scales, sums, n / 256)
                case .q6_K: v = q6_K(row, a, scales, n / 256)
                case .f32, .bf16, .f16: preconditionFailure("no integer kernel for \(kind)")
                }
                y[r] = accumulate ? y[r] + v : v
            }
        }
    }

    /// The 16-bit lanes of t summed in pairs into 32-bit lanes.
    @inline(__always) static func pairSums(_ t: I16) -> I32 {
        let u = unsafeBitCast(t, to: I32.self)
        return ((u &<< 16) &>> 16) &+ (u &>> 16)
    }

    @inline(__always) static func pairSums(_ t: H16) -> SIMD4<Int32> {
        let u = unsafeBitCast(t, to: SIMD4<Int32>.self)
        return ((u &<< 16) &>> 16) &+ (u &>> 16)
    }

    @inline(__always) static func half(_ p: UnsafeRawPointer) -> Float {
        HalfFloat.f16ToF32Fast(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self)))
    }

    /// `half` by the standard library's conversion (F16C's vcvtph2ps in the AVX2 build, a library call in the
    /// baseline one): the K-quant kernels' two per 256 values. With `half`'s bit operations beside it, LLVM loses the
    /// pmaddwd form of Q4_K's products (11 → 4 GB/s).
    @inline(__always) static func halfK(_ p: UnsafeRawPointer) -> Float {
        Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(as: UInt16.self))))
    }

    /// Q8_0 weights: 32 signed bytes after the f16 scale; byte pairs are lanes (low byte even, high byte odd).
    @inline(never) static func q8_0(_ row: UnsafeRawPointer, _ a: UnsafeRawPointer, _ dx: UnsafePointer<Float>,
                                    _ blocks: Int) -> Float {
        var acc = F8()
        for b in 0..<blocks {
            let p = row + 34 * b
            let v = (p + 2).loadUnaligned(as: I16.self)
            let even = (v &<< 8) &>> 8, odd = v &>> 8
            let ae = a.loadUnaligned(fromByteOffset: 64 * b, as: I16.self)
            let ao = a.loadUnaligned(fromByteOffset: 64 * b + 32, as: I16.self)
            acc += Widen.float(pairSums(even &* ae &+ odd &* ao)) * (half(p) * dx[b])
        }
        return acc.sum()
    }

    /// Q4_0: byte j holds values j (low nibble) and j + 16; as 16-bit lanes, lane k holds values 2k, 2k + 1 (low
    /// nibbles of its two bytes) and 16 + 2k, 17 + 2k (high nibbles). `add` is what each value adds to its
    /// nibble: −8 for Q4_0; for Q5_0 16 · (fifth bit) − 16.
    @inline(__always) static func nibbleBlock(_ v: H16, _ a: UnsafeRawPointer, _ o: Int,
                                              add: (H16, H16, H16, H16)) -> SIMD4<Int32> {
        let m = H16(repeating: 15)
        let e0 = (v & m) &+ add.0, o0 = ((v &>> 8) & m) &+ add.1
        let e1 = ((v &>> 4) & m) &+ add.2, o1 = ((v &>> 12) & m) &+ add.3
        let ae0 = a.loadUnaligned(fromByteOffset: o, as: H16.self)
        let ae1 = a.loadUnaligned(fromByteOffset: o + 16, as: H16.self)
        let ao0 = a.loadUnaligned(fromByteOffset: o + 32, as: H16.self)
        let ao1 = a.loadUnaligned(fromByteOffset: o + 48, as: H16.self)
        return pairSums(e0 &* ae0 &+ o0 &* ao0 &+ e1 &* ae1 &+ o1 &* ao1)
    }

    /// `nibbleBlock` for blocks b and b + 1 at once in 16 lanes (lanes 0…7 block b, 8…15 block b + 1; the
    /// activations' halves of the two blocks, at o and o + 64, loaded side by side); 32-bit lanes 0…3 and 4…7 hold
    /// the two blocks' pair sums.
    @inline(__always) static func nibblePair(_ v: I16, _ a: UnsafeRawPointer, _ o: Int,
                                             add: (I16, I16, I16, I16)) -> I32 {
        let m = I16(repeating: 15)
        @inline(__always) func act(_ k: Int) -> I16 {
            I16(lowHalf: a.loadUnaligned(fromByteOffset: o + k, as: H16.self),
                highHalf: a.loadUnaligned(fromByteOffset: o + 64 + k, as: H16.self))
        }
        let e0 = (v & m) &+ add.0, o0 = ((v &>> 8) & m) &+ add.1
        let e1 = ((v &>> 4) & m) &+ add.2, o1 = ((v &>> 12) & m) &+ add.3
        return pairSums(e0 &* act(0) &+ o0 &* act(32) &+ e1 &* act(16) &+ o1 &* act(48))
    }

    /// Two blocks' scale products (block b's in lanes 0…3, b + 1's in 4…7).
    @inline(__always) static func pairScale(_ s0: Float, _ s1: Float) -> F8 {
        F8(lowHalf: SIMD4(repeating: s0), highHalf: SIMD4(repeating: s1))
    }

    @inline(never) static func q4_0(_ row: UnsafeRawPointer, _ a: UnsafeRawPointer, _ dx: UnsafePointer<Float>,
                                    _ blocks: Int) -> Float {
        var acc = F8()
        let z = I16(repeating: -8)
        var b = 0
        while b + 2 <= blocks {
            let p = row + 18 * b
            let v = I16(lowHalf: (p + 2).loadUnaligned(as: H16.self), highHalf: (p + 20).loadUnaligned(as: H16.self))
            let s = nibblePair(v, a, 64 * b, add: (z, z, z, z))
            acc += Widen.float(s) * pairScale(half(p) * dx[b], half(p + 18) * dx[b + 1])
            b += 2
        }
        if b < blocks {
            let p = row + 18 * b, h = z.lowHalf
            let s = nibbleBlock((p + 2).loadUnaligned(as: H16.self), a, 64 * b, add: (h, h, h, h))
            acc.lowHalf += Widen.float(s) * (half(p) * dx[b])
        }
        return acc.sum()
    }

    /// Q5_0: bit i of the u32 after the scale is value i's fifth bit; `table` (q5Table) gives, per byte of those bits,
    /// what its eight values add to their nibbles (16 · bit − 16), even-indexed values in lanes 0…3, odd in 4…7. Lane
    /// k of a block holds values 2k, 2k + 1 (bytes 0 and 1 of the bits) and 16 + 2k, 17 + 2k (bytes 2 and 3), so the
    /// four lane vectors are the tables' halves side by side.
    @inline(never) static func q5_0(_ row: UnsafeRawPointer, _ a: UnsafeRawPointer, _ dx: UnsafePointer<Float>,
                                    _ blocks: Int, _ table: UnsafePointer<H16>) -> Float {
        @inline(__always) func adds(_ q: UnsafeRawPointer) -> (H16, H16, H16, H16) {
            let t0 = table[Int(q.load(as: UInt8.self))], t1 = table[Int(q.load(fromByteOffset: 1, as: UInt8.self))]
            let t2 = table[Int(q.load(fromByteOffset: 2, as: UInt8.self))]
            let t3 = table[Int(q.load(fromByteOffset: 3, as: UInt8.self))]
            return (H16(lowHalf: t0.lowHalf, highHalf: t1.lowHalf), H16(lowHalf: t0.highHalf, highHalf: t1.highHalf),
                    H16(lowHalf: t2.lowHalf, highHalf: t3.lowHalf), H16(lowHalf: t2.highHalf, highHalf: t3.highHalf))
        }
        var acc = F8()
        var b = 0
        while b + 2 <= blocks {
            let p = row + 22 * b
            let x = adds(p + 2), y = adds(p + 24)
            let add = (I16(lowHalf: x.0, highHalf: y.0), I16(lowHalf: x.1, highHalf: y.1),
                       I16(lowHalf: x.2, highHalf: y.2), I16(lowHalf: x.3, highHalf: y.3))
            let v = I16(lowHalf: (p + 6).loadUnaligned(as: H16.self), highHalf: (p + 28).loadUnaligned(as: H16.self))
            let s = nibblePair(v, a, 64 * b, add: add)
            acc += Widen.float(s) * pairScale(half(p) * dx[b], half(p + 22) * dx[b + 1])
            b += 2
        }
        if b < blocks {
            let p = row + 22 * b
            let s = nibbleBlock((p + 6).loadUnaligned(as: H16.self), a, 64 * b, add: adds(p + 2))
            acc.lowHalf += Widen.float(s) * (half(p) * dx[b])
        }
        return acc.sum()
    }

    /// Per byte of Q5_0's fifth bits, what its values add to their nibbles: 16 · bit − 16 for bits 0, 2, 4, 6 in
    /// lanes 0…3 and bits 1, 3, 5, 7 in lanes 4…7 (4 KiB).
    static let q5Table: [H16] = (0..<256).map { byte in
        H16((0..<8).map { lane -> Int16 in
            let bit = lane < 4 ? 2 * lane : 2 * (lane - 4) + 1
            return (byte >> bit) & 1 == 1 ? 0 : -16
        })
    }

    /// Q4_K: per 64 values 32 bytes, byte l holding values l (low nibble) and 32 + l; each 32 values have a 6-bit
    /// scale and min: x = d·sc·q − dmin·m, so row · x̂ = dx·(d·Σ sc·Σq·a − dmin·Σ m·Σa). The 12 bytes of scales and
    /// mins are unpacked four at a time in 32-bit words (ggml's get_scale_min_k4 for all eight at once).
    @inline(never) static func q4_K(_ row: UnsafeRawPointer, _ a: UnsafeRawPointer, _ dx: UnsafePointer<Float>,
                                    _ sums: UnsafePointer<Int32>, _ blocks: Int) -> Float {
        var sumi: Float = 0, minTotal: Float = 0
        let m = I16(repeating: 15)
        for b in 0..<blocks {
            let p = row + 144 * b
            let w0 = UInt32(littleEndian: (p + 4).loadUnaligned(as: UInt32.self))
            let w1 = UInt32(littleEndian: (p + 8).loadUnaligned(as: UInt32.self))
            let w2 = UInt32(littleEndian: (p + 12).loadUnaligned(as: UInt32.self))
            let low6: UInt32 = 0x3F3F_3F3F, low4: UInt32 = 0x0F0F_0F0F, top2: UInt32 = 0x0303_0303
            let scales = Widen.int32(unsafeBitCast(
                SIMD2<UInt32>(w0 & low6, (w2 & low4) | (((w0 >> 6) & top2) << 4)), to: SIMD8<UInt8>.self))
            let mins = Widen.int32(unsafeBitCast(
                SIMD2<UInt32>(w1 & low6, ((w2 >> 4) & low4) | (((w1 >> 6) & top2) << 4)), to: SIMD8<UInt8>.self))
            let s16 = UnsafeRawPointer(sums + 16 * b).loadUnaligned(as: SIMD16<Int32>.self)
            let ab = 512 * b
            var acc = SIMD16<Int32>()   // only its sum is used: pmaddwd (see Widen.multiplyAdd)
            @inline(__always) func group(_ j: Int) {   // values 64j ..< 64j + 64; called four times, not looped:
                let v = (p + 16 + 32 * j).loadUnaligned(as: I16.self)   // a loop keeps LLVM from the pmaddwd form
                let s1 = I16(repeating: Int16(truncatingIfNeeded: scales[2 * j]))
                let s2 = I16(repeating: Int16(truncatingIfNeeded: scales[2 * j + 1]))
                let o = ab + 128 * j   // q·sc ≤ 15 · 63: 16 bits
                Widen.multiplyAdd(&acc, (v & m) &* s1, a.loadUnaligned(fromByteOffset: o, as: I16.self))
                Widen.multiplyAdd(&acc, ((v &>> 8) & m) &* s1, a.loadUnaligned(fromByteOffset: o + 32, as: I16.self))
                Widen.multiplyAdd(&acc, ((v &>> 4) & m) &* s2, a.loadUnaligned(fromByteOffset: o + 64, as: I16.self))
                Widen.multiplyAdd(&acc, ((v &>> 12) & m) &* s2, a.loadUnaligned(fromByteOffset: o + 96, as: I16.self))
            }
            group(0)
            group(1)
            group(2)
            group(3)
            sumi += dx[b] * halfK(p) * Float(acc.wrappedSum())
            // Σ m·Σa in floats (exact: under 2²⁴); as an integer reduction beside acc's, LLVM gives up acc's
            // pmaddwd form
            let minSum = (Widen.float(mins) * Widen.float(s16.evenHalf &+ s16.oddHalf)).sum()
            minTotal += dx[b] * halfK(p + 2) * minSum
        }
        return sumi - minTotal
    }

    /// Q6_K: per 128 values 64 bytes of low nibbles (ql), 32 of 2-bit highs (qh) and 8 int8 scales (one per 16
    /// values); value l + 32g (g = 0…3) is ql[l + 32(g & 1)]'s low (g < 2) or high nibble with qh[l]'s bits 2g, 2g + 1
    /// above it, minus 32. Lane k of a 32-byte load holds l = 2k, 2k + 1.
    @inline(never) static func q6_K(_ row: UnsafeRawPointer, _ a: UnsafeRawPointer, _ dx: UnsafePointer<Float>,
                                    _ blocks: Int) -> Float {
        var total: Float = 0
        let m = I16(repeating: 15), hm = I16(repeating: 0x30), c = I16(repeating: 32)
        for b in 0..<blocks {
            let p = row + 210 * b
            var acc = SIMD16<Int32>()   // only its sum is used: pmaddwd (see Widen.multiplyAdd)
            for n in 0..<2 {
                let qa = (p + 64 * n).loadUnaligned(as: I16.self), qb = (p + 64 * n + 32).loadUnaligned(as: I16.self)
                let h = (p + 128 + 32 * n).loadUnaligned(as: I16.self)
                let sc = (p + 192 + 8 * n).assumingMemoryBound(to: Int8.self)
                @inline(__always) func group(_ g: Int, _ even: I16, _ odd: I16) {
                    // (q − 32)·sc: at most 32 · 128 in magnitude, 16 bits
                    let o = 2 * (256 * b + 128 * n + 32 * g)
                    let s0 = Int16(sc[2 * g]), s1 = Int16(sc[2 * g + 1])
                    let scale = I16(lowHalf: H16(repeating: s0), highHalf: H16(repeating: s1))
                    Widen.multiplyAdd(&acc, (even &- c) &* scale, a.loadUnaligned(fromByteOffset: o, as: I16.self))
                    Widen.multiplyAdd(&acc, (odd &- c) &* scale, a.loadUnaligned(fromByteOffset: o + 32, as: I16.self))
                }
                group(0, (qa & m) | ((h &<< 4) & hm), ((qa &>> 8) & m) | ((h &>> 4) & hm))
                group(1, (qb & m) | ((h &<< 2) & hm), ((qb &>> 8) & m) | ((h &>> 6) & hm))
                group(2, ((qa &>> 4) & m) | (h & hm), ((qa &>> 12) & m) | ((h &>> 8) & hm))
                group(3, ((qb &>> 4) & m) | ((h &>> 2) & hm), ((qb &>> 12) & m) | ((h &>> 10) & hm))
            }
            total += dx[b] * halfK(p + 208) * Float(acc.wrappedSum())
        }
        return total
    }
}
