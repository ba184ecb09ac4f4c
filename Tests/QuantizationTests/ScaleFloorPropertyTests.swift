import XCTest
import ModelFormats
import TensorCore
@testable import Quantization

/// Valid weights that real checkpoints hold — zeroed or pruned groups, constant groups, one tiny value among zeros,
/// subnormals, f16- and bf16-extreme values, a single huge outlier — through every quantizer: no trap, the
/// dequantized values finite, zero groups (and, on grids that hold 0 exactly, every zero) still zero. A block whose
/// values exceed what its f16 scale can hold may instead be refused with llama-quantize's validation error.
final class ScaleFloorPropertyTests: XCTestCase {
    static let bf16Max = Float(bitPattern: 0x7F7F_0000)

    /// How one 32-column group of a test matrix is filled.
    enum Fill: CaseIterable {
        case normal, zeros, constant, tinyAmongZeros, subnormals, f16Extremes, bf16Extremes, outlier, negativeConstant
    }

    /// A [rows × cols] matrix whose 32-column groups take the fills in turn (shifted per row), with random values.
    static func matrix(rows: Int, cols: Int, seed: UInt64, fills: [Fill]) -> [Float] {
        var rng = SplitMix(seed: seed)
        var W = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            for g in 0..<(cols / 32) {
                let fill = fills[(g + r) % fills.count]
                let base = r * cols + g * 32
                for j in 0..<32 {
                    let v: Float
                    switch fill {
                    case .normal: v = rng.normal() * 0.02
                    case .zeros: v = 0
                    case .constant: v = 0.0123
                    case .negativeConstant: v = -3.5e-6
                    case .tinyAmongZeros: v = j == 7 ? [1e-9, -1e-30, Float.leastNormalMagnitude / 1000, 6e-8][Int(rng.next() % 4)] : 0
                    case .subnormals: v = Float(bitPattern: UInt32(rng.next() % 0x7F_FFFF)) * (rng.uniform() < 0.5 ? -1 : 1)
                    case .f16Extremes: v = j % 3 == 0 ? 65504 : (j % 3 == 1 ? -65504 : rng.normal())
                    case .bf16Extremes: v = j % 2 == 0 ? bf16Max : -bf16Max * rng.uniform()
                    case .outlier: v = j == 5 ? 3.0e4 : rng.normal() * 1e-3
                    }
                    W[base + j] = v
                }
            }
        }
        return W
    }

    /// The fills within f16's range, and all of them.
    static let moderate: [Fill] = [.normal, .zeros, .tinyAmongZeros, .constant, .subnormals, .outlier, .zeros, .negativeConstant, .f16Extremes]
    static let all: [Fill] = Fill.allCases

    func assertFinite(_ x: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        if let i = x.firstIndex(where: { !$0.isFinite }) { XCTFail("\(what): value \(i) is \(x[i])", file: file, line: line) }
    }

    /// Every all-zero span of `unit` values (aligned) dequantizes to zeros.
    func assertZeroUnitsStayZero(_ W: [Float], _ Q: [Float], unit: Int, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        for u in stride(from: 0, to: W.count, by: unit) where W[u..<(u + unit)].allSatisfy({ $0 == 0 }) {
            if let k = (u..<(u + unit)).first(where: { Q[$0] != 0 }) {
                XCTFail("\(what): zero at \(k) dequantizes to \(Q[k])", file: file, line: line)
                return
            }
        }
    }

    func isScaleOverflowError(_ e: Error) -> Bool { "\(e)".contains("non-finite scale") }

    func testGGMLTypesWithAndWithoutImatrix() throws {
        let rows = 9, cols = 512
        let types = GGMLCodec.encodable.filter { ![.f32, .f16, .bf16].contains($0) }.sorted { $0.rawValue < $1.rawValue }
        var rng = SplitMix(seed: 77)
        let imatrices: [[Float]?] = [nil, (0..<cols).map { _ in rng.uniform() * 3 }, (0..<cols).map { $0 % 7 == 0 ? 0 : 1 }]
        for (seed, fills) in [(1, Self.moderate), (2, Self.all), (3, [Fill.zeros, .tinyAmongZeros, .subnormals])] {
            let W = Self.matrix(rows: rows, cols: cols, seed: UInt64(seed), fills: fills)
            for t in types {
                for (k, imatrix) in imatrices.enumerated() {
                    let what = "\(t.name) imatrix \(k) fills \(seed)"
                    let bytes: [UInt8]
                    do {
                        bytes = try GGMLCodec.quantize(t, W, rowLength: cols, imatrix: imatrix)
                    } catch {
                        // only a block beyond f16's range may be refused
                        XCTAssertTrue(fills.contains(.bf16Extremes) && isScaleOverflowError(error), "\(what): \(error)")
                        continue
                    }
                    let Q = try bytes.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: W.count) }
                    assertFinite(Q, what)
                    assertZeroUnitsStayZero(W, Q, unit: t.blockSize, what)
                    if [.q4_0, .q5_0, .q8_0].contains(t) && imatrix == nil {
                        for i in W.indices where W[i] == 0 && Q[i] != 0 { XCTFail("\(what): zero at \(i) → \(Q[i])"); break }
                    }
                }
            }
        }
    }

    func testIntegerSchemesEveryQuantizerBitsGroupAndSymmetry() throws {
        let rows = 9, cols = 256
        for (seed, fills) in [(4, Self.moderate), (5, Self.all)] {
            let W = Self.matrix(rows: rows, cols: cols, seed: UInt64(seed), fills: fills)
            for quantizer in [IntegerQuantizer.gptq, .awq] {
                for bits in [2, 3, 4, 8] {
                    for group in [32, 64, 128, -1] {
                        for sym in [true, false] {
                            let s = IntegerScheme(bits: bits, groupSize: group, sym: sym)
                            let what = "\(quantizer) \(s) fills \(seed)"
                            let q = try IntegerQuant.rtn(W, rows: rows, cols: cols, scheme: s, quantizer: quantizer)
                            XCTAssertTrue(q.scales.allSatisfy { $0 >= IntegerQuant.minScale && $0 <= IntegerQuant.maxScale }, what)
                            XCTAssertEqual(q.scales.map(HalfFloat.roundF16), q.scales, "\(what): scales are f16 values")
                            let D = q.dequantized()
                            assertFinite(D, what)
                            // the code for 0 is the zero point: every zero stays exactly zero
                            for i in W.indices where W[i] == 0 && D[i] != 0 { XCTFail("\(what): zero at \(i) → \(D[i])"); break }
                            if !fills.contains(.bf16Extremes) {
                                // within f16's range a value lands on its group's grid: off by at most the group's
                                // largest |w| or one step (GPTQ's symmetric grid clips an all-positive group at its
                                // top code, as the reference quantizer does)
                                let G = q.groups, g = s.group(cols)
                                for r in 0..<rows { for c in 0..<cols {
                                    let step = q.scales[r * G + Int(q.gIdx[c])]
                                    let span = (r * cols + c / g * g)..<(r * cols + c / g * g + g)
                                    let amax = W[span].map(abs).max() ?? 0
                                    let e = abs(D[r * cols + c] - W[r * cols + c])
                                    if e > max(amax, step) * 1.0001 { XCTFail("\(what): error \(e) at \(r),\(c) (amax \(amax), scale \(step))"); return }
                                } }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The case: one group of zeros with a single 1e-9 (its f16 scale rounded to 0 before the floor).
    func testTinyGroupGetsTheFloorScaleAndCodesZeros() throws {
        var W = [Float](repeating: 0, count: 32)
        W[3] = 1e-9
        for quantizer in [IntegerQuantizer.gptq, .awq] {
            for sym in [true, false] {
                let q = try IntegerQuant.rtn(W, rows: 1, cols: 32, scheme: IntegerScheme(bits: 4, groupSize: 32, sym: sym), quantizer: quantizer)
                XCTAssertGreaterThan(q.scales[0], 0)
                XCTAssertEqual(q.dequantized(), [Float](repeating: 0, count: 32), "\(quantizer) sym \(sym)")
            }
        }
    }

    func testGPTQOnEveryGrid() throws {
        let rows = 9, cols = 128, n = 96
        var rng = SplitMix(seed: 11)
        let X = (0..<(n * cols)).map { _ in rng.normal() }
        var H = [Float](repeating: 0, count: cols * cols)
        X.withUnsafeBufferPointer { xp in
            BLAS.gemmTN(m: cols, n: cols, k: n, a: xp.baseAddress!, lda: cols, b: xp.baseAddress!, ldb: cols, c: &H, ldc: cols, alpha: 2 / Float(n), beta: 0)
        }
        let grids: [(GPTQGrid, Int)] = [(.minmax(bits: 4, sym: true), 32), (.minmax(bits: 4, sym: false), 64), (.minmax(bits: 8, sym: true), -1),
                                        (.minmax(bits: 2, sym: false), 32), (.ggml(.q4_0), 32), (.ggml(.q4_1), 32), (.ggml(.q8_0), 32)]
        for (seed, fills) in [(6, Self.moderate), (7, Self.all)] {
            var W = Self.matrix(rows: rows, cols: cols, seed: UInt64(seed), fills: fills)
            for c in 0..<cols { W[2 * cols + c] = 0 }   // a zeroed row (a pruned output channel)
            for (grid, group) in grids {
                for act in [false, true] {
                    var o = GPTQOptions()
                    o.grid = grid; o.groupSize = group; o.actOrder = act; o.staticGroups = act; o.blockSize = 64
                    let what = "GPTQ \(grid) g\(group) act \(act) fills \(seed)"
                    let r: GPTQ.Result
                    do { r = try GPTQ.run(W: W, rows: rows, cols: cols, H: H, options: o) } catch {
                        XCTAssertTrue(isScaleOverflowError(error), "\(what): \(error)")
                        continue
                    }
                    assertFinite(r.Q, what)
                    XCTAssertTrue(r.Q[(2 * cols)..<(3 * cols)].allSatisfy { $0 == 0 }, "\(what): the zero row changed")
                    if case .ggml(let t) = grid {
                        let b = try GPTQ.packGGML(r, type: t, rows: rows, cols: cols)
                        let D = try b.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: rows * cols) }
                        assertFinite(D, what)
                    } else if case let .minmax(bits, sym) = grid {
                        let q = GPTQ.integerLinear(r, rows: rows, cols: cols, scheme: IntegerScheme(bits: bits, groupSize: group, sym: sym))
                        XCTAssertEqual(q.dequantized(), r.Q, what)
                    }
                }
            }
        }
    }

    func testAWQScaleSearchAndClip() throws {
        let rows = 9, cols = 256, n = 64
        var rng = SplitMix(seed: 12)
        let x = (0..<(n * cols)).map { c -> Float in c % cols == 5 ? 0 : rng.normal() }   // a dead input channel
        let xMean = (0..<cols).map { c in (0..<n).map { abs(x[$0 * cols + c]) }.reduce(0, +) / Float(n) }
        let pseudo: [(String, AWQ.PseudoQuantize)] = [
            ("awq w4 g32 asym", { W, r, c in try IntegerQuant.rtn(W, rows: r, cols: c, scheme: IntegerScheme(bits: 4, groupSize: 32, sym: false), quantizer: .awq).dequantized() }),
            ("gptq w4 g64 sym", { W, r, c in try IntegerQuant.rtn(W, rows: r, cols: c, scheme: IntegerScheme(bits: 4, groupSize: 64, sym: true), quantizer: .gptq).dequantized() }),
            ("Q4_K", { W, r, c in
                let b = try GGMLCodec.quantize(.q4_K, W, rowLength: c)
                return try b.withUnsafeBytes { try GGMLCodec.dequantize(.q4_K, $0, count: r * c) }
            }),
        ]
        for (seed, fills) in [(8, Self.moderate), (9, Self.all)] {
            let W = Self.matrix(rows: rows, cols: cols, seed: UInt64(seed), fills: fills)
            let wMean = AWQ.wMean([W], cols: cols, groupSize: 32)
            assertFinite(wMean, "wMean")
            for (name, Q) in pseudo {
                let what = "AWQ \(name) fills \(seed)"
                do {
                    let search = try AWQ.searchScales(xMean: xMean, wMean: wMean) { s in
                        AWQ.mse(try AWQ.scaledPseudoQuantize(W, rows: rows, cols: cols, s: s, Q: Q), W)
                    }
                    XCTAssertTrue(search.s.allSatisfy { $0.isFinite && $0 > 0 }, what)
                    let Ws = try AWQ.scaledPseudoQuantize(W, rows: rows, cols: cols, s: search.s, Q: Q)
                    assertFinite(Ws, what)
                    let clipped = try AWQ.clip(W, rows: rows, cols: cols, groupSize: 32, x: x, Q: Q, shrinkSteps: 4)
                    assertFinite(clipped, what)
                    let D = try Q(clipped, rows, cols)
                    assertFinite(D, what)
                    assertZeroUnitsStayZero(W, D, unit: 32, what)
                } catch {
                    XCTAssertTrue(fills.contains(.bf16Extremes) && isScaleOverflowError(error), "\(what): \(error)")
                }
            }
        }
    }
}
