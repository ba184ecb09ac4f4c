import XCTest
import TensorCore
@testable import Quantization

/// Integer schemes and the packed layouts: parameters against hand-computed values, pack → unpack round trips for
/// every layout, bit width and grouping, known words from the published layouts, and an AWQ GEMM unpacker written
/// here from AutoAWQ's description (shift out eight nibbles, then undo the [0,2,4,6,1,3,5,7] interleave).
final class PackedLayoutTests: XCTestCase {
    func randomLinear(rows: Int, cols: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix(seed: seed)
        return (0..<(rows * cols)).map { i in rng.normal() * 0.05 + (i % 7 == 0 ? 0.02 : 0) }
    }

    func testParamsMatchHandComputedValues() {
        let x: [Float] = [-0.3, 0.1, 0.45, 0.2]
        x.withUnsafeBufferPointer { p in
            // GPTQ symmetric: scale 2·amax/15, zero 8
            let s = IntegerQuant.params(p, scheme: IntegerScheme(bits: 4, groupSize: 4, sym: true), quantizer: .gptq)
            XCTAssertEqual(s.scale, HalfFloat.roundF16(0.9 / 15)); XCTAssertEqual(s.zero, 8)
            // GPTQ asymmetric: (max − min)/15, zero round(0.3/scale)
            let a = IntegerQuant.params(p, scheme: IntegerScheme(bits: 4, groupSize: 4, sym: false), quantizer: .gptq)
            XCTAssertEqual(a.scale, HalfFloat.roundF16(0.75 / 15)); XCTAssertEqual(a.zero, Int32((0.3 / a.scale).rounded(.toNearestOrEven)))
            // AWQ symmetric: amax/7
            let w = IntegerQuant.params(p, scheme: IntegerScheme(bits: 4, groupSize: 4, sym: true), quantizer: .awq)
            XCTAssertEqual(w.scale, HalfFloat.roundF16(0.45 / 7)); XCTAssertEqual(w.zero, 8)
        }
        // the GPTQ range always includes 0; AWQ's does not
        let pos: [Float] = [0.2, 0.3, 0.5, 0.4]
        pos.withUnsafeBufferPointer { p in
            let g = IntegerQuant.params(p, scheme: IntegerScheme(bits: 4, groupSize: 4, sym: false), quantizer: .gptq)
            XCTAssertEqual(g.zero, 0); XCTAssertEqual(g.scale, HalfFloat.roundF16(0.5 / 15))
            let a = IntegerQuant.params(p, scheme: IntegerScheme(bits: 4, groupSize: 4, sym: false), quantizer: .awq)
            XCTAssertEqual(a.scale, HalfFloat.roundF16(0.3 / 15)); XCTAssertEqual(a.zero, 0)  // −round(0.2/0.02) = −10, clamped to 0
        }
        // an all-zero group: GPTQ uses ±1, codes stay exact zeros
        let z = [Float](repeating: 0, count: 8)
        let q = try? IntegerQuant.rtn(z, rows: 1, cols: 8, scheme: IntegerScheme(bits: 4, groupSize: 8, sym: true), quantizer: .gptq)
        XCTAssertEqual(q?.dequantized(), z)
    }

