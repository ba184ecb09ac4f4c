import TensorCore

/// C's `(int8_t)f` for the finite values the reference quantizers produce (truncation toward zero);
/// out-of-range inputs clamp instead of trapping.
@inline(__always) func truncInt8(_ f: Float) -> Int32 {
    if !(f > -129) { return -128 }
    if !(f < 128) { return 127 }
    return Int32(f.rounded(.towardZero))
}

/// ggml's `nearest_int`: round half to even.
@inline(__always) func nearestInt(_ f: Float) -> Int32 {
    if !(abs(f) < 4_194_303) { return f > 0 ? 4_194_303 : -4_194_303 }
    return Int32(f.rounded(.toNearestOrEven))
}

/// C's `roundf`: round half away from zero.
@inline(__always) func roundAway(_ f: Float) -> Float { f.rounded(.toNearestOrAwayFromZero) }

@inline(__always) func fp16(_ f: Float) -> UInt16 { HalfFloat.f32ToF16(f) }
@inline(__always) func fromFP16(_ b: UInt16) -> Float { HalfFloat.f16ToF32(b) }

@inline(__always) func storeU16(_ p: UnsafeMutableRawPointer, _ off: Int, _ v: UInt16) {
    p.storeBytes(of: v.littleEndian, toByteOffset: off, as: UInt16.self)
}

@inline(__always) func loadU16(_ p: UnsafeRawPointer, _ off: Int) -> UInt16 {
    UInt16(littleEndian: p.loadUnaligned(fromByteOffset: off, as: UInt16.self))
}

@inline(__always) func loadU32(_ p: UnsafeRawPointer, _ off: Int) -> UInt32 {
    UInt32(littleEndian: p.loadUnaligned(fromByteOffset: off, as: UInt32.self))
}
