import Foundation
import TensorCore

func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

/// One tensor of a packed checkpoint, little-endian bytes with a safetensors dtype name ("I32", "F16", "I64").
public struct RawTensor: Equatable, Sendable {
    public var dtype: String
    public var shape: [Int]
    public var bytes: [UInt8]
    public init(dtype: String, shape: [Int], bytes: [UInt8]) { self.dtype = dtype; self.shape = shape; self.bytes = bytes }

    static func int32(_ v: [Int32], shape: [Int]) -> RawTensor {
        var b = [UInt8](repeating: 0, count: v.count * 4)
        b.withUnsafeMutableBytes { p in for (i, x) in v.enumerated() { p.storeBytes(of: x.littleEndian, toByteOffset: 4 * i, as: Int32.self) } }
        return RawTensor(dtype: "I32", shape: shape, bytes: b)
    }
    static func f16(_ v: [Float], shape: [Int]) -> RawTensor {
        var b = [UInt8](repeating: 0, count: v.count * 2)
        b.withUnsafeMutableBytes { p in for (i, x) in v.enumerated() { p.storeBytes(of: HalfFloat.f32ToF16(x).littleEndian, toByteOffset: 2 * i, as: UInt16.self) } }
        return RawTensor(dtype: "F16", shape: shape, bytes: b)
    }
    func int32s(_ what: String) throws -> [Int32] {
        guard dtype == "I32", bytes.count == shape.reduce(1, *) * 4 else { throw QKError("\(what): expected I32 data, found \(dtype) \(shape)") }
        return bytes.withUnsafeBytes { p in (0..<(bytes.count / 4)).map { Int32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) } }
    }
    func floats(_ what: String) throws -> [Float] {
        let n = shape.reduce(1, *)
        switch dtype {
        case "F16" where bytes.count == 2 * n:
            return bytes.withUnsafeBytes { p in (0..<n).map { HalfFloat.f16ToF32(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) } }
        case "BF16" where bytes.count == 2 * n:
            return bytes.withUnsafeBytes { p in (0..<n).map { HalfFloat.bf16ToF32(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) } }
        case "F32" where bytes.count == 4 * n:
            return bytes.withUnsafeBytes { p in (0..<n).map { Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) } }
        default:
            throw QKError("\(what): expected F16/BF16/F32 data, found \(dtype) \(shape)")
        }
    }
}

/// The packed int checkpoint layouts other tools load (REFERENCE §9). q[i,o] is the code of input i, output o.
public enum PackedLayout: String, CaseIterable, Sendable {
    /// GPTQ: qweight [in·b/32, out], qzeros [G, out·b/32] (v1 stores zero − 1), scales f16 [G, out], g_idx [in].
    case gptq
    /// AWQ GEMM: qweight [in, out/8] with nibble k of word c holding output 8c+ORDER[k]; qzeros [G, out/8] the
    /// same way (not offset); scales f16 [G, out].
    case awq
    /// compressed-tensors pack-quantized: weight_packed [out, ⌈in·b/32⌉] (code + 2^(b−1) as unsigned),
    /// weight_scale [out, G], weight_zero_point [⌈out·b/32⌉, G] packed along dim 0 (asymmetric only),
    /// weight_shape I64 [2], weight_g_idx [in] with act-order.
    case compressedTensors = "compressed-tensors"

    /// AWQ's interleaved column order within a word.
    public static let awqOrder = [0, 2, 4, 6, 1, 3, 5, 7]

    /// Why `q` cannot be written in this layout (nil: it can). `v1` is GPTQ's zero−1 convention.
    public func unsupported(_ q: QuantizedLinear, v1: Bool = true) -> String? {
        let b = q.scheme.bits
        switch self {
        case .gptq:
            guard [2, 3, 4, 8].contains(b) else { return "GPTQ packing supports 2, 3, 4 and 8 bits" }
            if q.cols * b % 32 != 0 || q.rows * b % 32 != 0 { return "GPTQ packing needs in and out divisible by \(32 / gcd(32, b))" }
        case .awq:
            guard b == 4 else { return "the AWQ GEMM layout is 4-bit only" }
            if q.rows % 8 != 0 { return "the AWQ GEMM layout needs out % 8 == 0 (\(q.rows))" }
            if !q.hasTrivialGroups { return "the AWQ GEMM layout has no g_idx (no act-order)" }
        case .compressedTensors:
            guard [2, 3, 4, 8].contains(b) else { return "compressed-tensors pack-quantized supports 2, 3, 4 and 8 bits here" }
            if !q.scheme.sym && q.zeros.contains(where: { $0 < 0 || Int($0) > q.scheme.maxq }) { return "zero point out of range" }
        }
        return nil
    }

