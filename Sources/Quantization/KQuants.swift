import TensorCore

/// The 256-element super-block types Q2_K, Q3_K, Q4_K, Q5_K, Q6_K: llama-quantize's two paths, the `_ref`
/// routine (no importance matrix) and the `_impl` routine (importance weights `qw`, one value per column),
/// and the dequantizers. Block layouts (bytes): Q2_K scales[16] qs[64] d dmin; Q3_K hmask[32] qs[64] scales[12] d;
/// Q4_K d dmin scales[12] qs[128]; Q5_K d dmin scales[12] qh[32] qs[128]; Q6_K ql[128] qh[64] scales[16] d.
public enum KQuants {
    static let qk = 256

    @inline(__always) static func scaleMinK4(_ j: Int, _ q: UnsafeRawPointer) -> (UInt8, UInt8) {
        let b = { (k: Int) in q.load(fromByteOffset: k, as: UInt8.self) }
        if j < 4 { return (b(j) & 63, b(j + 4) & 63) }
        return ((b(j + 4) & 0xF) | ((b(j - 4) >> 6) << 4), (b(j + 4) >> 4) | ((b(j) >> 6) << 4))
    }

    @inline(__always) static func set(_ p: UnsafeMutableRawPointer, _ off: Int, _ v: UInt8) { p.storeBytes(of: v, toByteOffset: off, as: UInt8.self) }
    @inline(__always) static func get(_ p: UnsafeRawPointer, _ off: Int) -> UInt8 { p.load(fromByteOffset: off, as: UInt8.self) }

