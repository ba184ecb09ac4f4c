import Foundation
import ModelFormats
import TensorCore

/// Encodes f32 rows into ggml block types and decodes them back.
public enum GGMLCodec {
    /// Types `quantize` can write.
    public static let encodable: Set<GGMLType> = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0,
                                                  .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq4_NL, .iq4_XS, .tq1_0, .tq2_0]
    /// Types `dequantize` can read (Q8_K only appears inside ggml's dot products, but is cheap to read).
    public static let decodable: Set<GGMLType> = encodable.union([.q8_K])

    /// Types whose quantizer uses an importance matrix (Q8_0 and the ternary types ignore it, as in ggml).
    public static let usesImatrix: Set<GGMLType> = [.q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq4_NL, .iq4_XS]

    /// Encodes `rows` rows of `rowLength` values, like ggml_quantize_chunk: with `imatrix` (one weight per column)
    /// the importance-weighted routine, else the reference one. Rows are independent, so the work is split over
    /// threads in contiguous row ranges and the bytes do not depend on the thread count.
    public static func quantize(_ type: GGMLType, _ x: UnsafePointer<Float>, rows: Int, rowLength: Int,
                                imatrix: UnsafePointer<Float>? = nil, into y: UnsafeMutableRawPointer) throws {
        try checkEncodable(type, rowLength: rowLength)
        let rowBytes = type.rowBytes(rowLength)
        let blocksPerRow = rowLength / type.blockSize
        nonisolated(unsafe) let src = UnsafeMutablePointer(mutating: x)
        nonisolated(unsafe) let dst = y
        Parallel.forRows(rows, rowLength: rowLength) { r in
            encodeRows(type, UnsafePointer(src + r.lowerBound * rowLength), rows: r.count, rowLength: rowLength, imatrix: imatrix,
                       into: dst + r.lowerBound * rowBytes)
        }
        if let bad = firstNonFiniteScale(type, UnsafeRawPointer(y), blocks: rows * blocksPerRow) {
            throw scaleValidationError(type, block: bad)
        }
    }

    /// Checks that `quantize`/`encodeRows` can write `type` with rows of `rowLength`.
    public static func checkEncodable(_ type: GGMLType, rowLength: Int) throws {
        guard encodable.contains(type) else { throw QKError("quantizing to \(type.name) is not supported") }
        guard rowLength % type.blockSize == 0 else {
            throw QKError("row length \(rowLength) is not a multiple of \(type.name)'s block size \(type.blockSize)")
        }
    }

    /// The error for a block whose f16 scale overflowed (ggml_validate_row_data's check).
    public static func scaleValidationError(_ type: GGMLType, block: Int) -> QKError {
        QKError("quantized data validation failed: \(type.name) block \(block) has a non-finite scale (values exceed the f16 range)")
    }

    /// True for `scaleValidationError`'s error (a block beyond its f16 scale's range).
    public static func isScaleOverflow(_ e: Error) -> Bool {
        (e as? QKError)?.message.hasPrefix("quantized data validation failed:") == true
    }

    /// Encodes `rows` consecutive rows on the calling thread (the caller checked `checkEncodable`); with `imatrix`
    /// (one weight per column) and a type that uses it, row by row through the importance-weighted routine.
    public static func encodeRows(_ type: GGMLType, _ x: UnsafePointer<Float>, rows: Int, rowLength: Int,
                                  imatrix: UnsafePointer<Float>?, into y: UnsafeMutableRawPointer) {
        if let qw = usesImatrix.contains(type) ? imatrix : nil {
            let rowBytes = type.rowBytes(rowLength)
            for row in 0..<rows {
                quantizeRows(type, x + row * rowLength, y + row * rowBytes, rowLength: rowLength, rows: 1, qw: qw)
            }
        } else {
            quantizeRows(type, x, y, rowLength: rowLength, rows: rows, qw: nil)
        }
    }

    /// Encodes consecutive rows; `qw` (one row's worth of weights) only with rows == 1.
    static func quantizeRows(_ type: GGMLType, _ xr: UnsafePointer<Float>, _ yr: UnsafeMutableRawPointer, rowLength: Int, rows: Int,
                             qw: UnsafePointer<Float>?) {
        let n = rows * rowLength, nb = n / type.blockSize
        switch type {
        case .f32: yr.copyMemory(from: xr, byteCount: 4 * n)
        case .f16: for k in 0..<n { storeU16(yr, 2 * k, HalfFloat.f32ToF16Fast(xr[k])) }
        case .bf16: for k in 0..<n { storeU16(yr, 2 * k, HalfFloat.f32ToBF16(xr[k])) }
        case .q8_0: LegacyQuants.quantizeQ8_0Vector(xr, yr, blocks: nb)
        case .q4_0: if let qw { LegacyQuants.quantizeWeightedRow(40, xr, yr, n: n, qw: qw) } else { LegacyQuants.quantizeQ4_0Vector(xr, yr, blocks: nb) }
        case .q4_1: if let qw { LegacyQuants.quantizeWeightedRow(41, xr, yr, n: n, qw: qw) } else { LegacyQuants.quantizeQ4_1(xr, yr, blocks: nb) }
        case .q5_0: if let qw { LegacyQuants.quantizeWeightedRow(50, xr, yr, n: n, qw: qw) } else { LegacyQuants.quantizeQ5_0(xr, yr, blocks: nb) }
        case .q5_1: if let qw { LegacyQuants.quantizeWeightedRow(51, xr, yr, n: n, qw: qw) } else { LegacyQuants.quantizeQ5_1(xr, yr, blocks: nb) }
        case .q2_K: KQuants.quantizeQ2K(xr, yr, blocks: nb, qw: qw)
        case .q3_K: KQuants.quantizeQ3K(xr, yr, blocks: nb, qw: qw)
        case .q4_K: KQuants.quantizeQ4K(xr, yr, blocks: nb, qw: qw)
        case .q5_K: KQuants.quantizeQ5K(xr, yr, blocks: nb, qw: qw)
        case .q6_K: KQuants.quantizeQ6K(xr, yr, blocks: nb, qw: qw)
        case .iq4_NL: NonLinearQuants.quantizeIQ4NL(xr, yr, blocks: nb, qw: qw)
        case .iq4_XS: NonLinearQuants.quantizeIQ4XS(xr, yr, blocks: nb, qw: qw)
        case .tq1_0: NonLinearQuants.quantizeTQ1_0(xr, yr, blocks: nb)
        case .tq2_0: NonLinearQuants.quantizeTQ2_0(xr, yr, blocks: nb)
        default: break
        }
    }

    public static func quantize(_ type: GGMLType, _ x: [Float], rowLength: Int, imatrix: [Float]? = nil) throws -> [UInt8] {
        guard rowLength > 0, x.count % rowLength == 0 else { throw QKError("\(x.count) values are not whole rows of \(rowLength)") }
        if let im = imatrix, im.count != rowLength { throw QKError("importance matrix has \(im.count) values for rows of \(rowLength)") }
        let rows = x.count / rowLength
        var out = [UInt8](repeating: 0, count: rows * type.rowBytes(rowLength))
        try x.withUnsafeBufferPointer { xp in
            try out.withUnsafeMutableBytes { o in
                if let im = imatrix {
                    try im.withUnsafeBufferPointer { try quantize(type, xp.baseAddress!, rows: rows, rowLength: rowLength, imatrix: $0.baseAddress!, into: o.baseAddress!) }
                } else {
                    try quantize(type, xp.baseAddress!, rows: rows, rowLength: rowLength, into: o.baseAddress!)
                }
            }
        }
        return out
    }

    /// Decodes `count` values of `type` from `y`.
    public static func dequantize(_ type: GGMLType, _ y: UnsafeRawBufferPointer, count: Int, into x: UnsafeMutablePointer<Float>) throws {
        guard decodable.contains(type) else { throw QKError("dequantizing \(type.name) is not supported") }
        guard count % type.blockSize == 0, y.count >= count / type.blockSize * type.typeSize else {
            throw QKError("\(type.name): \(y.count) bytes do not hold \(count) values")
        }
        guard count > 0, let p0 = y.baseAddress else { return }
        // blocks are independent: decode contiguous block ranges in parallel
        let totalBlocks = count / type.blockSize
        nonisolated(unsafe) let (src, dst) = (p0, x)
        Parallel.forRanges(totalBlocks, minChunk: max(1, 65536 / type.blockSize)) { r in
            decodeBlocks(type, src + r.lowerBound * type.typeSize, dst + r.lowerBound * type.blockSize, blocks: r.count)
        }
    }

    /// Decodes `nb` consecutive blocks on the calling thread (the caller checked the type is decodable).
    public static func decodeBlocks(_ type: GGMLType, _ p: UnsafeRawPointer, _ x: UnsafeMutablePointer<Float>, blocks nb: Int) {
        let count = nb * type.blockSize
        switch type {
        case .f32: for k in 0..<count { x[k] = Float(bitPattern: loadU32(p, 4 * k)) }
        case .f16: for k in 0..<count { x[k] = HalfFloat.f16ToF32Fast(loadU16(p, 2 * k)) }
        case .bf16: for k in 0..<count { x[k] = HalfFloat.bf16ToF32(loadU16(p, 2 * k)) }
        case .q4_0: LegacyQuants.dequantizeQ4_0(p, x, blocks: nb)
        case .q4_1: LegacyQuants.dequantizeQ4_1(p, x, blocks: nb)
        case .q5_0: LegacyQuants.dequantizeQ5_0(p, x, blocks: nb)
        case .q5_1: LegacyQuants.dequantizeQ5_1(p, x, blocks: nb)
        case .q8_0: LegacyQuants.dequantizeQ8_0(p, x, blocks: nb)
        case .q2_K: KQuants.dequantizeQ2K(p, x, blocks: nb)
        case .q3_K: KQuants.dequantizeQ3K(p, x, blocks: nb)
        case .q4_K: KQuants.dequantizeQ4K(p, x, blocks: nb)
        case .q5_K: KQuants.dequantizeQ5K(p, x, blocks: nb)
        case .q6_K: KQuants.dequantizeQ6K(p, x, blocks: nb)
        case .iq4_NL: NonLinearQuants.dequantizeIQ4NL(p, x, blocks: nb)
        case .iq4_XS: NonLinearQuants.dequantizeIQ4XS(p, x, blocks: nb)
        case .tq1_0: NonLinearQuants.dequantizeTQ1_0(p, x, blocks: nb)
        case .tq2_0: NonLinearQuants.dequantizeTQ2_0(p, x, blocks: nb)
        case .q8_K:  // f32 d; i8 qs[256]; i16 bsums[16]
            for b in 0..<nb {
                let d = Float(bitPattern: loadU32(p, 292 * b))
                for j in 0..<256 { x[256 * b + j] = d * Float(p.load(fromByteOffset: 292 * b + 4 + j, as: Int8.self)) }
            }
        default: break
        }
    }

    public static func dequantize(_ type: GGMLType, _ y: UnsafeRawBufferPointer, count: Int) throws -> [Float] {
        var out = [Float](repeating: 0, count: count)
        try out.withUnsafeMutableBufferPointer { try dequantize(type, y, count: count, into: $0.baseAddress!) }
        return out
    }

    /// `x` quantized into `type` and decoded again: the values a file of that type holds (a pseudo-quantizer for GPTQ's
    /// and AWQ's error measurements).
    public static func roundTrip(_ type: GGMLType, _ x: [Float], rowLength: Int, imatrix: [Float]? = nil) throws -> [Float] {
        let b = try quantize(type, x, rowLength: rowLength, imatrix: imatrix)
        return try b.withUnsafeBytes { try dequantize(type, $0, count: x.count) }
    }

    /// The first non-finite value of a tensor's f32 data, if any (llama-quantize refuses NaN/Inf).
    public static func firstNonFinite(_ x: UnsafeBufferPointer<Float>) -> Int? {
        guard let base = x.baseAddress else { return nil }
        nonisolated(unsafe) let b = base
        let lock = NSLock()
        nonisolated(unsafe) var first = Int.max
        Parallel.forRanges(x.count, minChunk: 1 << 16) { r in
            if let k = firstNonFinite(b + r.lowerBound, count: r.count) {
                lock.lock(); first = min(first, r.lowerBound + k); lock.unlock()
            }
        }
        return first == Int.max ? nil : first
    }

    /// The first non-finite value among `count` values, scanned on the calling thread.
    public static func firstNonFinite(_ x: UnsafePointer<Float>, count: Int) -> Int? {
        var k = 0
        while k < count {
            // a branch-free pass over a stretch, then the exact position only when the stretch holds one
            // an all-ones exponent plus one exponent step carries into bit 31: or-ing those sums vectorizes
            let end = min(count, k + 1024)
            var any: UInt32 = 0
            for i in k..<end { any |= (x[i].bitPattern & 0x7f80_0000) &+ 0x0080_0000 }
            if any & 0x8000_0000 != 0 {
                for i in k..<end where (x[i].bitPattern & 0x7f80_0000) == 0x7f80_0000 { return i }
            }
            k = end
        }
        return nil
    }

    /// Byte offsets of the f16 scale fields (d, m/dmin) in a block, as ggml_validate_row_data checks them.
    static func scaleOffsets(_ type: GGMLType) -> [Int] {
        switch type {
        case .q4_0, .q5_0, .q8_0, .iq4_NL, .iq4_XS: return [0]
        case .q4_1, .q5_1, .q4_K, .q5_K: return [0, 2]
        case .q2_K: return [80, 82]
        case .q3_K: return [108]
        case .q6_K: return [208]
        case .tq1_0: return [52]   // qs[48], qh[4], d
        case .tq2_0: return [64]   // qs[64], d
        default: return []
        }
    }

    /// The first block whose f16 scales are NaN or Inf.
    public static func firstNonFiniteScale(_ type: GGMLType, _ y: UnsafeRawPointer, blocks: Int) -> Int? {
        let offs = scaleOffsets(type)
        if offs.isEmpty { return nil }
        for b in 0..<blocks {
            for o in offs where (loadU16(y, b * type.typeSize + o) & 0x7c00) == 0x7c00 { return b }
        }
        return nil
    }
}
