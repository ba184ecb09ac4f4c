import XCTest
@testable import TensorCore

final class HalfFloatTests: XCTestCase {
    func testF16KnownBitPatterns() {
        XCTAssertEqual(HalfFloat.f32ToF16(1.0), 0x3C00)
        XCTAssertEqual(HalfFloat.f32ToF16(-2.0), 0xC000)
        XCTAssertEqual(HalfFloat.f32ToF16(65504), 0x7BFF)
        XCTAssertEqual(HalfFloat.f32ToF16(1e6), 0x7C00)  // overflow to +Inf
        XCTAssertEqual(HalfFloat.f16ToF32(0x0001), Float(bitPattern: 0x3380_0000))  // smallest subnormal 2^-24
        // Round to nearest even: 1 + 2^-11 is a tie between 1.0 and 1 + 2^-10 -> 1.0 (even mantissa)
        XCTAssertEqual(HalfFloat.f32ToF16(1 + Float(sign: .plus, exponent: -11, significand: 1)), 0x3C00)
        XCTAssertEqual(HalfFloat.f32ToF16(1 + 3 * Float(sign: .plus, exponent: -11, significand: 1)), 0x3C02)
    }

    func testF16RoundTripIsExactForEveryFiniteHalf() {
        for bits in UInt16.min...UInt16.max where (bits & 0x7C00) != 0x7C00 {
            XCTAssertEqual(HalfFloat.f32ToF16(HalfFloat.f16ToF32(bits)), bits)
        }
    }

    /// The branch-free conversions against Swift's Float16: every bf16 value (the convert bf16 → f16 path) and
    /// every f16 value exhaustively, plus random f32 bit patterns.
    func testFastConversionsAgreeWithFloat16() {
        for bits in UInt16.min...UInt16.max {
            let x = HalfFloat.bf16ToF32(bits)
            let want = Float16(x).bitPattern
            let got = HalfFloat.f32ToF16Fast(x)
            if x.isNaN { XCTAssertEqual(got & 0x7C00, 0x7C00); XCTAssertNotEqual(got & 0x3FF, 0); continue }
            XCTAssertEqual(got, want, "bf16 \(bits)")
            let h = HalfFloat.f16ToF32Fast(bits)
            let hw = Float(Float16(bitPattern: bits))
            XCTAssertTrue(h.bitPattern == hw.bitPattern || (h.isNaN && hw.isNaN), "f16 \(bits)")
        }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200_000 {
            let x = Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))
            if x.isNaN { continue }
            XCTAssertEqual(HalfFloat.f32ToF16Fast(x), Float16(x).bitPattern, "\(x)")
        }
    }

    func testBF16RoundsToNearestEvenAndQuietsNaN() {
        XCTAssertEqual(HalfFloat.f32ToBF16(1.0), 0x3F80)
        XCTAssertEqual(HalfFloat.bf16ToF32(0x3F80), 1.0)
        // 0x3F808000 is exactly half-way between 0x3F80 and 0x3F81: ties to even (0x3F80)
        XCTAssertEqual(HalfFloat.f32ToBF16(Float(bitPattern: 0x3F80_8000)), 0x3F80)
        XCTAssertEqual(HalfFloat.f32ToBF16(Float(bitPattern: 0x3F81_8000)), 0x3F82)
        XCTAssertEqual(HalfFloat.f32ToBF16(Float(bitPattern: 0x3F80_8001)), 0x3F81)
        // A signalling NaN stays NaN (quiet bit set), never becomes Inf
        let snan = Float(bitPattern: 0x7F80_0001)
        XCTAssertEqual(HalfFloat.f32ToBF16(snan), 0x7FC0)
        for bits in stride(from: UInt16(0), to: 0x7F80, by: 7) {
            XCTAssertEqual(HalfFloat.f32ToBF16(HalfFloat.bf16ToF32(bits)), bits)
        }
    }
}
