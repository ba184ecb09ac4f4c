import ModelFormats
import TensorCore

/// Where each ggml block type keeps its codes, so that codes chosen elsewhere (by GPTQ) can be written into a block
/// whose scales the type's own search has already set.
///
/// A code is 0 ..< `levels(t).count` for every element; with a block's scales fixed, the value of code p at element e
/// is `a_e + b_e · levels[p]` (levels are 0, 1, … for the linear types, the kvalues grid for IQ4_NL / IQ4_XS), which
/// `BlockGrid` reads back by decoding.
public enum BlockCodes {
    /// Types whose codes `write` can place.
    public static let writable: Set<GGMLType> = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K,
                                                 .iq4_NL, .iq4_XS]

    /// The level of each code, ascending.
    public static func levels(_ t: GGMLType) -> [Float] {
        switch t {
        case .iq4_NL, .iq4_XS: return NonLinearQuants.kvalues.map(Float.init)
        case .q2_K: return (0..<4).map(Float.init)
        case .q3_K: return (0..<8).map(Float.init)
        case .q4_0, .q4_1, .q4_K: return (0..<16).map(Float.init)
        case .q5_0, .q5_1, .q5_K: return (0..<32).map(Float.init)
        case .q6_K: return (0..<64).map(Float.init)
        case .q8_0: return (0..<256).map(Float.init)
        default: return []
        }
    }

    /// Writes the `t.blockSize` codes `L` into block `y`, leaving its scales as they are.
    public static func write(_ t: GGMLType, _ L: UnsafePointer<UInt8>, into y: UnsafeMutableRawPointer) {
        func set(_ off: Int, _ v: UInt8) { y.storeBytes(of: v, toByteOffset: off, as: UInt8.self) }
        func get(_ off: Int) -> UInt8 { y.load(fromByteOffset: off, as: UInt8.self) }
        switch t {
        case .q4_0, .iq4_NL:  // d qs[16]
            LegacyQuants.packNibbles(L, y, qsOffset: 2)
        case .q4_1:  // d m qs[16]
            LegacyQuants.packNibbles(L, y, qsOffset: 4)
        case .q5_0:  // d qh[4] qs[16]
            LegacyQuants.packFiveBit(L, y, qhOffset: 2, qsOffset: 6)
        case .q5_1:  // d m qh[4] qs[16]
            LegacyQuants.packFiveBit(L, y, qhOffset: 4, qsOffset: 8)
        case .q8_0:  // d qs[32] (int8 = code − 128)
            for j in 0..<32 { y.storeBytes(of: Int8(Int(L[j]) - 128), toByteOffset: 2 + j, as: Int8.self) }
        case .iq4_XS:  // d scales_h scales_l[4] qs[128]
            for ib in 0..<8 { LegacyQuants.packNibbles(L + 32 * ib, y, qsOffset: 8 + 16 * ib) }
        case .q2_K:  // scales[16] qs[64] d dmin
            KQuants.pack2(L, y + 16)
        case .q3_K:  // hmask[32] qs[64] scales[12] d: bit 2 of each code in hmask, the low two bits in qs
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { low in
                for m in 0..<32 { set(m, 0) }
                for j in 0..<256 {
                    if L[j] > 3 { set(j % 32, get(j % 32) | UInt8(1) << (j / 32)) }
                    low[j] = L[j] & 3
                }
                KQuants.pack2(UnsafePointer(low.baseAddress!), y + 32)
            }
        case .q4_K:  // d dmin scales[12] qs[128]
            for j in stride(from: 0, to: 256, by: 64) {
                for l in 0..<32 { set(16 + j / 2 + l, L[j + l] | (L[j + l + 32] << 4)) }
            }
        case .q5_K:  // d dmin scales[12] qh[32] qs[128]
            for j in 0..<32 { set(16 + j, 0) }
            var m1: UInt8 = 1, m2: UInt8 = 2
            for n in stride(from: 0, to: 256, by: 64) {
                for j in 0..<32 {
                    var l1 = L[n + j], l2 = L[n + j + 32]
                    if l1 > 15 { l1 -= 16; set(16 + j, get(16 + j) | m1) }
                    if l2 > 15 { l2 -= 16; set(16 + j, get(16 + j) | m2) }
                    set(48 + n / 2 + j, l1 | (l2 << 4))
                }
                m1 = m1 &<< 2
                m2 = m2 &<< 2
            }
        case .q6_K:  // ql[128] qh[64] scales[16] d
            for j in stride(from: 0, to: 256, by: 128) {
                let ql = j / 2, qh = 128 + j / 4
                for l in 0..<32 {
                    let (c1, c2, c3, c4) = (L[j + l], L[j + l + 32], L[j + l + 64], L[j + l + 96])
                    set(ql + l, (c1 & 0xF) | ((c3 & 0xF) << 4))
                    set(ql + l + 32, (c2 & 0xF) | ((c4 & 0xF) << 4))
                    set(qh + l, (c1 >> 4) | ((c2 >> 4) << 2) | ((c3 >> 4) << 4) | ((c4 >> 4) << 6))
                }
            }
        default:
            preconditionFailure("BlockCodes.write: \(t.name) is not writable (check `writable` first)")
        }
    }
}