    func testRTNErrorIsWithinHalfAStep() throws {
        let rows = 16, cols = 128
        let W = randomLinear(rows: rows, cols: cols, seed: 3)
        for s in [IntegerScheme(bits: 4, groupSize: 32, sym: true), IntegerScheme(bits: 4, groupSize: 64, sym: false),
                  IntegerScheme(bits: 8, groupSize: -1, sym: true), IntegerScheme(bits: 2, groupSize: 32, sym: false)] {
            for quantizer in [IntegerQuantizer.gptq, .awq] {
                let q = try IntegerQuant.rtn(W, rows: rows, cols: cols, scheme: s, quantizer: quantizer)
                let D = q.dequantized()
                for r in 0..<rows { for c in 0..<cols {
                    let scale = q.scales[r * q.groups + Int(q.gIdx[c])]
                    // half a step, plus the f16 rounding of the scale (relative 2⁻¹¹) times the largest code magnitude
                    let tol = scale * 0.5 + scale * Float(1 << (s.bits - 1)) / 2048 + 1e-7
                    XCTAssertLessThanOrEqual(abs(D[r * cols + c] - W[r * cols + c]), tol, "\(s) \(quantizer)")
                } }
            }
        }
        XCTAssertThrowsError(try IntegerQuant.rtn(W, rows: rows, cols: cols, scheme: IntegerScheme(bits: 4, groupSize: 48, sym: true), quantizer: .gptq)) {
            XCTAssertTrue("\($0)".contains("does not divide the 128 input columns"), "\($0)")
        }
    }

    func testEveryLayoutRoundTrips() throws {
        let rows = 64, cols = 96
        let W = randomLinear(rows: rows, cols: cols, seed: 11)
        for layout in PackedLayout.allCases {
            for bits in layout == .awq ? [4] : [2, 3, 4, 8] {
                for g in [32, -1] {
                    for sym in [true, false] {
                        var q = try IntegerQuant.rtn(W, rows: rows, cols: cols, scheme: IntegerScheme(bits: bits, groupSize: g, sym: sym), quantizer: .gptq)
                        if layout != .awq && g == 32 { q.gIdx = (0..<cols).map { Int32(($0 * 7) % cols / 32) } }  // act-order style g_idx
                        for v1 in layout == .gptq ? [true, false] : [false] {
                            if v1 && q.zeros.contains(0) { continue }
                            let t = try layout.pack(q, v1: v1)
                            let byName = Dictionary(uniqueKeysWithValues: t)
                            let back = try layout.unpack(bits: bits, groupSize: g, sym: sym, v1: v1, name: "m") { byName[$0] }
                            XCTAssertEqual(back.codes, q.codes, "\(layout) \(bits) \(g) \(sym)")
                            XCTAssertEqual(back.scales, q.scales, "\(layout) \(bits) \(g) \(sym)")
                            XCTAssertEqual(back.gIdx, q.gIdx, "\(layout) \(bits) \(g) \(sym)")
                            XCTAssertEqual(back.dequantized(), q.dequantized(), "\(layout) \(bits) \(g) \(sym)")
                            if layout == .compressedTensors && sym { XCTAssertNil(byName["weight_zero_point"]) }
                        }
                    }
                }
            }
        }
    }

    func testKnownWords() throws {
        // codes 0…7 down the first 8 inputs of output 0, symmetric zero 8 everywhere
        let rows = 8, cols = 8
        var q = QuantizedLinear(rows: rows, cols: cols, scheme: IntegerScheme(bits: 4, groupSize: -1, sym: true),
                                codes: [UInt8](repeating: 0, count: rows * cols), scales: [Float](repeating: 0.5, count: rows),
                                zeros: [Int32](repeating: 8, count: rows), gIdx: [Int32](repeating: 0, count: cols))
        for i in 0..<8 { q.codes[0 * cols + i] = UInt8(i) }
        for o in 0..<8 { q.codes[o * cols + 0] = UInt8(o) }   // input 0 across outputs 0…7
        let gptq = Dictionary(uniqueKeysWithValues: try PackedLayout.gptq.pack(q))
        let qw = gptq["qweight"]!, qz = gptq["qzeros"]!
        XCTAssertEqual(qw.shape, [1, 8]); XCTAssertEqual(qz.shape, [1, 1])
        XCTAssertEqual(Array(qw.bytes[0..<4]), [0x10, 0x32, 0x54, 0x76])          // 0x76543210: input k in bits 4k
        XCTAssertEqual(Array(qz.bytes), [0x77, 0x77, 0x77, 0x77])                 // v1 stores zero − 1
        let awq = Dictionary(uniqueKeysWithValues: try PackedLayout.awq.pack(q))
        // input 0: outputs 0…7 hold codes 0…7; nibble k holds output ORDER[k] → 0x75316420
        XCTAssertEqual(Array(awq["qweight"]!.bytes[0..<4]), [0x20, 0x64, 0x31, 0x75])
        XCTAssertEqual(Array(awq["qzeros"]!.bytes), [0x88, 0x88, 0x88, 0x88])
        let ct = Dictionary(uniqueKeysWithValues: try PackedLayout.compressedTensors.pack(q))
        XCTAssertEqual(ct["weight_packed"]!.shape, [8, 1])
        XCTAssertEqual(Array(ct["weight_packed"]!.bytes[0..<4]), [0x10, 0x32, 0x54, 0x76])  // output 0 along its inputs
        XCTAssertEqual(ct["weight_shape"]!.bytes, [8, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0])
    }

