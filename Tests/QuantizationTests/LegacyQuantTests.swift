import XCTest
import ModelFormats
import TensorCore
@testable import Quantization

final class LegacyQuantTests: XCTestCase {
    static let types: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0]

    /// ggml's test-quantize-fns data: 0.1 + 2·cos(i + offset).
    static func synthetic(_ n: Int, offset: Float = 0) -> [Float] { (0..<n).map { 0.1 + 2 * cos(Float($0) + offset) } }

    static func rmse(_ a: [Float], _ b: [Float]) -> Float {
        var s: Double = 0
        for (x, y) in zip(a, b) { s += Double((x - y) * (x - y)) }
        return Float((s / Double(a.count)).squareRoot())
    }

    func testRoundTripErrorWithinGGMLThresholds() throws {
        // test-quantize-fns.cpp: total error sqrt(Σ(x−y)²)/n below MAX_QUANTIZATION_TOTAL_ERROR (0.002) on 4096 values,
        // and, stricter, a plain RMSE bound per bit width.
        let x = Self.synthetic(4096)
        let bound: [GGMLType: Float] = [.q4_0: 0.1, .q4_1: 0.08, .q5_0: 0.05, .q5_1: 0.04, .q8_0: 0.005]
        for t in Self.types {
            let q = try GGMLCodec.quantize(t, x, rowLength: 4096)
            XCTAssertEqual(q.count, 4096 / 32 * t.typeSize)
            let y = try q.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: 4096) }
            let e = Self.rmse(x, y)
            XCTAssertLessThan(e, bound[t]!, "\(t.name) rmse \(e)")
            let ggmlTotal = (e * e * 4096).squareRoot() / 4096
            XCTAssertLessThan(ggmlTotal, 0.002, t.name)
        }
    }

    func testSpecialRows() throws {
        var rng = SystemRandomNumberGenerator()
        let rows: [(String, [Float])] = [
            ("zeros", [Float](repeating: 0, count: 64)),
            ("tiny", (0..<64).map { Float($0 - 32) * 1e-6 }),
            ("huge", (0..<64).map { Float($0 - 32) * 1e3 }),
            ("heavy-tailed", (0..<64).map { i in i == 7 ? 50 : Float.random(in: -0.02...0.02, using: &rng) }),
            ("constant", [Float](repeating: -3.25, count: 64)),
        ]
        for (name, x) in rows {
            let amax = x.map(abs).max()!
            for t in Self.types {
                let y = try GGMLCodec.quantize(t, x, rowLength: 64).withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: 64) }
                XCTAssertTrue(y.allSatisfy(\.isFinite), "\(name) \(t.name)")
                let bits: Float = t == .q8_0 ? 7 : (t == .q5_0 || t == .q5_1) ? 4 : 3
                // every value within one step of the block's grid, plus the f16 rounding of the scale
                // (relative 2^-11, or half an f16 subnormal step 2^-25 times the largest code)
                let qmax = pow(2, bits + 1)
                for (a, b) in zip(x, y) {
                    let bound = amax / pow(2, bits) * 1.01 + abs(a) * 2e-3 + qmax * 3e-8
                    XCTAssertLessThanOrEqual(abs(a - b), bound, "\(name) \(t.name) \(a) -> \(b)")
                }
                if name == "zeros" { XCTAssertEqual(y, x) }
            }
        }
    }

    func testBelowF16RangeBecomesZeroAndAboveIsAnError() throws {
        let denormal = (0..<32).map { Float($0 - 16) * 1e-30 }
        for t in Self.types {
            let y = try GGMLCodec.quantize(t, denormal, rowLength: 32).withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: 32) }
            XCTAssertTrue(y.allSatisfy { abs($0) < 1e-28 }, t.name)
        }
        let huge = (0..<32).map { Float($0 - 16) * 1e5 }  // min -1.6e6 does not fit an f16
        XCTAssertThrowsError(try GGMLCodec.quantize(.q4_1, huge, rowLength: 32)) {
            XCTAssertTrue("\($0)".contains("non-finite scale"), "\($0)")
        }
    }

    func testQ8_0BlockLayoutByHand() throws {
        var x = [Float](repeating: 0, count: 32)
        x[0] = 127; x[1] = -63.5; x[2] = 0.5; x[3] = -0.5
        let q = try GGMLCodec.quantize(.q8_0, x, rowLength: 32)
        XCTAssertEqual(q[0..<2], [0x00, 0x3C])  // d = 1.0 as f16
        XCTAssertEqual(Int8(bitPattern: q[2]), 127)
        XCTAssertEqual(Int8(bitPattern: q[3]), -64)  // roundf(-63.5) = -64 (half away from zero)
        XCTAssertEqual(Int8(bitPattern: q[4]), 1)
        XCTAssertEqual(Int8(bitPattern: q[5]), -1)
    }

    func testQ4_0NibbleLayoutByHand() throws {
        var x = [Float](repeating: 0, count: 32)
        x[0] = -8   // largest magnitude, negative -> d = -8/-8 = 1
        x[16] = 7
        x[1] = 3
        let q = try GGMLCodec.quantize(.q4_0, x, rowLength: 32)
        XCTAssertEqual(q[0..<2], [0x00, 0x3C])
        XCTAssertEqual(q[2], 0x00 | (15 << 4))  // x0 -> 0, x16 -> 15
        XCTAssertEqual(q[3], 11 | (8 << 4))     // x1 -> 3+8, x17 -> 0+8
    }

    func testThreadCountDoesNotChangeBytes() throws {
        let x = Self.synthetic(256 * 64, offset: 0.3)
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        for t in Self.types {
            Parallel.threads = 1
            let a = try GGMLCodec.quantize(t, x, rowLength: 256)
            Parallel.threads = 3
            let b = try GGMLCodec.quantize(t, x, rowLength: 256)
            XCTAssertEqual(a, b, t.name)
        }
    }

    func testRowLengthMustBeWholeBlocks() {
        XCTAssertThrowsError(try GGMLCodec.quantize(.q4_0, [Float](repeating: 1, count: 40), rowLength: 40)) {
            XCTAssertTrue("\($0)".contains("block size 32"), "\($0)")
        }
    }
}

final class RoundingHelperTests: XCTestCase {
    /// roundAway equals Swift's toNearestOrAwayFromZero (C's roundf) on ties, near-ties and random values.
    func testRoundAwayMatchesRoundf() {
        var rng = SplitMix(seed: 1)
        var xs: [Float] = [0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, 0.49999997, -0.49999997, 126.5, -127.5, 8_388_607.5, 1e-30]
        for _ in 0..<200_000 { xs.append(rng.normal() * 60) }
        for x in xs { XCTAssertEqual(roundAway(x), x.rounded(.toNearestOrAwayFromZero), "\(x)") }
        for x in xs.prefix(2000) where abs(x) <= 4_194_303 { XCTAssertEqual(nearestInt(x), Int32(x.rounded(.toNearestOrEven)), "\(x)") }  // ggml asserts this range
    }
}