    /// Packs 2-bit values: qs[j/4 + l] = L[j+l] | L[j+l+32]<<2 | L[j+l+64]<<4 | L[j+l+96]<<6.
    static func pack2(_ L: UnsafePointer<UInt8>, _ qs: UnsafeMutableRawPointer) {
        for j in stride(from: 0, to: qk, by: 128) {
            for l in 0..<32 {
                set(qs, j / 4 + l, L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6))
            }
        }
    }

    /// Q4_K/Q5_K 6-bit scale and min packing.
    static func packScales(_ y: UnsafeMutableRawPointer, _ off: Int, _ j: Int, _ ls: UInt8, _ lm: UInt8) {
        if j < 4 {
            set(y, off + j, ls); set(y, off + j + 4, lm)
        } else {
            set(y, off + j + 4, (ls & 0xF) | ((lm & 0xF) << 4))
            set(y, off + j - 4, get(y, off + j - 4) | ((ls >> 4) << 6))
            set(y, off + j, get(y, off + j) | ((lm >> 4) << 6))
        }
    }

    // MARK: Q2_K (84 bytes)

    public static func quantizeQ2K(_ x0: UnsafePointer<Float>, _ y0: UnsafeMutableRawPointer, blocks: Int, qw: UnsafePointer<Float>?) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256 + 16 + 32) { lb in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 16 * 4 + 16) { fb in
            let L = lb.baseAddress!, Laux = L + 256, Ls = Laux + 16, Lm = Ls + 16
            let mins = fb.baseAddress!, scales = mins + 16, sw = scales + 16, weight = sw + 16
            for i in 0..<blocks {
                let x = x0 + i * qk, y = y0 + i * 84
                for k in 0..<84 { set(y, k, 0) }
                if let qw {
                    let q = qw + i * qk
                    for j in 0..<16 { sw[j] = 0 }
                    var sumx2: Float = 0
                    for j in 0..<qk { sumx2 += x[j] * x[j] }
                    let sigma2 = sumx2 / Float(qk)
                    for j in 0..<16 {
                        for l in 0..<16 { weight[l] = q[16 * j + l] * (sigma2 + x[16 * j + l] * x[16 * j + l]).squareRoot() }
                        for l in 0..<16 { sw[j] += weight[l] }
                        scales[j] = KQuantSearch.makeQkxQuants(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux,
                                                                rmin: -0.9, rdelta: 0.05, nstep: 36, useMad: false, qkx3: true)
                    }
                    var dm = KQuantSearch.makeQpQuants(16, 15, scales, Ls, sw)
                    var mm = KQuantSearch.makeQpQuants(16, 15, mins, Lm, sw)
                    storeU16(y, 80, fp16(dm)); storeU16(y, 82, fp16(mm))
                    dm = fromFP16(loadU16(y, 80)); mm = fromFP16(loadU16(y, 82))
                    for j in 0..<16 { set(y, j, Ls[j] | (Lm[j] << 4)) }
                    for j in 0..<16 {
                        let sc = get(y, j)
                        let d = dm * Float(sc & 0xF)
                        if d == 0 { continue }
                        let m = mm * Float(sc >> 4)
                        for ii in 0..<16 {
                            let l = Int(nearestInt((x[16 * j + ii] + m) / d))
                            L[16 * j + ii] = UInt8(max(0, min(3, l)))
                        }
                    }
                } else {
                    var maxScale: Float = 0, maxMin: Float = 0
                    for j in 0..<16 {
                        for l in 0..<16 { weight[l] = abs(x[16 * j + l]) }
                        scales[j] = KQuantSearch.makeQkxQuants(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux,
                                                                rmin: -0.5, rdelta: 0.1, nstep: 15, useMad: true, qkx3: false)
                        if scales[j] > maxScale { maxScale = scales[j] }
                        if mins[j] > maxMin { maxMin = mins[j] }
                    }
                    if maxScale > 0 {
                        let iscale = 15 / maxScale
                        for j in 0..<16 { set(y, j, UInt8(truncatingIfNeeded: nearestInt(iscale * scales[j]))) }
                        storeU16(y, 80, fp16(maxScale / 15))
                    } else {
                        storeU16(y, 80, fp16(0))
                    }
                    if maxMin > 0 {
                        let iscale = 15 / maxMin
                        for j in 0..<16 { set(y, j, get(y, j) | UInt8(truncatingIfNeeded: nearestInt(iscale * mins[j]) << 4)) }
                        storeU16(y, 82, fp16(maxMin / 15))
                    } else {
                        storeU16(y, 82, fp16(0))
                    }
                    for j in 0..<16 {
                        let sc = get(y, j)
                        let d = fromFP16(loadU16(y, 80)) * Float(sc & 0xF)
                        if d == 0 { continue }
                        let dm = fromFP16(loadU16(y, 82)) * Float(sc >> 4)
                        for ii in 0..<16 {
                            let l = Int(nearestInt((x[16 * j + ii] + dm) / d))
                            L[16 * j + ii] = UInt8(max(0, min(3, l)))
                        }
                    }
                }
                pack2(L, y + 16)
            }
        }
        }
    }

    public static func dequantizeQ2K(_ y0: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, blocks: Int) {
        for i in 0..<blocks {
            let x = y0 + i * 84
            let d = fromFP16(loadU16(x, 80)), dmin = fromFP16(loadU16(x, 82))
            var o = out + i * qk
            var isc = 0
            for n in stride(from: 0, to: qk, by: 128) {
                let q = 16 + n / 4
                var shift: UInt8 = 0
                for _ in 0..<4 {
                    for half in 0..<2 {
                        let sc = get(x, isc); isc += 1
                        let dl = d * Float(sc & 0xF), ml = dmin * Float(sc >> 4)
                        for l in 0..<16 { o[l] = dl * Float((get(x, q + l + 16 * half) >> shift) & 3) - ml }
                        o += 16
                    }
                    shift += 2
                }
            }
        }
    }

    // MARK: Q3_K (110 bytes)

    /// Writes the 6-bit signed sub-block scales (values 0..63 already offset by 32) into scales[12] at `off`.
    static func packQ3Scales(_ y: UnsafeMutableRawPointer, _ off: Int, _ j: Int, _ l0: Int) {
        var l = l0
        if j < 8 { set(y, off + j, UInt8(truncatingIfNeeded: l & 0xF)) }
        else { set(y, off + j - 8, get(y, off + j - 8) | UInt8(truncatingIfNeeded: (l & 0xF) << 4)) }
        l >>= 4
        set(y, off + j % 4 + 8, get(y, off + j % 4 + 8) | UInt8(truncatingIfNeeded: l << (2 * (j / 4))))
    }

    static func q3Scale(_ y: UnsafeRawPointer, _ off: Int, _ j: Int) -> Int8 {
        var sc = Int8(bitPattern: j < 8 ? get(y, off + j) & 0xF : get(y, off + j - 8) >> 4)
        sc = (sc | Int8(bitPattern: ((get(y, off + 8 + j % 4) >> (2 * (j / 4))) & 3) << 4)) &- 32
        return sc
    }

    public static func quantizeQ3K(_ x0: UnsafePointer<Float>, _ y0: UnsafeMutableRawPointer, blocks: Int, qw: UnsafePointer<Float>?) {
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256 + 16) { lb in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 48) { fb in
            let L = lb.baseAddress!, Ls = L + 256
            let scales = fb.baseAddress!, sw = scales + 16, weight = sw + 16
            for i in 0..<blocks {
                let x = x0 + i * qk, y = y0 + i * 110
                for k in 0..<110 { set(y, k, 0) }
                if let qw {
                    let q = qw + i * qk
                    var sumx2: Float = 0
                    for j in 0..<qk { sumx2 += x[j] * x[j] }
                    let sigma2 = 2 * sumx2 / Float(qk)
                    for j in 0..<16 {
                        for l in 0..<16 { weight[l] = q[16 * j + l] * (sigma2 + x[16 * j + l] * x[16 * j + l]).squareRoot() }
                        var sumw: Float = 0
                        for l in 0..<16 { sumw += weight[l] }
                        sw[j] = sumw
                        scales[j] = KQuantSearch.makeQxQuants(16, 4, x + 16 * j, L + 16 * j, rmseType: 1, qw: UnsafePointer(weight))
                    }
                    let dBlock = KQuantSearch.makeQxQuants(16, 32, scales, Ls, rmseType: 1, qw: UnsafePointer(sw))
                    for j in 0..<16 { packQ3Scales(y, 96, j, Int(Ls[j])) }
                    storeU16(y, 108, fp16(dBlock))
                } else {
                    var maxScale: Float = 0, amax: Float = 0
                    for j in 0..<16 {
                        scales[j] = KQuantSearch.makeQ3Quants(16, 4, x + 16 * j, L + 16 * j, doRmse: true)
                        let s = abs(scales[j])
                        if s > amax { amax = s; maxScale = scales[j] }
                    }
                    if maxScale != 0 {
                        let iscale = -32 / maxScale
                        for j in 0..<16 {
                            var l = Int(Int8(truncatingIfNeeded: nearestInt(iscale * scales[j])))
                            l = max(-32, min(31, l)) + 32
                            packQ3Scales(y, 96, j, l)
                        }
                        storeU16(y, 108, fp16(1 / iscale))
                    } else {
                        storeU16(y, 108, fp16(0))
                    }
                }
                let dAll = fromFP16(loadU16(y, 108))
                for j in 0..<16 {
                    let d = dAll * Float(q3Scale(y, 96, j))
                    if d == 0 { continue }
                    for ii in 0..<16 {
                        let l = Int(nearestInt(x[16 * j + ii] / d))
                        L[16 * j + ii] = Int8(max(-4, min(3, l)) + 4)
                    }
                }
                var m = 0
                var hm: UInt8 = 1
                for j in 0..<qk {
                    if L[j] > 3 {
                        set(y, m, get(y, m) | hm)
                        L[j] -= 4
                    }
                    m += 1
                    if m == qk / 8 { m = 0; hm = hm &<< 1 }
                }
                L.withMemoryRebound(to: UInt8.self, capacity: 256) { pack2($0, y + 32) }
            }
        }
        }
    }

    public static func dequantizeQ3K(_ y0: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, blocks: Int) {
        for i in 0..<blocks {
            let x = y0 + i * 110
            let dAll = fromFP16(loadU16(x, 108))
            var o = out + i * qk
            var isc = 0
            var m: UInt8 = 1
            for n in stride(from: 0, to: qk, by: 128) {
                let q = 32 + n / 4
                var shift: UInt8 = 0
                for _ in 0..<4 {
                    for half in 0..<2 {
                        let dl = dAll * Float(q3Scale(x, 96, isc)); isc += 1
                        for l in 0..<16 {
                            let v = Int((get(x, q + l + 16 * half) >> shift) & 3) - ((get(x, l + 16 * half) & m) != 0 ? 0 : 4)
                            o[l] = dl * Float(v)
                        }
                        o += 16
                    }
                    shift += 2
                    m = m &<< 1
                }
            }
        }
    }

    // MARK: Q4_K (144 bytes) and Q5_K (176 bytes)

    /// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): sub-block scales/mins, then the requantized levels in L.
    static func quantizeScaleMinBlock(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, nmax: Int, qw: UnsafePointer<Float>?,
                                      L: UnsafeMutablePointer<UInt8>, Ls: UnsafeMutablePointer<UInt8>,
                                      Lm: UnsafeMutablePointer<UInt8>, f: UnsafeMutablePointer<Float>) {
        let mins = f, scales = f + 8, sw = f + 16
        withUnsafeTemporaryAllocation(of: Float.self, capacity: qk) { wb in
        let weights = wb.baseAddress!  // [8 × 32]: each sub-block's weights
        if let qw {
            var sumx2: Float = 0
            for l in 0..<qk { sumx2 += x[l] * x[l] }
            let sigma2 = 2 * sumx2 / Float(qk)
            for j in 0..<8 {
                for l in 0..<32 { weights[32 * j + l] = qw[32 * j + l] * (sigma2 + x[32 * j + l] * x[32 * j + l]).squareRoot() }
                var sumw: Float = 0
                for l in 0..<32 { sumw += weights[32 * j + l] }
                sw[j] = sumw
            }
            KQuantSearch.makeQkxQuantsGroups(8, 32, nmax, x, weights, L, scales: scales, mins: mins,
                                             rmin: -0.9, rdelta: 0.05, nstep: 36, useMad: false, qkx3: true)
            let dBlock = KQuantSearch.makeQpQuants(8, 63, scales, Ls, sw)
            let mBlock = KQuantSearch.makeQpQuants(8, 63, mins, Lm, sw)
            for j in 0..<8 { packScales(y, 4, j, min(63, Ls[j]), min(63, Lm[j])) }
            storeU16(y, 0, fp16(dBlock)); storeU16(y, 2, fp16(mBlock))
        } else {
            for j in 0..<8 {
                var sumx2: Float = 0
                for l in 0..<32 { sumx2 += x[32 * j + l] * x[32 * j + l] }
                let avx = (sumx2 / 32).squareRoot()
                for l in 0..<32 { weights[32 * j + l] = avx + abs(x[32 * j + l]) }
            }
            KQuantSearch.makeQkxQuantsGroups(8, 32, nmax, x, weights, L, scales: scales, mins: mins,
                                             rmin: nmax == 15 ? -1 : -0.5, rdelta: 0.1, nstep: nmax == 15 ? 20 : 15,
                                             useMad: false, qkx3: false)
            var maxScale: Float = 0, maxMin: Float = 0
            for j in 0..<8 {
                if scales[j] > maxScale { maxScale = scales[j] }
                if mins[j] > maxMin { maxMin = mins[j] }
            }
            let invScale: Float = maxScale > 0 ? 63 / maxScale : 0
            let invMin: Float = maxMin > 0 ? 63 / maxMin : 0
            for j in 0..<8 {
                let ls = min(63, UInt8(truncatingIfNeeded: nearestInt(invScale * scales[j])))
                let lm = min(63, UInt8(truncatingIfNeeded: nearestInt(invMin * mins[j])))
                packScales(y, 4, j, ls, lm)
            }
            storeU16(y, 0, fp16(maxScale / 63)); storeU16(y, 2, fp16(maxMin / 63))
        }
        }
        let d0 = fromFP16(loadU16(y, 0)), m0 = fromFP16(loadU16(y, 2))
        for j in 0..<8 {
            let (sc, m) = scaleMinK4(j, y + 4)
            let d = d0 * Float(sc)
            if d == 0 { continue }
            let dm = m0 * Float(m)
            for ii in 0..<32 {
                let l = Int(nearestInt((x[32 * j + ii] + dm) / d))
                L[32 * j + ii] = UInt8(max(0, min(nmax, l)))
            }
        }
    }

    /// Scratch for a Q4_K/Q5_K super-block: L [256], Ls [8], Lm [8], f [24] (mins, scales, sub-block weight sums).
    static func withScratch(_ body: (UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<Float>) -> Void) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256 + 16) { lb in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 24) { fb in
                let L = lb.baseAddress!
                body(L, L + 256, L + 264, fb.baseAddress!)
            }
        }
    }

    public static func quantizeQ4K(_ x0: UnsafePointer<Float>, _ y0: UnsafeMutableRawPointer, blocks: Int, qw: UnsafePointer<Float>?) {
        withScratch { L, Ls, Lm, f in
            for i in 0..<blocks {
                let x = x0 + i * qk, y = y0 + i * 144
                for k in 0..<144 { set(y, k, 0) }
                quantizeScaleMinBlock(x, y, nmax: 15, qw: qw.map { $0 + i * qk }, L: L, Ls: Ls, Lm: Lm, f: f)
                for j in stride(from: 0, to: qk, by: 64) {
                    for l in 0..<32 { set(y, 16 + j / 2 + l, L[j + l] | (L[j + l + 32] << 4)) }
                }
            }
        }
    }

    public static func dequantizeQ4K(_ y0: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, blocks: Int) {
        for i in 0..<blocks {
            let x = y0 + i * 144
            let d = fromFP16(loadU16(x, 0)), dmin = fromFP16(loadU16(x, 2))
            var o = out + i * qk
            var isc = 0
            for j in stride(from: 0, to: qk, by: 64) {
                let (s1, m1) = scaleMinK4(isc, x + 4), (s2, m2) = scaleMinK4(isc + 1, x + 4)
                let d1 = d * Float(s1), mm1 = dmin * Float(m1), d2 = d * Float(s2), mm2 = dmin * Float(m2)
                let q = 16 + j / 2
                for l in 0..<32 { o[l] = d1 * Float(get(x, q + l) & 0xF) - mm1 }
                for l in 0..<32 { o[32 + l] = d2 * Float(get(x, q + l) >> 4) - mm2 }
                o += 64; isc += 2
            }
        }
    }

    public static func quantizeQ5K(_ x0: UnsafePointer<Float>, _ y0: UnsafeMutableRawPointer, blocks: Int, qw: UnsafePointer<Float>?) {
        withScratch { L, Ls, Lm, f in
            for i in 0..<blocks {
                let x = x0 + i * qk, y = y0 + i * 176
                for k in 0..<176 { set(y, k, 0) }
                quantizeScaleMinBlock(x, y, nmax: 31, qw: qw.map { $0 + i * qk }, L: L, Ls: Ls, Lm: Lm, f: f)
                var m1: UInt8 = 1, m2: UInt8 = 2
                for n in stride(from: 0, to: qk, by: 64) {
                    for j in 0..<32 {
                        var l1 = L[n + j], l2 = L[n + j + 32]
                        if l1 > 15 { l1 -= 16; set(y, 16 + j, get(y, 16 + j) | m1) }
                        if l2 > 15 { l2 -= 16; set(y, 16 + j, get(y, 16 + j) | m2) }
                        set(y, 48 + n / 2 + j, l1 | (l2 << 4))
                    }
                    m1 = m1 &<< 2; m2 = m2 &<< 2
                }
            }
        }
    }

    public static func dequantizeQ5K(_ y0: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, blocks: Int) {
        for i in 0..<blocks {
            let x = y0 + i * 176
            let d = fromFP16(loadU16(x, 0)), dmin = fromFP16(loadU16(x, 2))
            var o = out + i * qk
            var isc = 0
            var u1: UInt8 = 1, u2: UInt8 = 2
            for j in stride(from: 0, to: qk, by: 64) {
                let (s1, m1) = scaleMinK4(isc, x + 4), (s2, m2) = scaleMinK4(isc + 1, x + 4)
                let d1 = d * Float(s1), mm1 = dmin * Float(m1), d2 = d * Float(s2), mm2 = dmin * Float(m2)
                let ql = 48 + j / 2
                for l in 0..<32 { o[l] = d1 * Float(Int(get(x, ql + l) & 0xF) + ((get(x, 16 + l) & u1) != 0 ? 16 : 0)) - mm1 }
                for l in 0..<32 { o[32 + l] = d2 * Float(Int(get(x, ql + l) >> 4) + ((get(x, 16 + l) & u2) != 0 ? 16 : 0)) - mm2 }
                o += 64; isc += 2
                u1 = u1 &<< 2; u2 = u2 &<< 2
            }
        }
    }

    // MARK: Q6_K (210 bytes)

    public static func quantizeQ6K(_ x0: UnsafePointer<Float>, _ y0: UnsafeMutableRawPointer, blocks: Int, qw: UnsafePointer<Float>?) {
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256) { lb in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { fb in
            let L = lb.baseAddress!, scales = fb.baseAddress!
            for i in 0..<blocks {
                let x = x0 + i * qk, y = y0 + i * 210
                for k in 0..<210 { set(y, k, 0) }
                var maxScale: Float = 0, maxAbs: Float = 0
                for ib in 0..<16 {
                    let s = KQuantSearch.makeQxQuants(16, 32, x + 16 * ib, L + 16 * ib, rmseType: 1, qw: qw.map { UnsafePointer($0 + i * qk + 16 * ib) })
                    scales[ib] = s
                    if abs(s) > maxAbs { maxAbs = abs(s); maxScale = s }
                }
                if maxAbs < KQuantSearch.groupMaxEps {
                    storeU16(y, 208, fp16(0))
                    continue
                }
                let iscale = -128 / maxScale
                storeU16(y, 208, fp16(1 / iscale))
                for ib in 0..<16 {
                    y.storeBytes(of: Int8(truncatingIfNeeded: min(127, nearestInt(iscale * scales[ib]))), toByteOffset: 192 + ib, as: Int8.self)
                }
                let d0 = fromFP16(loadU16(y, 208))
                for j in 0..<16 {
                    let d = d0 * Float(y.load(fromByteOffset: 192 + j, as: Int8.self))
                    if d == 0 { continue }
                    for ii in 0..<16 {
                        let l = Int(nearestInt(x[16 * j + ii] / d))
                        L[16 * j + ii] = Int8(max(-32, min(31, l)) + 32)
                    }
                }
                for j in stride(from: 0, to: qk, by: 128) {
                    let ql = j / 2, qh = 128 + j / 4
                    for l in 0..<32 {
                        let q1 = UInt8(bitPattern: L[j + l]) & 0xF, q2 = UInt8(bitPattern: L[j + l + 32]) & 0xF
                        let q3 = UInt8(bitPattern: L[j + l + 64]) & 0xF, q4 = UInt8(bitPattern: L[j + l + 96]) & 0xF
                        set(y, ql + l, q1 | (q3 << 4))
                        set(y, ql + l + 32, q2 | (q4 << 4))
                        let h = (UInt8(bitPattern: L[j + l]) >> 4) | ((UInt8(bitPattern: L[j + l + 32]) >> 4) << 2)
                            | ((UInt8(bitPattern: L[j + l + 64]) >> 4) << 4) | ((UInt8(bitPattern: L[j + l + 96]) >> 4) << 6)
                        set(y, qh + l, h)
                    }
                }
            }
        }
        }
    }

    public static func dequantizeQ6K(_ y0: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, blocks: Int) {
        for i in 0..<blocks {
            let x = y0 + i * 210
            let d = fromFP16(loadU16(x, 208))
            for n in stride(from: 0, to: qk, by: 128) {
                let ql = n / 2, qh = 128 + n / 4, sc = 192 + n / 16
                let o = out + i * qk + n
                for l in 0..<32 {
                    let isc = l / 16
                    let h = get(x, qh + l)
                    let q1 = Int((get(x, ql + l) & 0xF) | (((h >> 0) & 3) << 4)) - 32
                    let q2 = Int((get(x, ql + l + 32) & 0xF) | (((h >> 2) & 3) << 4)) - 32
                    let q3 = Int((get(x, ql + l) >> 4) | (((h >> 4) & 3) << 4)) - 32
                    let q4 = Int((get(x, ql + l + 32) >> 4) | (((h >> 6) & 3) << 4)) - 32
                    let s = { (k: Int) in Float(x.load(fromByteOffset: sc + isc + k, as: Int8.self)) }
                    o[l] = d * s(0) * Float(q1)
                    o[l + 32] = d * s(2) * Float(q2)
                    o[l + 64] = d * s(4) * Float(q3)
                    o[l + 96] = d * s(6) * Float(q4)
                }
            }
        }
    }
}