    /// 3-bit GPTQ against AutoGPTQ's packing loop (10 codes per word, the 11th and 22nd straddling words).
    func testThreeBitGPTQMatchesAutoGPTQsLoop() throws {
        let rows = 32, cols = 64
        var rng = SplitMix(seed: 2)
        let codes = (0..<(rows * cols)).map { _ in UInt8(rng.next() % 8) }
        let q = QuantizedLinear(rows: rows, cols: cols, scheme: IntegerScheme(bits: 3, groupSize: -1, sym: false), codes: codes,
                                scales: [Float](repeating: 0.25, count: rows), zeros: (0..<rows).map { Int32(1 + $0 % 7) }, gIdx: [Int32](repeating: 0, count: cols))
        let t = Dictionary(uniqueKeysWithValues: try PackedLayout.gptq.pack(q))
        let qw = t["qweight"]!.bytes.withUnsafeBytes { p in (0..<(t["qweight"]!.bytes.count / 4)).map { p.load(fromByteOffset: 4 * $0, as: UInt32.self) } }
        XCTAssertEqual(t["qweight"]!.shape, [cols * 3 / 32, rows])
        for o in 0..<rows {
            // AutoGPTQ qlinear pack(), bits == 3, for one output column
            let v = (0..<cols).map { UInt32(codes[o * cols + $0]) }
            var ref = [UInt32](repeating: 0, count: cols * 3 / 32)
            var i = 0, row = 0
            while row < ref.count {
                for j in i..<(i + 10) { ref[row] |= v[j] << UInt32(3 * (j - i)) }
                i += 10; ref[row] |= v[i] << 30; row += 1
                ref[row] |= (v[i] >> 2) & 1; i += 1
                for j in i..<(i + 10) { ref[row] |= v[j] << UInt32(3 * (j - i) + 1) }
                i += 10; ref[row] |= v[i] << 31; row += 1
                ref[row] |= (v[i] >> 1) & 0x3; i += 1
                for j in i..<(i + 10) { ref[row] |= v[j] << UInt32(3 * (j - i) + 2) }
                i += 10; row += 1
            }
            XCTAssertEqual((0..<ref.count).map { qw[$0 * rows + o] }, ref, "output \(o)")
        }
    }

