import TensorCore

/// Importance-weighted Q4_0, Q4_1, Q5_0, Q5_1 (quantize_row_q*_impl of ggml-quants.c): one row at a time,
/// weights w_j = qw_j·sqrt(σ² + x_j²) with σ² = Σx²/n over the row.
extension LegacyQuants {
    static func rowSigma2(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var s: Float = 0
        for j in 0..<n { s += x[j] * x[j] }
        return s / Float(n)
    }

    /// qs[j] = L[j] | L[j+16] << 4 (32 levels of 4 bits).
    static func packNibbles(_ L: UnsafePointer<UInt8>, _ yb: UnsafeMutableRawPointer, qsOffset: Int) {
        for j in 0..<16 { yb.storeBytes(of: L[j] | (L[j + 16] << 4), toByteOffset: qsOffset + j, as: UInt8.self) }
    }

    /// 5-bit levels: low nibbles as packNibbles, bit 4 of level j in bit j of the u32 qh.
    static func packFiveBit(_ L: UnsafePointer<UInt8>, _ yb: UnsafeMutableRawPointer, qhOffset: Int, qsOffset: Int) {
        var qh: UInt32 = 0
        for j in 0..<16 {
            let a = L[j], b = L[j + 16]
            yb.storeBytes(of: (a & 0x0F) | ((b & 0x0F) << 4), toByteOffset: qsOffset + j, as: UInt8.self)
            qh |= UInt32((a & 0x10) >> 4) << j
            qh |= UInt32((b & 0x10) >> 4) << (j + 16)
        }
        yb.storeBytes(of: qh.littleEndian, toByteOffset: qhOffset, as: UInt32.self)
    }

    /// One row of `n` values; `symmetric` selects Q4_0/Q5_0 (make_qx_quants) vs Q4_1/Q5_1 (make_qkx3_quants).
    static func quantizeWeightedRow(_ type: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, n: Int, qw: UnsafePointer<Float>) {
        let sigma2 = rowSigma2(x, n)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { wb in
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { lb in
            let weight = wb.baseAddress!, L = lb.baseAddress!, Laux = L + 32
            for ib in 0..<(n / 32) {
                let xb = x + 32 * ib, q = qw + 32 * ib
                for j in 0..<32 { weight[j] = q[j] * (sigma2 + xb[j] * xb[j]).squareRoot() }
                switch type {
                case 40, 50:  // Q4_0, Q5_0
                    let nmax = type == 40 ? 8 : 16
                    let yb = y + (type == 40 ? 18 : 22) * ib
                    let d = L.withMemoryRebound(to: Int8.self, capacity: 32) {
                        KQuantSearch.makeQxQuants(32, nmax, xb, $0, rmseType: 1, qw: UnsafePointer(weight))
                    }
                    storeU16(yb, 0, fp16(d))
                    if type == 40 { packNibbles(L, yb, qsOffset: 2) } else { packFiveBit(L, yb, qhOffset: 2, qsOffset: 6) }
                default:  // 41, 51: Q4_1, Q5_1
                    let nmax = type == 41 ? 15 : 31
                    let yb = y + (type == 41 ? 20 : 24) * ib
                    var vmin: Float = 0
                    let d = KQuantSearch.makeQkxQuants(32, nmax, xb, weight, L, &vmin, Laux, rmin: -0.9, rdelta: 0.05, nstep: 36,
                                                       useMad: false, qkx3: true)
                    storeU16(yb, 0, fp16(d))
                    storeU16(yb, 2, fp16(-vmin))
                    if type == 41 { packNibbles(L, yb, qsOffset: 4) } else { packFiveBit(L, yb, qhOffset: 4, qsOffset: 8) }
                }
            }
        }
        }
    }
}
