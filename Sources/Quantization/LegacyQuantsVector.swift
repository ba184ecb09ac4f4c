import TensorCore

/// Branch-free encoders for the legacy block types, bit-identical to the scalar reference routines in LegacyQuants
/// (tested on random, tied, tiny and huge rows). The same float operations in the same order, written without
/// conversion traps or data-dependent branches so that LLVM vectorizes each 32-value loop (Swift's SIMD types
/// compile to per-lane code here, plain loops do not).
extension LegacyQuants {
    /// The bits of |f|: for non-negative floats, integer order is float order, so max over these bits vectorizes.
    @inline(__always) static func absBits(_ f: Float) -> UInt32 { f.bitPattern & 0x7fff_ffff }

    /// floor(a) for 0 ≤ a < 2²²: round to nearest with the 1.5·2²³ trick, one down where that rounded up.
    @inline(__always) static func floorNonNegative(_ a: Float) -> Float {
        let r = (a + 12_582_912) - 12_582_912
        return r > a ? r - 1 : r
    }

    /// C's roundf for |f| < 2²² (as `roundAway`): floor of the magnitude, +1 when the fraction is at least ½, sign.
    @inline(__always) static func roundAwaySmall(_ f: Float) -> Float {
        let a = Float(bitPattern: absBits(f))
        let fl = floorNonNegative(a)
        let r = a - fl >= 0.5 ? fl + 1 : fl
        return f < 0 ? -r : r
    }

    /// Q8_0, as `quantizeQ8_0`.
    public static func quantizeQ8_0Vector(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        for i in 0..<blocks {
            let xb = x + 32 * i, yb = (y + 34 * i)
            var m: UInt32 = 0
            for j in 0..<32 { m = max(m, absBits(xb[j])) }
            let d = Float(bitPattern: m) / 127
            let id: Float = d != 0 ? 1 / d : 0
            storeU16(yb, 0, fp16(d))
            let qs = (yb + 2).assumingMemoryBound(to: UInt8.self)
            for j in 0..<32 {
                let r = min(127, max(-128, roundAwaySmall(xb[j] * id)))
                qs[j] = UInt8(truncatingIfNeeded: nearestInt(r))
            }
        }
    }

    /// Q4_0, as `quantizeQ4_0`: the scale comes from the first value of largest magnitude, with its sign.
    public static func quantizeQ4_0Vector(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, blocks: Int) {
        for i in 0..<blocks {
            let xb = x + 32 * i, yb = y + 18 * i
            var m: UInt32 = 0
            for j in 0..<32 { m = max(m, absBits(xb[j])) }
            var vmax: Float = 0
            if m != 0 { for j in 0..<32 where absBits(xb[j]) == m { vmax = xb[j]; break } }
            let d = vmax / -8
            let id: Float = d != 0 ? 1 / d : 0
            storeU16(yb, 0, fp16(d))
            // (int8_t)(x·id + 8.5) of a value in [0.5, 16.5] is its floor; then at most 15
            let qs = (yb + 2).assumingMemoryBound(to: UInt8.self)
            for j in 0..<16 {
                let q0 = nearestInt(min(15, floorNonNegative(xb[j] * id + 8.5)))
                let q1 = nearestInt(min(15, floorNonNegative(xb[j + 16] * id + 8.5)))
                qs[j] = UInt8(truncatingIfNeeded: q0 | (q1 << 4))
            }
        }
    }
}