    /// AWQ GEMM written, then read by an unpacker that follows AutoAWQ's packing_utils: unpack eight 4-bit values
    /// per int32 in storage order, then reorder with AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7].
    func testAWQGEMMAgainstAnIndependentUnpacker() throws {
        let rows = 48, cols = 128, g = 64
        let W = randomLinear(rows: rows, cols: cols, seed: 5)
        let q = try IntegerQuant.rtn(W, rows: rows, cols: cols, scheme: IntegerScheme(bits: 4, groupSize: g, sym: false), quantizer: .awq)
        let t = Dictionary(uniqueKeysWithValues: try PackedLayout.awq.pack(q))
        func words(_ r: RawTensor) -> [UInt32] { r.bytes.withUnsafeBytes { p in (0..<(r.bytes.count / 4)).map { p.load(fromByteOffset: 4 * $0, as: UInt32.self) } } }
        func halfs(_ r: RawTensor) -> [Float] { r.bytes.withUnsafeBytes { p in (0..<(r.bytes.count / 2)).map { Float(Float16(bitPattern: p.load(fromByteOffset: 2 * $0, as: UInt16.self))) } } }
        let reverse = [0, 4, 1, 5, 2, 6, 3, 7]
        func unpack(_ w: [UInt32], rowsOut: Int, colsOut: Int) -> [Int] {   // [rowsOut × colsOut] in true column order
            var iw = [Int](repeating: 0, count: rowsOut * colsOut)
            for r in 0..<rowsOut { for c in 0..<(colsOut / 8) { for k in 0..<8 { iw[r * colsOut + 8 * c + k] = Int((w[r * colsOut / 8 + c] >> UInt32(4 * k)) & 0xF) } } }
            var out = iw
            for r in 0..<rowsOut { for c in 0..<(colsOut / 8) { for j in 0..<8 { out[r * colsOut + 8 * c + j] = iw[r * colsOut + 8 * c + reverse[j]] } } }
            return out
        }
        let iq = unpack(words(t["qweight"]!), rowsOut: cols, colsOut: rows)         // [in × out]
        let iz = unpack(words(t["qzeros"]!), rowsOut: cols / g, colsOut: rows)      // [G × out]
        let sc = halfs(t["scales"]!)                                                // [G × out]
        let D = q.dequantized()
        for i in 0..<cols { for o in 0..<rows {
            let w = Float(iq[i * rows + o] - iz[(i / g) * rows + o]) * sc[(i / g) * rows + o]
            XCTAssertEqual(w, D[o * cols + i], "input \(i) output \(o)")
        } }
    }

    func testUnsupportedShapesAndBadTensorsAreClearErrors() throws {
        let q = try IntegerQuant.rtn(randomLinear(rows: 12, cols: 64, seed: 1), rows: 12, cols: 64, scheme: IntegerScheme(bits: 4, groupSize: 32, sym: true), quantizer: .gptq)
        XCTAssertThrowsError(try PackedLayout.awq.pack(q)) { XCTAssertTrue("\($0)".contains("out % 8 == 0"), "\($0)") }
        XCTAssertThrowsError(try PackedLayout.gptq.pack(q)) { XCTAssertTrue("\($0)".contains("divisible by 8"), "\($0)") }
        let good = try IntegerQuant.rtn(randomLinear(rows: 16, cols: 64, seed: 1), rows: 16, cols: 64, scheme: IntegerScheme(bits: 4, groupSize: 32, sym: true), quantizer: .gptq)
        var t = Dictionary(uniqueKeysWithValues: try PackedLayout.gptq.pack(good))
        t["qzeros"] = RawTensor(dtype: "I32", shape: [3, 2], bytes: [UInt8](repeating: 0, count: 24))
        XCTAssertThrowsError(try PackedLayout.gptq.unpack(bits: 4, groupSize: 32, sym: true, name: "m") { t[$0] }) { XCTAssertTrue("\($0)".contains("shapes disagree"), "\($0)") }
        t = Dictionary(uniqueKeysWithValues: try PackedLayout.gptq.pack(good))
        t["g_idx"] = .int32([Int32](repeating: 9, count: 64), shape: [64])
        XCTAssertThrowsError(try PackedLayout.gptq.unpack(bits: 4, groupSize: 32, sym: true, name: "m") { t[$0] }) { XCTAssertTrue("\($0)".contains("g_idx"), "\($0)") }
        t.removeValue(forKey: "scales")
        XCTAssertThrowsError(try PackedLayout.gptq.unpack(bits: 4, groupSize: 32, sym: true, name: "m") { t[$0] }) { XCTAssertTrue("\($0)".contains("missing tensor m.scales"), "\($0)") }
    }
}
