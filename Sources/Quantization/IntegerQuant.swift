import Foundation
import TensorCore

/// An integer weight scheme: b-bit codes, one scale (and zero) per `groupSize` input columns of each output row
/// (−1: one group per row, "per channel"), symmetric or with a zero point.
public struct IntegerScheme: Equatable, Sendable, CustomStringConvertible {
    public var bits: Int
    public var groupSize: Int
    public var sym: Bool
    /// The smallest zero point a group may take: 1 for GPTQ v1 checkpoints, which store zero − 1 (GPTQModel clamps the
    /// same way), 0 otherwise.
    public var zeroFloor: Int32 = 0
    public init(bits: Int, groupSize: Int, sym: Bool, zeroFloor: Int32 = 0) {
        self.bits = bits; self.groupSize = groupSize; self.sym = sym; self.zeroFloor = zeroFloor
    }
    public var maxq: Int { (1 << bits) - 1 }
    /// The group size for `cols` input columns (−1 → cols).
    public func group(_ cols: Int) -> Int { groupSize <= 0 ? cols : groupSize }
    public var description: String { "w\(bits) g\(groupSize) \(sym ? "sym" : "asym")" }

    /// Checks the scheme against a matrix's input width.
    public func validate(cols: Int, what: String) throws {
        guard [2, 3, 4, 8].contains(bits) else { throw QKError("\(bits)-bit weights are not supported (2, 3, 4 or 8)") }
        guard groupSize == -1 || groupSize > 0 else { throw QKError("group size \(groupSize): use a positive size or -1 (per channel)") }
        guard cols % group(cols) == 0 else {
            throw QKError("group size \(groupSize) does not divide the \(cols) input columns of \(what); use a group size that does (e.g. \([128, 64, 32].filter { cols % $0 == 0 }.map(String.init).joined(separator: ", "))) or -1")
        }
    }
}

/// How a group's scale and zero are chosen from its values.
public enum IntegerQuantizer: String, CaseIterable, Sendable {
    /// GPTQ's min-max quantizer: the range always includes 0; symmetric puts the zero at (maxq+1)/2 with
    /// scale 2·amax/maxq; ties round to even.
    case gptq
    /// AutoAWQ's `pseudo_quantize_tensor`: the range need not include 0; asymmetric scale (max−min)/maxq
    /// (at least 1e-5/maxq) and zero −round(min/scale) clamped to the code range; symmetric scale amax/(2^(b−1)−1)
    /// with codes −2^(b−1) … 2^(b−1)−1 (stored shifted by 2^(b−1)).
    case awq
}

/// One quantized linear [rows = out, cols = in] in unsigned form: W[r,c] = scale[r,g] · (code[r,c] − zero[r,g])
/// with g = gIdx[c]. Scales are f16 values (rounded before the codes are chosen, so packing is exact).
public struct QuantizedLinear: Equatable, Sendable {
    public var rows: Int, cols: Int
    public var scheme: IntegerScheme
    public var codes: [UInt8]   // [rows × cols], 0 … maxq
    public var scales: [Float]  // [rows × G]
    public var zeros: [Int32]   // [rows × G], 0 … maxq
    public var gIdx: [Int32]    // [cols] group of each input column
    public var groups: Int { scales.count / max(1, rows) }
    /// True when every column c is in group c / groupSize (no act-order reordering).
    public var hasTrivialGroups: Bool {
        let g = scheme.group(cols)
        return gIdx.enumerated().allSatisfy { Int($0.element) == $0.offset / g }
    }

    public init(rows: Int, cols: Int, scheme: IntegerScheme, codes: [UInt8], scales: [Float], zeros: [Int32], gIdx: [Int32]) {
        self.rows = rows; self.cols = cols; self.scheme = scheme; self.codes = codes; self.scales = scales; self.zeros = zeros; self.gIdx = gIdx
    }

    /// The weights these codes stand for: [rows × cols] (rows spread over the threads).
    public func dequantized() -> [Float] {
        let G = groups
        var W = [Float](repeating: 0, count: rows * cols)
        W.withUnsafeMutableBufferPointer { wp in
            nonisolated(unsafe) let w = wp
            Parallel.forRows(rows, rowLength: cols) { rs in
                for r in rs {
                    for c in 0..<cols {
                        let g = r * G + Int(gIdx[c])
                        w[r * cols + c] = scales[g] * Float(Int32(codes[r * cols + c]) - zeros[g])
                    }
                }
            }
        }
        return W
    }
}

/// Group parameter search and round-to-nearest for the integer schemes (the RTN baseline, and the quantizer GPTQ
/// and AWQ call).
public enum IntegerQuant {
    /// The smallest and largest scale an f16 field holds (2⁻²⁴ and 65504).
    public static let minScale = Float(Float16.leastNonzeroMagnitude)
    public static let maxScale = Float(Float16.greatestFiniteMagnitude)

