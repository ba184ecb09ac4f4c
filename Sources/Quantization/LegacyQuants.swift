import TensorCore

/// The 32-element ggml block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): the `quantize_row_*_ref` routines of
/// ggml-quants.c, which llama-quantize uses when there is no importance matrix, and their dequantizers.
///
/// The float expressions keep the reference's order and are not fused: llama-quantize runs these routines from
/// ggml-base, which is built without -march flags, so GCC cannot contract `x*id + 8.5f` into an FMA (the golden
/// files confirm it byte for byte).
public enum LegacyQuants {
    @inline(__always) static func madd(_ a: Float, _ b: Float, _ c: Float) -> Float { a * b + c }

    // MARK: Q4_0: f16 d; u8 qs[16]; x = d·(q−8)

    public static func quantizeQ4_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        for i in 0..<blocks {
            let xb = x + 32 * i, yb = y + 18 * i
            var amax: Float = 0, vmax: Float = 0
            for j in 0..<32 where amax < abs(xb[j]) { amax = abs(xb[j]); vmax = xb[j] }
            let d = vmax / -8
            let id: Float = d != 0 ? 1 / d : 0
            storeU16(yb, 0, fp16(d))
            for j in 0..<16 {
                let q0 = min(15, truncInt8(madd(xb[j], id, 8.5)))
                let q1 = min(15, truncInt8(madd(xb[j + 16], id, 8.5)))
                yb.storeBytes(of: UInt8(truncatingIfNeeded: q0 | (q1 << 4)), toByteOffset: 2 + j, as: UInt8.self)
            }
        }
    }

    public static func dequantizeQ4_0(_ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        for i in 0..<blocks {
            let yb = y + 18 * i, xb = x + 32 * i
            let d = fromFP16(loadU16(yb, 0))
            for j in 0..<16 {
                let b = yb.load(fromByteOffset: 2 + j, as: UInt8.self)
                xb[j] = Float(Int32(b & 15) - 8) * d
                xb[j + 16] = Float(Int32(b >> 4) - 8) * d
            }
        }
    }

    // MARK: Q4_1: f16 d, m; u8 qs[16]; x = d·q + m

    public static func quantizeQ4_1(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        for i in 0..<blocks {
            let xb = x + 32 * i, yb = y + 20 * i
            var vmin = Float.greatestFiniteMagnitude, vmax = -Float.greatestFiniteMagnitude
            for j in 0..<32 {
                if xb[j] < vmin { vmin = xb[j] }
                if xb[j] > vmax { vmax = xb[j] }
            }
            let d = (vmax - vmin) / 15
            let id: Float = d != 0 ? 1 / d : 0
            storeU16(yb, 0, fp16(d))
            storeU16(yb, 2, fp16(vmin))
            for j in 0..<16 {
                let q0 = min(15, truncInt8(madd(xb[j] - vmin, id, 0.5)))
                let q1 = min(15, truncInt8(madd(xb[j + 16] - vmin, id, 0.5)))
                yb.storeBytes(of: UInt8(truncatingIfNeeded: q0 | (q1 << 4)), toByteOffset: 4 + j, as: UInt8.self)
            }
        }
    }

    public static func dequantizeQ4_1(_ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        for i in 0..<blocks {
            let yb = y + 20 * i, xb = x + 32 * i
            let d = fromFP16(loadU16(yb, 0)), m = fromFP16(loadU16(yb, 2))
            for j in 0..<16 {
                let b = yb.load(fromByteOffset: 4 + j, as: UInt8.self)
                xb[j] = Float(b & 15) * d + m
                xb[j + 16] = Float(b >> 4) * d + m
            }
        }
    }

    // MARK: Q5_0: f16 d; u32 qh; u8 qs[16]; x = d·(q−16)

    public static func quantizeQ5_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        for i in 0..<blocks {
            let xb = x + 32 * i, yb = y + 22 * i
            var amax: Float = 0, vmax: Float = 0
            for j in 0..<32 where amax < abs(xb[j]) { amax = abs(xb[j]); vmax = xb[j] }
            let d = vmax / -16
            let id: Float = d != 0 ? 1 / d : 0
            storeU16(yb, 0, fp16(d))
            var qh: UInt32 = 0
            for j in 0..<16 {
                let q0 = min(31, truncInt8(madd(xb[j], id, 16.5)))
                let q1 = min(31, truncInt8(madd(xb[j + 16], id, 16.5)))
                yb.storeBytes(of: UInt8(truncatingIfNeeded: (q0 & 15) | ((q1 & 15) << 4)), toByteOffset: 6 + j, as: UInt8.self)
                qh |= UInt32((q0 & 0x10) >> 4) << j
                qh |= UInt32((q1 & 0x10) >> 4) << (j + 16)
            }
            yb.storeBytes(of: qh.littleEndian, toByteOffset: 2, as: UInt32.self)
        }
    }

    public static func dequantizeQ5_0(_ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        for i in 0..<blocks {
            let yb = y + 22 * i, xb = x + 32 * i
            let d = fromFP16(loadU16(yb, 0))
            let qh = loadU32(yb, 2)
            for j in 0..<16 {
                let b = yb.load(fromByteOffset: 6 + j, as: UInt8.self)
                let h0 = Int32((qh >> j) & 1) << 4, h1 = Int32((qh >> (j + 16)) & 1) << 4
                xb[j] = Float((Int32(b & 15) | h0) - 16) * d
                xb[j + 16] = Float((Int32(b >> 4) | h1) - 16) * d
            }
        }
    }

    // MARK: Q5_1: f16 d, m; u32 qh; u8 qs[16]; x = d·q + m

    public static func quantizeQ5_1(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        for i in 0..<blocks {
            let xb = x + 32 * i, yb = y + 24 * i
            var vmin = Float.greatestFiniteMagnitude, vmax = -Float.greatestFiniteMagnitude
            for j in 0..<32 {
                if xb[j] < vmin { vmin = xb[j] }
                if xb[j] > vmax { vmax = xb[j] }
            }
            let d = (vmax - vmin) / 31
            let id: Float = d != 0 ? 1 / d : 0
            storeU16(yb, 0, fp16(d))
            storeU16(yb, 2, fp16(vmin))
            var qh: UInt32 = 0
            for j in 0..<16 {
                // (uint8_t)(x0 + 0.5f): no clamp in the reference.
                let q0 = truncInt8(madd(xb[j] - vmin, id, 0.5)) & 0xff
                let q1 = truncInt8(madd(xb[j + 16] - vmin, id, 0.5)) & 0xff
                yb.storeBytes(of: UInt8(truncatingIfNeeded: (q0 & 15) | ((q1 & 15) << 4)), toByteOffset: 8 + j, as: UInt8.self)
                qh |= UInt32((q0 & 0x10) >> 4) << j
                qh |= UInt32((q1 & 0x10) >> 4) << (j + 16)
            }
            yb.storeBytes(of: qh.littleEndian, toByteOffset: 4, as: UInt32.self)
        }
    }

    public static func dequantizeQ5_1(_ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        for i in 0..<blocks {
            let yb = y + 24 * i, xb = x + 32 * i
            let d = fromFP16(loadU16(yb, 0)), m = fromFP16(loadU16(yb, 2))
            let qh = loadU32(yb, 4)
            for j in 0..<16 {
                let b = yb.load(fromByteOffset: 8 + j, as: UInt8.self)
                let h0 = UInt32((qh >> j) & 1) << 4, h1 = UInt32((qh >> (j + 16)) & 1) << 4
                xb[j] = Float(UInt32(b & 15) | h0) * d + m
                xb[j + 16] = Float(UInt32(b >> 4) | h1) * d + m
            }
        }
    }

    // MARK: Q8_0: f16 d; i8 qs[32]; x = d·q

    public static func quantizeQ8_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        for i in 0..<blocks {
            let xb = x + 32 * i, yb = y + 34 * i
            var amax: Float = 0
            for j in 0..<32 { amax = max(amax, abs(xb[j])) }
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            storeU16(yb, 0, fp16(d))
            for j in 0..<32 {
                let q = Int8(clamping: Int32(max(-128, min(127, roundAway(xb[j] * id)))))
                yb.storeBytes(of: q, toByteOffset: 2 + j, as: Int8.self)
            }
        }
    }

    public static func dequantizeQ8_0(_ y: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks: Int) {
        for i in 0..<blocks {
            let yb = y + 34 * i, xb = x + 32 * i
            let d = fromFP16(loadU16(yb, 0))
            for j in 0..<32 { xb[j] = Float(yb.load(fromByteOffset: 2 + j, as: Int8.self)) * d }
        }
    }
}