    /// Tensors (by suffix after the module name, e.g. "qweight") holding `q`.
    public func pack(_ q: QuantizedLinear, v1: Bool = true) throws -> [(String, RawTensor)] {
        if let why = unsupported(q, v1: v1) { throw QKError(why) }
        let b = q.scheme.bits, per = 32 / b, mask = UInt32((1 << b) - 1)
        let I = q.cols, O = q.rows, G = q.groups
        // scales transposed to [G, out]
        var sT = [Float](repeating: 0, count: G * O), zT = [Int32](repeating: 0, count: G * O)
        for o in 0..<O { for g in 0..<G { sT[g * O + o] = q.scales[o * G + g]; zT[g * O + o] = q.zeros[o * G + g] } }
        switch self {
        case .gptq:
            // each output's input codes as one bit stream down the column of qweight (3 bits: 32 codes per 3 words)
            let rowsW = I * b / 32
            var qweight = [Int32](repeating: 0, count: rowsW * O)
            var col = [UInt32](repeating: 0, count: I)
            for o in 0..<O {
                for i in 0..<I { col[i] = UInt32(q.codes[o * I + i]) }
                for (r, w) in Self.streamPack(col, bits: b).enumerated() { qweight[r * O + o] = Int32(bitPattern: w) }
            }
            let zw = O * b / 32
            var qzeros = [Int32](repeating: 0, count: G * zw)
            for g in 0..<G {
                let z = (0..<O).map { UInt32(bitPattern: zT[g * O + $0] - (v1 ? 1 : 0)) & mask }
                for (c, w) in Self.streamPack(z, bits: b).enumerated() { qzeros[g * zw + c] = Int32(bitPattern: w) }
            }
            return [("qweight", .int32(qweight, shape: [rowsW, O])), ("qzeros", .int32(qzeros, shape: [G, zw])),
                    ("scales", .f16(sT, shape: [G, O])), ("g_idx", .int32(q.gIdx, shape: [I]))]
        case .awq:
            var qweight = [Int32](repeating: 0, count: I * O / 8)
            for i in 0..<I {
                for c in 0..<(O / 8) {
                    var word: UInt32 = 0
                    for k in 0..<8 { word |= UInt32(q.codes[(8 * c + Self.awqOrder[k]) * I + i]) << UInt32(4 * k) }
                    qweight[i * (O / 8) + c] = Int32(bitPattern: word)
                }
            }
            var qzeros = [Int32](repeating: 0, count: G * O / 8)
            for g in 0..<G {
                for c in 0..<(O / 8) {
                    var word: UInt32 = 0
                    for k in 0..<8 { word |= (UInt32(bitPattern: zT[g * O + 8 * c + Self.awqOrder[k]]) & 0xF) << UInt32(4 * k) }
                    qzeros[g * (O / 8) + c] = Int32(bitPattern: word)
                }
            }
            return [("qweight", .int32(qweight, shape: [I, O / 8])), ("qzeros", .int32(qzeros, shape: [G, O / 8])), ("scales", .f16(sT, shape: [G, O]))]
        case .compressedTensors:
            let words = (I + per - 1) / per
            var packed = [Int32](repeating: 0, count: O * words)
            for o in 0..<O {
                for w in 0..<words {
                    var word: UInt32 = 0
                    for k in 0..<per where per * w + k < I { word |= UInt32(q.codes[o * I + per * w + k]) << UInt32(b * k) }
                    packed[o * words + w] = Int32(bitPattern: word)
                }
            }
            var out: [(String, RawTensor)] = [("weight_packed", .int32(packed, shape: [O, words])), ("weight_scale", .f16(q.scales, shape: [O, G]))]
            if !q.scheme.sym {
                let zw = (O + per - 1) / per
                var zp = [Int32](repeating: 0, count: zw * G)
                for w in 0..<zw {
                    for g in 0..<G {
                        var word: UInt32 = 0
                        for k in 0..<per where per * w + k < O { word |= (UInt32(bitPattern: q.zeros[(per * w + k) * G + g]) & mask) << UInt32(b * k) }
                        zp[w * G + g] = Int32(bitPattern: word)
                    }
                }
                out.append(("weight_zero_point", .int32(zp, shape: [zw, G])))
            }
            var shapeBytes = [UInt8](repeating: 0, count: 16)
            shapeBytes.withUnsafeMutableBytes { $0.storeBytes(of: Int64(O).littleEndian, toByteOffset: 0, as: Int64.self); $0.storeBytes(of: Int64(I).littleEndian, toByteOffset: 8, as: Int64.self) }
            out.append(("weight_shape", RawTensor(dtype: "I64", shape: [2], bytes: shapeBytes)))
            if !q.hasTrivialGroups { out.append(("weight_g_idx", .int32(q.gIdx, shape: [I]))) }
            return out
        }
    }

