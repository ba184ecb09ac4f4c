import TensorCore

/// Element types of safetensors files.
public enum DType: String, CaseIterable, Sendable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"
    case f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"

    public var size: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool, .f8e4m3, .f8e5m2: return 1
        }
    }

    public var isFloat: Bool { self == .f32 || self == .f16 || self == .bf16 || self == .f64 }
}

/// Converts `count` elements of a float dtype to f32 (exact for F16, BF16, F32; F64 rounds).
public func convertToF32(_ src: UnsafeRawBufferPointer, dtype: DType, count: Int, into dst: UnsafeMutablePointer<Float>) throws {
    switch dtype {
    case .f32:
        for i in 0..<count { dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
    case .f16:
        for i in 0..<count { dst[i] = HalfFloat.f16ToF32Fast(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
    case .bf16:
        for i in 0..<count { dst[i] = HalfFloat.bf16ToF32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
    case .f64:
        for i in 0..<count { dst[i] = Float(Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
    default:
        throw QKError("cannot read \(dtype.rawValue) as floating point")
    }
}
