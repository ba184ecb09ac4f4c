/// Exact conversions between f32 and the two 16-bit float formats.
/// f16 uses Swift's `Float16` (IEEE binary16, round-to-nearest-even, like GGML_FP32_TO_FP16).
/// bf16 is the top half of an f32; narrowing rounds to nearest even and keeps NaN quiet (as gguf-py and torch do).
public enum HalfFloat {
    @inlinable public static func f16ToF32(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

    @inlinable public static func f32ToF16(_ x: Float) -> UInt16 { Float16(x).bitPattern }

    @inlinable public static func bf16ToF32(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    @inlinable public static func f32ToBF16(_ x: Float) -> UInt16 {
        var n = x.bitPattern
        if n & 0x7fff_ffff > 0x7f80_0000 {  // NaN: force quiet
            n = (n & 0xffff_0000) | (64 << 16)
        }
        let rounded = (UInt64(n) + UInt64(0x7fff + ((n >> 16) & 1))) >> 16
        return UInt16(truncatingIfNeeded: rounded)
    }

    /// f32 → f16 bits, round-to-nearest-even, without branches on the value (vectorizes; same results as
    /// `Float16(x)`, including subnormals, overflow to Inf and quiet NaN). The classic float-arithmetic method:
    /// scale so the hardware rounds the mantissa, then assemble the bits.
    @inlinable public static func f32ToF16Fast(_ x: Float) -> UInt16 {
        let w = x.bitPattern
        let shl1 = w &+ w
        let sign = w & 0x8000_0000
        var bias = shl1 & 0xFF00_0000
        bias = bias < 0x7100_0000 ? 0x7100_0000 : bias
        var base = (abs(x) * Float(bitPattern: 0x7780_0000)) * Float(bitPattern: 0x0880_0000)  // ×2^112, ×2^-110
        base = Float(bitPattern: (bias >> 1) &+ 0x0780_0000) + base
        let bits = base.bitPattern
        let nonsign = ((bits >> 13) & 0x7C00) &+ (bits & 0x0FFF)
        return UInt16(truncatingIfNeeded: (sign >> 16) | (shl1 > 0xFF00_0000 ? 0x7E00 : nonsign))
    }

    /// f16 bits → f32 without branches on the value (same results as `Float(Float16(bitPattern:))`).
    @inlinable public static func f16ToF32Fast(_ h: UInt16) -> Float {
        let w = UInt32(h) << 16
        let sign = w & 0x8000_0000
        let two_w = w &+ w
        let normalized = Float(bitPattern: (two_w >> 4) &+ (0xE0 << 23)) * Float(bitPattern: 0x0780_0000)  // ×2^-112
        let denormalized = Float(bitPattern: (two_w >> 17) | (126 << 23)) - 0.5
        let bits = sign | (two_w < (1 << 27) ? denormalized.bitPattern : normalized.bitPattern)
        return Float(bitPattern: bits)
    }

    /// Rounds through f16 and back (the value an f16 tensor stores).
    @inlinable public static func roundF16(_ x: Float) -> Float { Float(Float16(x)) }
}
