/// exp(x) in f32 without a libm call, so loops over it vectorize (softmax, SiLU, log-sum-exp): Cody–Waite range
/// reduction x = n·ln2 + r with |r| ≤ ln2/2, a degree-6 polynomial for eʳ (Cephes' expf coefficients), and 2ⁿ built
/// in the exponent bits. Relative error below 2·10⁻⁷ on the clamped range [−87.3, 88.7] (tested against
/// Foundation's exp); inputs below the range give e^−87.3 ≈ 1.2·10⁻³⁸ rather than a subnormal or 0, inputs above
/// it e^88.7. ggml's vectorized softmax and SiLU use the same kind of approximation.
public enum FastExp {
    @inlinable @inline(__always) public static func exp(_ x0: Float) -> Float {
        let x = min(88.7, max(-87.3, x0))
        let magic: Float = 12_582_912  // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits
        let t = x * 1.442_695_04 + magic
        let n = t - magic                             // round(x / ln2)
        let r = (x - n * 0.693_359_375) + n * 2.121_944_4e-4  // x − n·ln2, ln2 split in two parts
        var p: Float = 1.987_569_15e-4
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_12e-1
        let er = p * r * r + r + 1
        let k = Int32(bitPattern: t.bitPattern & 0x7f_ffff) &- 0x40_0000  // n as an integer, −126 … 128
        // 2ⁿ as two factors so n = 128 (x near 88.7) does not overflow the exponent field
        let half = k >> 1
        let s1 = Float(bitPattern: UInt32(bitPattern: (half &+ 127) << 23))
        let s2 = Float(bitPattern: UInt32(bitPattern: (k &- half &+ 127) << 23))
        return er * s1 * s2
    }

    /// y[i] = exp(x[i]) for `count` values (x and y may be the same buffer).
    @inlinable public static func exp(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] = exp(x[i]) }
    }
}
