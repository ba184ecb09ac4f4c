import TensorCore

/// IQ4_NL (32-element blocks: f16 d, qs[16]) and IQ4_XS (256: f16 d, u16 scales_h, scales_l[4], qs[128]),
/// the non-linear 4-bit grid kvalues; and the ternary TQ1_0 (qs[48] qh[4] d) / TQ2_0 (qs[64] d).
/// Ports of ggml-quants.c's quantize_iq4_nl / quantize_iq4_xs (ntry 7, as llama-quantize calls them) and
/// quantize_row_tq*_ref.
public enum NonLinearQuants {
    public static let kvalues: [Int8] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]

    @inline(__always) static func bestIndex(_ v: UnsafePointer<Int8>, _ x: Float) -> Int {
        if x <= Float(v[0]) { return 0 }
        if x >= Float(v[15]) { return 15 }
        var ml = 0, mu = 15
        while mu - ml > 1 {
            let mav = (ml + mu) / 2
            if x < Float(v[mav]) { mu = mav } else { ml = mav }
        }
        return x - Float(v[mu - 1]) < Float(v[mu]) - x ? mu - 1 : mu
    }

    /// Trial scales evaluated side by side (one lane per try).
    static let tryLanes = 16

    /// The try loop of quantize_row_iq4_nl_impl (itry = −ntry … ntry) with all tries computed at once: each lane sums
    /// over j in the reference's order, then the tries are compared in the reference's order. Returns d.
    static func bestTrialScale(_ xb: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ values: UnsafePointer<Int8>,
                               ntry: Int, vmax: Float, d d0: Float, best best0: Float) -> Float {
        let lanes = tryLanes
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: 6 * lanes + 16) { buf in
            // [lanes] each: the try's 1/d, its two sums, and for the current value its scaled value and the nearest
            // grid entries below and above it; v [16]: the grid as floats
            let id = buf.baseAddress!, sumqx = id + lanes, sumq2 = sumqx + lanes
            let al = sumq2 + lanes, lo = al + lanes, hi = lo + lanes, v = hi + lanes
            for k in 0..<16 { v[k] = Float(values[k]) }
            for k in 0..<lanes {
                id[k] = Float(min(k, 2 * ntry) - ntry + Int(values[0])) / vmax  // spare lanes repeat the last try
                sumqx[k] = 0; sumq2[k] = 0
            }
            // bestIndex without branches: the largest entry ≤ x (else v[0]) and the smallest entry > x (else v[15]) by
            // selects, then bestIndex's own comparison (ties to the upper entry) — the same value at every x
            for j in 0..<32 {
                let xj = xb[j], wj = weight[j]
                for k in 0..<lanes { al[k] = id[k] * xj; lo[k] = v[0]; hi[k] = v[15] }
                for t in 1..<15 {
                    let vt = v[t]
                    for k in 0..<lanes { lo[k] = al[k] >= vt ? vt : lo[k] }
                }
                for t in stride(from: 14, through: 1, by: -1) {
                    let vt = v[t]
                    for k in 0..<lanes { hi[k] = al[k] < vt ? vt : hi[k] }
                }
                for k in 0..<lanes {
                    let q = al[k] - lo[k] < hi[k] - al[k] ? lo[k] : hi[k]
                    sumqx[k] += wj * q * xj
                    sumq2[k] += wj * q * q
                }
            }
            var d = d0, best = best0
            for k in 0...(2 * ntry) where sumq2[k] > 0 && sumqx[k] * sumqx[k] > best * sumq2[k] {
                d = sumqx[k] / sumq2[k]; best = d * sumqx[k]
            }
            return d
        }
    }

    /// L[j] = bestIndex(values, id · x[j]) for the 32 values of a sub-block, without branches so the loops vectorize:
    /// the index of the largest entry ≤ the value is the number of entries 1…14 it reaches (else 0), the candidate above
    /// it is the next entry, then bestIndex's own comparison (ties to the upper entry). The same index as bestIndex at
    /// finite input (the quantizer only sees finite values).
    static func bestIndices32(_ values: UnsafePointer<Int8>, _ id: Float, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<UInt8>) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * 32 + 16) { buf in
            let al = buf.baseAddress!, below = al + 32, v = below + 32  // [32] scaled values, [32] lower index; v [16] the grid
            for k in 0..<16 { v[k] = Float(values[k]) }
            for j in 0..<32 { al[j] = id * x[j]; below[j] = 0 }
            for t in 1..<15 {
                let vt = v[t]
                for j in 0..<32 { below[j] += al[j] >= vt ? 1 : 0 }
            }
            for j in 0..<32 {
                let l = Int(nearestInt(below[j]))
                L[j] = UInt8(truncatingIfNeeded: al[j] - v[l] < v[l + 1] - al[j] ? l : l + 1)
            }
        }
    }

    /// quantize_row_iq4_nl_impl for one super-block of `sbs` values in sub-blocks of 32.
    /// Writes d at `dOff`, the sub-block scales (IQ4_XS) and the packed nibbles at `qsOff`.
    static func iq4Block(_ sbs: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, dOff: Int, qsOff: Int,
                         scalesHOff: Int?, scalesLOff: Int?, qw: UnsafePointer<Float>?, ntry: Int,
                         scales: UnsafeMutablePointer<Float>, weight: UnsafeMutablePointer<Float>, L: UnsafeMutablePointer<UInt8>,
                         values: UnsafePointer<Int8>) {
        let bs = 32
        var sigma2: Float = 0
        for j in 0..<sbs { sigma2 += x[j] * x[j] }
        sigma2 *= 2 / Float(sbs)
        for j in 0..<(sbs / 2) { y.storeBytes(of: UInt8(0), toByteOffset: qsOff + j, as: UInt8.self) }
        storeU16(y, dOff, fp16(0))
        var maxScale: Float = 0, amaxScale: Float = 0
        let v0 = Float(values[0])
        for ib in 0..<(sbs / bs) {
            let xb = x + ib * bs
            let Lb = L + ib * bs
            if let qw {
                for j in 0..<bs { weight[j] = qw[ib * bs + j] * (sigma2 + xb[j] * xb[j]).squareRoot() }
            } else {
                for j in 0..<bs { weight[j] = xb[j] * xb[j] }
            }
            var amax: Float = 0, vmax: Float = 0
            for j in 0..<bs where abs(xb[j]) > amax { amax = abs(xb[j]); vmax = xb[j] }
            if amax < KQuantSearch.groupMaxEps {
                scales[ib] = 0
                continue
            }
            var d: Float = ntry > 0 ? -vmax / v0 : vmax / v0
            var id = 1 / d
            var sumqx: Float = 0, sumq2: Float = 0
            bestIndices32(values, id, xb, Lb)
            for j in 0..<bs {
                let l = Int(Lb[j])
                let q = Float(values[l]), w = weight[j]
                sumqx += w * q * xb[j]
                sumq2 += w * q * q
            }
            d = sumq2 > 0 ? sumqx / sumq2 : 0
            var best = d * sumqx
            if !KQuantSearch.scalarReference && 2 * ntry + 1 <= tryLanes {
                d = bestTrialScale(xb, weight, values, ntry: ntry, vmax: vmax, d: d, best: best)
            } else {
                for itry in stride(from: -ntry, through: ntry, by: 1) {
                    id = Float(itry + Int(values[0])) / vmax
                    sumqx = 0; sumq2 = 0
                    for j in 0..<bs {
                        let al = id * xb[j]
                        let l = bestIndex(values, al)
                        let q = Float(values[l]), w = weight[j]
                        sumqx += w * q * xb[j]
                        sumq2 += w * q * q
                    }
                    if sumq2 > 0 && sumqx * sumqx > best * sumq2 {
                        d = sumqx / sumq2; best = d * sumqx
                    }
                }
            }
            scales[ib] = d
            if abs(d) > amaxScale { amaxScale = abs(d); maxScale = d }
        }
        if sbs / bs > 1, let hOff = scalesHOff, let lOff = scalesLOff {
            let nb = sbs / bs
            storeU16(y, hOff, 0)
            for k in 0..<(nb / 2) { y.storeBytes(of: UInt8(0), toByteOffset: lOff + k, as: UInt8.self) }
            let d = -maxScale / 32
            storeU16(y, dOff, fp16(d))
            let id: Float = d != 0 ? 1 / d : 0
            var sh: UInt16 = 0
            for ib in 0..<nb {
                var l = Int(nearestInt(id * scales[ib]))
                l = max(-32, min(31, l))
                let dl = d * Float(l)
                let idl: Float = dl != 0 ? 1 / dl : 0
                let Lb = L + ib * bs, xb = x + ib * bs
                bestIndices32(values, idl, xb, Lb)
                l += 32
                let lLow = UInt8(l & 0xf), lHigh = UInt16(l >> 4)
                let o = lOff + ib / 2
                let prev = y.load(fromByteOffset: o, as: UInt8.self)
                y.storeBytes(of: ib % 2 == 0 ? lLow : prev | (lLow << 4), toByteOffset: o, as: UInt8.self)
                sh |= lHigh << (2 * (ib % 8))
            }
            storeU16(y, hOff, sh)
        } else {
            storeU16(y, dOff, fp16(scales[0]))
            if ntry > 0 {
                let id: Float = scales[0] != 0 ? 1 / scales[0] : 0
                for b in stride(from: 0, to: sbs, by: 32) { bestIndices32(values, id, x + b, L + b) }
            }
        }
        for i in 0..<(sbs / 32) {
            for j in 0..<16 {
                y.storeBytes(of: L[32 * i + j] | (L[32 * i + 16 + j] << 4), toByteOffset: qsOff + 16 * i + j, as: UInt8.self)
            }
        }
    }

    public static func quantizeIQ4NL(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int, qw: UnsafePointer<Float>?) {
        kvalues.withUnsafeBufferPointer { vals in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 40) { f in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { l in
                    for b in 0..<blocks {
                        iq4Block(32, x + 32 * b, y + 18 * b, dOff: 0, qsOff: 2, scalesHOff: nil, scalesLOff: nil,
                                 qw: qw.map { $0 + 32 * b }, ntry: 7, scales: f.baseAddress!, weight: f.baseAddress! + 8,
                                 L: l.baseAddress!, values: vals.baseAddress!)
                    }
                }
            }
        }
    }

    public static func quantizeIQ4XS(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int, qw: UnsafePointer<Float>?) {
        kvalues.withUnsafeBufferPointer { vals in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 40) { f in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { l in
                    for b in 0..<blocks {
                        iq4Block(256, x + 256 * b, y + 136 * b, dOff: 0, qsOff: 8, scalesHOff: 2, scalesLOff: 4,
                                 qw: qw.map { $0 + 256 * b }, ntry: 7, scales: f.baseAddress!, weight: f.baseAddress! + 8,
                                 L: l.baseAddress!, values: vals.baseAddress!)
                    }
                }
            }
        }
    }

    public static func dequantizeIQ4NL(_ y: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let x = y + 18 * b, o = out + 32 * b
            let d = fromFP16(loadU16(x, 0))
            for j in 0..<16 {
                let q = x.load(fromByteOffset: 2 + j, as: UInt8.self)
                o[j] = d * Float(kvalues[Int(q & 0xf)])
                o[j + 16] = d * Float(kvalues[Int(q >> 4)])
            }
        }
    }

    public static func dequantizeIQ4XS(_ y: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, blocks: Int) {
        for b in 0..<blocks {
            let x = y + 136 * b
            let d = fromFP16(loadU16(x, 0))
            let sh = loadU16(x, 2)
            for ib in 0..<8 {
                let sl = x.load(fromByteOffset: 4 + ib / 2, as: UInt8.self)
                let ls = Int((sl >> (4 * UInt8(ib % 2))) & 0xf) | (Int((sh >> (2 * UInt16(ib))) & 3) << 4)
                let dl = d * Float(ls - 32)
                let o = out + 256 * b + 32 * ib
                for j in 0..<16 {
                    let q = x.load(fromByteOffset: 8 + 16 * ib + j, as: UInt8.self)
                    o[j] = dl * Float(kvalues[Int(q & 0xf)])
                    o[j + 16] = dl * Float(kvalues[Int(q >> 4)])
                }
            }
        }
    }

    // MARK: ternary

    @inline(__always) static func trit(_ v: Float) -> Int { Int(v.rounded(.toNearestOrAwayFromZero)) + 1 }

    public static func quantizeTQ1_0(_ x0: UnsafePointer<Float>, _ y0: UnsafeMutableRawPointer, blocks: Int) {
        for i in 0..<blocks {
            var x = x0 + 256 * i
            let y = y0 + 54 * i
            var amax: Float = 0
            for j in 0..<256 { amax = max(amax, abs(x[j])) }
            let d = amax, id: Float = d != 0 ? 1 / d : 0
            storeU16(y, 52, fp16(d))
            func pack(_ count: Int, _ stride: Int, _ off: Int) {
                for m in 0..<stride {
                    var q = 0
                    for n in 0..<count { q = q * 3 + trit(x[m + n * stride] * id) }
                    if count == 4 { q *= 3 }
                    q = ((q & 0xff) * 256 + 242) / 243
                    y.storeBytes(of: UInt8(truncatingIfNeeded: q), toByteOffset: off + m, as: UInt8.self)
                }
            }
            pack(5, 32, 0); x += 160
            pack(5, 16, 32); x += 80
            pack(4, 4, 48)
        }
    }

    public static func dequantizeTQ1_0(_ y0: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, blocks: Int) {
        let pow3: [UInt8] = [1, 3, 9, 27, 81, 243]
        for i in 0..<blocks {
            let x = y0 + 54 * i
            let d = fromFP16(loadU16(x, 52))
            var o = out + 256 * i
            func unpack(_ off: Int, _ width: Int, _ count: Int) {
                for n in 0..<count {
                    for m in 0..<width {
                        let q = x.load(fromByteOffset: off + m, as: UInt8.self) &* pow3[n]
                        let xi = Int((UInt16(q) * 3) >> 8)
                        o[0] = Float(xi - 1) * d
                        o += 1
                    }
                }
            }
            unpack(0, 32, 5)
            unpack(32, 16, 5)
            unpack(48, 4, 4)
        }
    }

    public static func quantizeTQ2_0(_ x0: UnsafePointer<Float>, _ y0: UnsafeMutableRawPointer, blocks: Int) {
        for i in 0..<blocks {
            let x = x0 + 256 * i
            let y = y0 + 66 * i
            var amax: Float = 0
            for j in 0..<256 { amax = max(amax, abs(x[j])) }
            let d = amax, id: Float = d != 0 ? 1 / d : 0
            storeU16(y, 64, fp16(d))
            for j in stride(from: 0, to: 64, by: 32) {
                for m in 0..<32 {
                    var q = 0
                    for n in 0..<4 { q += (trit(x[4 * j + m + n * 32] * id) & 3) << (2 * n) }
                    y.storeBytes(of: UInt8(truncatingIfNeeded: q), toByteOffset: j + m, as: UInt8.self)
                }
            }
        }
    }

    public static func dequantizeTQ2_0(_ y0: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, blocks: Int) {
        for i in 0..<blocks {
            let x = y0 + 66 * i
            let d = fromFP16(loadU16(x, 64))
            var o = out + 256 * i
            for j in stride(from: 0, to: 64, by: 32) {
                for l in 0..<4 {
                    for m in 0..<32 {
                        let q = Int((x.load(fromByteOffset: j + m, as: UInt8.self) >> (2 * UInt8(l))) & 3)
                        o[0] = Float(q - 1) * d
                        o += 1
                    }
                }
            }
        }
    }
}
