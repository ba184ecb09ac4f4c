import XCTest
import ModelFormats
import TensorCore
@testable import Quantization

/// dequantize(quantize(x)) for every type quantkit encodes, with ggml's test-quantize-fns metric and thresholds,
/// and on awkward rows.
final class AllTypesRoundTripTests: XCTestCase {
    static let types: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq4_NL, .iq4_XS, .tq1_0, .tq2_0]

    /// test-quantize-fns.cpp: total error = sqrt(Σ(x−y)²)/n on 0.1 + 2cos(i), n = 32·128.
    func testTotalErrorWithinGGMLThresholds() throws {
        let n = 32 * 128
        let x = (0..<n).map { 0.1 + 2 * cos(Float($0)) }
        for t in Self.types {
            let y = try GGMLCodec.quantize(t, x, rowLength: n).withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: n) }
            var s: Double = 0
            for (a, b) in zip(x, y) { s += Double((a - b) * (a - b)) }
            let total = Float(s.squareRoot()) / Float(n)
            let limit: Float = t == .tq1_0 || t == .tq2_0 ? 0.01 : t == .q2_K ? 0.0075 : t == .q3_K ? 0.0040 : 0.002
            XCTAssertLessThan(total, limit, t.name)
        }
    }

    func testImatrixWeightsLowerWeightedError() throws {
        // Columns with large importance should come out better when their weight is high.
        let n = 256
        var rng = SplitMix(seed: 7)
        let x = (0..<(n * 8)).map { _ in rng.normal() }
        var w = [Float](repeating: 0.01, count: n)
        for j in stride(from: 0, to: n, by: 7) { w[j] = 100 }
        for t: GGMLType in [.q4_0, .q4_1, .q5_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq4_NL, .iq4_XS] {
            func err(_ im: [Float]?) throws -> Double {
                let y = try GGMLCodec.quantize(t, x, rowLength: n, imatrix: im).withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: x.count) }
                var e: Double = 0
                for (k, (a, b)) in zip(x, y).enumerated() { e += Double(w[k % n]) * Double((a - b) * (a - b)) }
                return e
            }
            XCTAssertLessThan(try err(w), try err(nil), t.name)
        }
    }

    func testAwkwardRows() throws {
        var rng = SplitMix(seed: 3)
        let n = 512
        let rows: [(String, [Float])] = [
            ("zeros", [Float](repeating: 0, count: n)),
            ("small", (0..<n).map { _ in rng.normal() * 1e-2 }),
            ("huge", (0..<n).map { _ in rng.normal() * 1e3 }),
            ("heavy-tailed", (0..<n).map { i in i % 97 == 0 ? 40 * rng.normal() : 0.01 * rng.normal() }),
            ("one-sided", (0..<n).map { _ in abs(rng.normal()) + 3 }),
        ]
        for (name, x) in rows {
            let amax = x.map(abs).max()!
            for t in Self.types {
                let y = try GGMLCodec.quantize(t, x, rowLength: n).withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: n) }
                XCTAssertTrue(y.allSatisfy(\.isFinite), "\(name) \(t.name)")
                if name == "zeros" { XCTAssertEqual(y, x, t.name); continue }
                let maxErr = zip(x, y).map { abs($0 - $1) }.max()!
                // no value lands further than the whole range away (ternary types only keep the sign)
                XCTAssertLessThanOrEqual(maxErr, amax * 1.01, "\(name) \(t.name)")
                if t == .q8_0 || t == .q6_K { XCTAssertLessThan(maxErr, amax * 0.05 + 1e-6, "\(name) \(t.name)") }
            }
        }
    }

    /// Below the f16 range of the (super-)block scales, values collapse towards zero: never to NaN/Inf, and never
    /// further off than a few times their own range (ggml behaves the same).
    func testSubnormalScalesStayFinite() throws {
        var rng = SplitMix(seed: 9)
        let x = (0..<512).map { _ in rng.normal() * 1e-6 }
        let amax = x.map(abs).max()!
        for t in Self.types {
            let y = try GGMLCodec.quantize(t, x, rowLength: 512).withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: 512) }
            XCTAssertTrue(y.allSatisfy { $0.isFinite && abs($0) <= 4 * amax }, t.name)
        }
    }

    func testNaNIsRejectedByTheFiniteCheck() {
        var x = [Float](repeating: 1, count: 64)
        x[5] = .nan
        XCTAssertEqual(x.withUnsafeBufferPointer { GGMLCodec.firstNonFinite($0) }, 5)
        // the largest finite values and subnormals pass; ±Inf and NaN are found at their first position, across the
        // serial scan's 1024-value stretches and the parallel ranges
        var y = [Float](repeating: .greatestFiniteMagnitude, count: 300_000)
        for i in stride(from: 1, to: y.count, by: 2) { y[i] = i % 3 == 0 ? -.leastNonzeroMagnitude : -.greatestFiniteMagnitude }
        XCTAssertNil(y.withUnsafeBufferPointer { GGMLCodec.firstNonFinite($0) })
        XCTAssertNil(y.withUnsafeBufferPointer { GGMLCodec.firstNonFinite($0.baseAddress!, count: $0.count) })
        for (at, bad) in [(1023, Float.infinity), (1024, -Float.infinity), (199_999, Float.nan), (299_999, -Float.nan)] {
            var z = y
            z[at] = bad
            z[299_999] = bad
            XCTAssertEqual(z.withUnsafeBufferPointer { GGMLCodec.firstNonFinite($0) }, at, "\(bad) at \(at)")
            XCTAssertEqual(z.withUnsafeBufferPointer { GGMLCodec.firstNonFinite($0.baseAddress!, count: $0.count) }, at, "\(bad) at \(at)")
        }
    }

    func testThreadCountDoesNotChangeBytes() throws {
        var rng = SplitMix(seed: 11)
        let x = (0..<(256 * 48)).map { _ in rng.normal() }
        let im = (0..<256).map { _ in rng.uniform() + 0.1 }
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        for t in Self.types {
            Parallel.threads = 1
            let a = try GGMLCodec.quantize(t, x, rowLength: 256, imatrix: im)
            Parallel.threads = 3
            let b = try GGMLCodec.quantize(t, x, rowLength: 256, imatrix: im)
            XCTAssertTrue(a == b, t.name)
        }
    }

    func testQ8KDequantizeByHand() throws {
        var block = [UInt8](repeating: 0, count: 292)
        withUnsafeBytes(of: Float(0.5).bitPattern.littleEndian) { for k in 0..<4 { block[k] = $0[k] } }
        block[4] = 4; block[5] = UInt8(bitPattern: -6)
        let y = try block.withUnsafeBytes { try GGMLCodec.dequantize(.q8_K, $0, count: 256) }
        XCTAssertEqual(Array(y.prefix(3)), [2, -3, 0])
    }

    func testPresetNames() {
        XCTAssertEqual(QuantPreset.named("q4_k_m")?.ftype, 15)
        XCTAssertEqual(QuantPreset.named("Q4_K")?.name, "Q4_K_M")
        XCTAssertEqual(QuantPreset.named("15")?.name, "Q4_K_M")
        XCTAssertEqual(QuantPreset.named("BF16")?.ftype, 32)
        XCTAssertNil(QuantPreset.named("Q9_K"))
    }
}

struct SplitMix {
    var s: UInt64
    init(seed: UInt64) { s = seed }
    mutating func next() -> UInt64 {
        s &+= 0x9E37_79B9_7F4A_7C15
        var z = s
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
    mutating func normal() -> Float {
        let u1 = max(uniform(), 1e-7), u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}
