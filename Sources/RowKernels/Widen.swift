/// Lane conversions the kernels use, spelled as element loops inlined at each call: the standard library's generic
/// SIMD conversions become out-of-line calls once several kernels use the same one (LLVM's inlining is by call count),
/// which cost Q8_0 rows 5× (17.9 → 3.7 GB/s). Inlined, each loop is one vector instruction.
enum Widen {
    @inline(__always) static func int32(_ v: SIMD8<Int8>) -> SIMD8<Int32> {
        var r = SIMD8<Int32>()
        for i in 0..<8 { r[i] = Int32(v[i]) }
        return r
    }

    @inline(__always) static func int32(_ v: SIMD8<UInt8>) -> SIMD8<Int32> {
        var r = SIMD8<Int32>()
        for i in 0..<8 { r[i] = Int32(v[i]) }
        return r
    }

    @inline(__always) static func uint32(_ v: SIMD8<UInt16>) -> SIMD8<UInt32> {
        var r = SIMD8<UInt32>()
        for i in 0..<8 { r[i] = UInt32(v[i]) }
        return r
    }

    @inline(__always) static func float(_ v: SIMD8<Int32>) -> SIMD8<Float> {
        var r = SIMD8<Float>()
        for i in 0..<8 { r[i] = Float(v[i]) }
        return r
    }

    @inline(__always) static func float(_ v: SIMD4<Int32>) -> SIMD4<Float> {
        var r = SIMD4<Float>()
        for i in 0..<4 { r[i] = Float(v[i]) }
        return r
    }

    @inline(__always) static func int32(_ v: SIMD16<Int16>) -> SIMD16<Int32> {
        var r = SIMD16<Int32>()
        for i in 0..<16 { r[i] = Int32(v[i]) }
        return r
    }

    /// a · b lane by lane in 32 bits, added to acc: when only the sum of acc's lanes is used, LLVM makes this one
    /// pmaddwd (vpdpwssd with AVX512-VNNI) per 16 lanes.
    @inline(__always) static func multiplyAdd(_ acc: inout SIMD16<Int32>, _ a: SIMD16<Int16>, _ b: SIMD16<Int16>) {
        acc &+= int32(a) &* int32(b)
    }
}