    /// GPTQ's packing: `v` (b bits each) as one little-endian bit stream in 32-bit words; for 2, 4 and 8 bits that is
    /// 32/b values per word, for 3 bits AutoGPTQ's 32 values in 3 words. v.count·b must be a multiple of 32.
    static func streamPack(_ v: [UInt32], bits b: Int) -> [UInt32] {
        var out = [UInt32](repeating: 0, count: v.count * b / 32)
        for (j, x) in v.enumerated() {
            let bit = j * b, w = bit / 32, sh = bit % 32
            out[w] |= x << UInt32(sh)
            if sh + b > 32 { out[w + 1] |= x >> UInt32(32 - sh) }
        }
        return out
    }

    static func streamUnpack(_ w: [UInt32], bits b: Int, count: Int) -> [UInt32] {
        let mask = UInt32((1 << b) - 1)
        return (0..<count).map { j in
            let bit = j * b, k = bit / 32, sh = bit % 32
            var x = w[k] >> UInt32(sh)
            if sh + b > 32 { x |= w[k + 1] << UInt32(32 - sh) }
            return x & mask
        }
    }

    /// The tensor suffix that marks a packed linear in this layout.
    public var marker: String { self == .compressedTensors ? "weight_packed" : "qweight" }

    /// Reads a packed linear back. `tensor(suffix)` returns the module's tensors; `bits`, `groupSize`, `sym` come
    /// from the checkpoint's quantization config; `v1` is GPTQ's zero−1 convention.
    public func unpack(bits b: Int, groupSize: Int, sym: Bool, v1: Bool = true, name: String, tensor: (String) throws -> RawTensor?) throws -> QuantizedLinear {
        func need(_ s: String) throws -> RawTensor {
            guard let t = try tensor(s) else { throw QKError("\(name): missing tensor \(name).\(s)") }
            return t
        }
        guard [2, 3, 4, 8].contains(b), self != .awq || b == 4 else { throw QKError("\(name): \(b)-bit \(rawValue) weights are not supported") }
        let per = 32 / b, mask = Int32((1 << b) - 1)
        switch self {
        case .gptq:
            let qw = try need("qweight"), qz = try need("qzeros"), sc = try need("scales")
            guard qw.shape.count == 2, sc.shape.count == 2, qz.shape.count == 2 else { throw QKError("\(name): GPTQ tensors must be 2-D") }
            let I = qw.shape[0] * 32 / b, O = qw.shape[1], G = sc.shape[0]
            guard qw.shape[0] * 32 % b == 0, sc.shape[1] == O, O * b % 32 == 0, qz.shape == [G, O * b / 32], G > 0 else {
                throw QKError("\(name): GPTQ shapes disagree (qweight \(qw.shape), qzeros \(qz.shape), scales \(sc.shape))")
            }
            let words = try qw.int32s(name + ".qweight"), zw = try qz.int32s(name + ".qzeros"), s = try sc.floats(name + ".scales")
            var gIdx = (0..<I).map { Int32($0 * G / I) }
            if let gi = try tensor("g_idx") {
                gIdx = try gi.int32s(name + ".g_idx")
                guard gIdx.count == I, gIdx.allSatisfy({ $0 >= 0 && Int($0) < G }) else { throw QKError("\(name): g_idx has \(gIdx.count) entries or a group outside 0..<\(G)") }
            }
            var q = QuantizedLinear(rows: O, cols: I, scheme: IntegerScheme(bits: b, groupSize: G == 1 ? -1 : I / G, sym: sym),
                                    codes: [UInt8](repeating: 0, count: O * I), scales: [Float](repeating: 0, count: O * G),
                                    zeros: [Int32](repeating: 0, count: O * G), gIdx: gIdx)
            let rowsW = I * b / 32
            var col = [UInt32](repeating: 0, count: rowsW)
            for o in 0..<O {
                for r in 0..<rowsW { col[r] = UInt32(bitPattern: words[r * O + o]) }
                for (i, v) in Self.streamUnpack(col, bits: b, count: I).enumerated() { q.codes[o * I + i] = UInt8(v) }
            }
            let zwN = O * b / 32
            for g in 0..<G {
                let z = Self.streamUnpack((0..<zwN).map { UInt32(bitPattern: zw[g * zwN + $0]) }, bits: b, count: O)
                for o in 0..<O {
                    q.scales[o * G + g] = s[g * O + o]
                    q.zeros[o * G + g] = Int32(z[o]) + (v1 ? 1 : 0)
                }
            }
            return q
        case .awq:
            let qw = try need("qweight"), qz = try need("qzeros"), sc = try need("scales")
            guard qw.shape.count == 2, sc.shape.count == 2 else { throw QKError("\(name): AWQ tensors must be 2-D") }
            let I = qw.shape[0], O = qw.shape[1] * 8, G = sc.shape[0]
            guard sc.shape[1] == O, qz.shape == [G, O / 8], G > 0, I % G == 0 else { throw QKError("\(name): AWQ shapes disagree (qweight \(qw.shape), qzeros \(qz.shape), scales \(sc.shape))") }
            let words = try qw.int32s(name + ".qweight"), zw = try qz.int32s(name + ".qzeros"), s = try sc.floats(name + ".scales")
            var q = QuantizedLinear(rows: O, cols: I, scheme: IntegerScheme(bits: 4, groupSize: G == 1 ? -1 : I / G, sym: sym),
                                    codes: [UInt8](repeating: 0, count: O * I), scales: [Float](repeating: 0, count: O * G),
                                    zeros: [Int32](repeating: 0, count: O * G), gIdx: (0..<I).map { Int32($0 / (I / G)) })
            for i in 0..<I { for c in 0..<(O / 8) {
                let w = words[i * (O / 8) + c]
                for k in 0..<8 { q.codes[(8 * c + Self.awqOrder[k]) * I + i] = UInt8((w >> Int32(4 * k)) & 0xF) }
            } }
            for g in 0..<G { for c in 0..<(O / 8) {
                let w = zw[g * (O / 8) + c]
                for k in 0..<8 {
                    let o = 8 * c + Self.awqOrder[k]
                    q.zeros[o * G + g] = (w >> Int32(4 * k)) & 0xF
                    q.scales[o * G + g] = s[g * O + o]
                }
            } }
            return q
        case .compressedTensors:
            let wp = try need("weight_packed"), sc = try need("weight_scale"), sh = try need("weight_shape")
            guard sh.bytes.count == 16 || sh.bytes.count == 8 else { throw QKError("\(name): weight_shape must hold two integers") }
            let dims: [Int] = sh.bytes.count == 16
                ? sh.bytes.withUnsafeBytes { p in [0, 8].map { Int(Int64(littleEndian: p.loadUnaligned(fromByteOffset: $0, as: Int64.self))) } }
                : sh.bytes.withUnsafeBytes { p in [0, 4].map { Int(Int32(littleEndian: p.loadUnaligned(fromByteOffset: $0, as: Int32.self))) } }
            let O = dims[0], I = dims[1], words = (I + per - 1) / per
            guard O > 0, I > 0, wp.shape == [O, words], sc.shape.count == 2, sc.shape[0] == O, sc.shape[1] > 0 else {
                throw QKError("\(name): compressed-tensors shapes disagree (weight_packed \(wp.shape), weight_scale \(sc.shape), weight_shape \(dims))")
            }
            let G = sc.shape[1]
            let g = groupSize <= 0 ? I : groupSize
            guard G == (I + g - 1) / g || G == 1 else { throw QKError("\(name): \(G) scale groups for \(I) columns with group size \(groupSize)") }
            let packed = try wp.int32s(name + ".weight_packed"), s = try sc.floats(name + ".weight_scale")
            var gIdx = (0..<I).map { Int32(G == 1 ? 0 : $0 / g) }
            if let gi = try tensor("weight_g_idx") {
                gIdx = try gi.int32s(name + ".weight_g_idx")
                guard gIdx.count == I, gIdx.allSatisfy({ $0 >= 0 && Int($0) < G }) else { throw QKError("\(name): weight_g_idx has \(gIdx.count) entries or a group outside 0..<\(G)") }
            }
            var q = QuantizedLinear(rows: O, cols: I, scheme: IntegerScheme(bits: b, groupSize: G == 1 ? -1 : g, sym: sym),
                                    codes: [UInt8](repeating: 0, count: O * I), scales: s,
                                    zeros: [Int32](repeating: Int32(1 << (b - 1)), count: O * G), gIdx: gIdx)
            for o in 0..<O { for w in 0..<words {
                let word = packed[o * words + w]
                for k in 0..<per where per * w + k < I { q.codes[o * I + per * w + k] = UInt8((word >> Int32(b * k)) & mask) }
            } }
            if let zt = try tensor("weight_zero_point") {
                let zw = (O + per - 1) / per
                guard zt.shape == [zw, G] else { throw QKError("\(name): weight_zero_point is \(zt.shape), expected [\(zw), \(G)]") }
                let z = try zt.int32s(name + ".weight_zero_point")
                for o in 0..<O { for gg in 0..<G { q.zeros[o * G + gg] = (z[(o / per) * G + gg] >> Int32(b * (o % per))) & mask } }
            }
            return q
        }
    }
}