/// One column block of a matrix on a ggml type's grid: per row, the block's scales as the type's own search set them
/// on the block's values (importance-weighted, as llama-quantize with an imatrix), and per element the affine map
/// from code levels to values those scales give. GPTQ picks each element's code on it; `pack` writes the block.
public struct BlockGrid {
    public let type: GGMLType
    public let rows: Int
    /// Elements per row (the type's block size).
    public let n: Int
    /// [rows × typeSize]: each row's block as the search wrote it (its codes are replaced by `pack`).
    public private(set) var blocks: [UInt8]
    /// [rows × n]: value(code p) = a + b · levels[p].
    var a: [Float], b: [Float]
    let levels: [Float]
    let linear: Bool

    /// The grid of `x` [rows × n] (row stride `stride`), searched with `importance` (n weights) when given.
    public init(_ t: GGMLType, _ x: UnsafePointer<Float>, rows: Int, stride: Int, importance: [Float]?) throws {
        guard BlockCodes.writable.contains(t) else { throw QKError("GPTQ cannot place codes in \(t.name) blocks") }
        type = t
        self.rows = rows
        n = t.blockSize
        levels = BlockCodes.levels(t)
        linear = t != .iq4_NL && t != .iq4_XS
        var values = [Float](repeating: 0, count: rows * n)
        for r in 0..<rows { for j in 0..<n { values[r * n + j] = x[r * stride + j] } }
        let searched = try GGMLCodec.quantize(t, values, rowLength: n, imatrix: importance)
        blocks = searched
        // decode the block with every code at its lowest and at its highest level: the affine map of each element
        let grid = BlockCodes.levels(t)
        let lo = try Self.decodeAll(t, searched, code: 0, rows: rows)
        let hi = try Self.decodeAll(t, searched, code: UInt8(grid.count - 1), rows: rows)
        let (first, span) = (grid[0], grid[grid.count - 1] - grid[0])
        let slope = zip(hi, lo).map { ($0 - $1) / span }
        b = slope
        a = zip(lo, slope).map { $0 - $1 * first }
    }

    static func decodeAll(_ t: GGMLType, _ blocks: [UInt8], code: UInt8, rows: Int) throws -> [Float] {
        var y = blocks
        let codes = [UInt8](repeating: code, count: t.blockSize)
        y.withUnsafeMutableBytes { yp in
            codes.withUnsafeBufferPointer { for r in 0..<rows { BlockCodes.write(t, $0.baseAddress!, into: yp.baseAddress! + r * t.typeSize) } }
        }
        return try y.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: rows * t.blockSize) }
    }

    /// The code nearest to `x` at element `j` of row `r`, and its value.
    @inline(__always) public func nearest(_ r: Int, _ j: Int, _ x: Float) -> (UInt8, Float) {
        let k = r * n + j
        let (a0, b0) = (a[k], b[k])
        guard b0 != 0 else { return (0, a0) }
        let t = (x - a0) / b0
        let top = levels.count - 1
        var p: Int
        if linear {
            p = t.isNaN ? 0 : Int(max(0, min(Float(top), t.rounded(.toNearestOrEven))))
        } else {
            p = 0
            while p < top && abs(levels[p + 1] - t) < abs(levels[p] - t) { p += 1 }
        }
        return (UInt8(p), a0 + b0 * levels[p])
    }

    /// Row `r`'s block with `codes` (n of them) in place of the search's.
    public func pack(_ r: Int, codes: UnsafePointer<UInt8>, into y: UnsafeMutableRawPointer) {
        let size = type.typeSize
        blocks.withUnsafeBytes { y.copyMemory(from: $0.baseAddress! + r * size, byteCount: size) }
        BlockCodes.write(type, codes, into: y)
    }
}
