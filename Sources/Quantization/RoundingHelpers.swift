import TensorCore

/// C's `(int8_t)f` for the finite values the reference quantizers produce (truncation toward zero);
/// out-of-range inputs clamp instead of trapping.
@inline(__always) func truncInt8(_ f: Float) -> Int32 {
    if !(f > -129) { return -128 }
    if !(f < 128) { return 127 }
    return Int32(f)  // Float → Int32 conversion truncates toward zero, like C's cast
}

/// ggml's `nearest_int`: add 1.5·2²³ and read the mantissa, which rounds half to even for |f| ≤ 4194303
/// (the range ggml asserts); the same bit trick, so no conversion checks in the hot loops.
@inline(__always) func nearestInt(_ f: Float) -> Int32 {
    let v = f + 12_582_912
    return Int32(bitPattern: v.bitPattern & 0x007f_ffff) &- 0x0040_0000
}

/// C's `roundf`: round half away from zero. Branch-free and exact for |f| < 2²³ (the quantizers' range), as gguf-py
/// computes it: floor(a) + floor(2·(a − floor(a))) with a = |f|, then f's sign.
@inline(__always) func roundAway(_ f: Float) -> Float {
    let a = abs(f)
    guard a < 8_388_608 else { return f }
    let fl = Float(Int32(a))               // floor, a ≥ 0
    let b = fl + Float(Int32(2 * (a - fl)))  // + 1 when the fraction is at least one half
    return Float(signOf: f, magnitudeOf: b)
}

@inline(__always) func fp16(_ f: Float) -> UInt16 { HalfFloat.f32ToF16Fast(f) }  // bit-identical to Float16(f) (tested)
@inline(__always) func fromFP16(_ b: UInt16) -> Float { HalfFloat.f16ToF32Fast(b) }

@inline(__always) func storeU16(_ p: UnsafeMutableRawPointer, _ off: Int, _ v: UInt16) {
    p.storeBytes(of: v.littleEndian, toByteOffset: off, as: UInt16.self)
}

@inline(__always) func loadU16(_ p: UnsafeRawPointer, _ off: Int) -> UInt16 {
    UInt16(littleEndian: p.loadUnaligned(fromByteOffset: off, as: UInt16.self))
}

@inline(__always) func loadU32(_ p: UnsafeRawPointer, _ off: Int) -> UInt32 {
    UInt32(littleEndian: p.loadUnaligned(fromByteOffset: off, as: UInt32.self))
}