    /// A scale as it is stored (rounded to f16), floored at the smallest positive f16 and capped at the largest
    /// finite one: a group of zeros or of values far below f16's range (pruned heads, padded rows) gets a scale
    /// that codes them as exact zeros instead of 0 (x/0 → NaN); a range beyond f16 saturates instead of Inf.
    @inline(__always) public static func storedScale(_ s: Float) -> Float {
        let h = HalfFloat.roundF16(s)
        return h >= minScale ? min(h, maxScale) : minScale   // NaN and 0 take the floor
    }

    /// (scale, zero) for one group of values under `quantizer`; the scale is rounded to f16 (as it is stored).
    public static func params(_ x: UnsafeBufferPointer<Float>, scheme s: IntegerScheme, quantizer: IntegerQuantizer) -> (scale: Float, zero: Int32) {
        var lo = Float.infinity, hi = -Float.infinity
        for v in x { lo = min(lo, v); hi = max(hi, v) }
        if x.isEmpty { lo = 0; hi = 0 }
        let mq = Float(s.maxq)
        switch quantizer {
        case .gptq:
            var xmin = min(lo, 0), xmax = max(hi, 0)
            if s.sym {
                xmax = max(abs(xmin), xmax)
                if xmin < 0 { xmin = -xmax }
            }
            if xmin == 0 && xmax == 0 { xmin = -1; xmax = 1 }
            var scale = storedScale((xmax - xmin) / mq)
            var zero = s.sym ? (mq + 1) / 2 : (-xmin / scale).rounded(.toNearestOrEven)
            let floor = Float(s.zeroFloor)
            if !s.sym && zero < floor {
                // a group (almost) all ≥ 0 under a zero floor: widen the step so the floored zero still reaches xmax
                zero = floor
                scale = storedScale(max(xmax / (mq - floor), -xmin / floor))
            }
            return (scale, Int32(min(max(zero, 0), mq)))
        case .awq:
            if s.sym {
                let amax = max(max(abs(lo), abs(hi)), 1e-5)
                let half = Float(1 << (s.bits - 1))
                return (storedScale(amax / (half - 1)), Int32(half))
            }
            let scale = storedScale(max(hi - lo, 1e-5) / mq)
            let zero = min(max(-(lo / scale).rounded(.toNearestOrEven), Float(s.zeroFloor)), mq)
            return (scale, Int32(zero))
        }
    }

    /// The code for x (clamped to 0 … maxq; a NaN, which finite weights and a `storedScale` never give, codes 0).
    @inline(__always) public static func code(_ x: Float, scale: Float, zero: Int32, maxq: Int) -> UInt8 {
        let q = (x / scale).rounded(.toNearestOrEven) + Float(zero)
        return UInt8(clampCode(q, 0, Float(maxq)))
    }

    /// q clamped to [lo, hi], NaN → lo: a value that converts to an integer without a trap.
    @inline(__always) public static func clampCode(_ q: Float, _ lo: Float, _ hi: Float) -> Float {
        q >= lo ? min(q, hi) : lo
    }

    /// Round-to-nearest of W [rows × cols] with groups in column order (rows spread over the threads: each row's codes
    /// depend on that row alone).
    public static func rtn(_ W: [Float], rows: Int, cols: Int, scheme s: IntegerScheme, quantizer: IntegerQuantizer) throws -> QuantizedLinear {
        try s.validate(cols: cols, what: "this matrix")
        guard W.count == rows * cols else { throw QKError("RTN: \(W.count) values for \(rows)×\(cols)") }
        let g = s.group(cols), G = cols / g
        var q = QuantizedLinear(rows: rows, cols: cols, scheme: s, codes: [UInt8](repeating: 0, count: rows * cols),
                                scales: [Float](repeating: 0, count: rows * G), zeros: [Int32](repeating: 0, count: rows * G),
                                gIdx: (0..<cols).map { Int32($0 / g) })
        W.withUnsafeBufferPointer { wp in q.codes.withUnsafeMutableBufferPointer { cp in
            q.scales.withUnsafeMutableBufferPointer { sp in q.zeros.withUnsafeMutableBufferPointer { zp in
                nonisolated(unsafe) let (w, codes, scales, zeros) = (wp, cp, sp, zp)
                Parallel.forRows(rows, rowLength: cols) { rs in
                    for r in rs {
                        for j in 0..<G {
                            let x = UnsafeBufferPointer(rebasing: w[(r * cols + j * g)..<(r * cols + (j + 1) * g)])
                            let (scale, zero) = params(x, scheme: s, quantizer: quantizer)
                            scales[r * G + j] = scale
                            zeros[r * G + j] = zero
                            for c in 0..<g { codes[r * cols + j * g + c] = code(x[c], scale: scale, zero: zero, maxq: s.maxq) }
                        }
                    }
                }
            } }
        } }
        return q
    }
}
