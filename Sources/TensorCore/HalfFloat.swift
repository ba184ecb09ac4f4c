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

    /// Rounds through f16 and back (the value an f16 tensor stores).
    @inlinable public static func roundF16(_ x: Float) -> Float { Float(Float16(x)) }
}
