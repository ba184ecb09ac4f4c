import XCTest
@testable import TensorCore

/// The eight-accumulator reductions against their one-element-at-a-time references.
final class ReductionsTests: XCTestCase {
    /// Values with varied magnitudes and signs, so a different summation order would give different bits.
    static func values(_ n: Int, seed: UInt64) -> [Float] {
        var g = TestLCG(seed: seed)
        return (0..<n).map { _ in
            let s = g.next()
            let u = Float(s >> 40) / Float(1 << 24)                       // [0, 1)
            return (u - 0.5) * Float(1 << Int((s >> 20) % 12))            // up to ±1024
        }
    }

    func testMaxEqualsTheScalarMaximumAtEveryLength() {
        for n in 0..<70 {
            let x = Self.values(n, seed: UInt64(n) + 1)
            x.withUnsafeBufferPointer { p in
                let base = p.baseAddress ?? UnsafePointer(bitPattern: 16)!
                XCTAssertEqual(Reductions.max(base, n), Reductions.scalarMax(base, n), "n = \(n)")
                XCTAssertEqual(Reductions.max(base, n), n == 0 ? -.infinity : x.max()!, "n = \(n)")
            }
        }
        // the maximum in the tail, in the last lane, and −∞ entries
        var x = [Float](repeating: -1, count: 21)
        x[20] = 5; XCTAssertEqual(x.withUnsafeBufferPointer { Reductions.max($0.baseAddress!, 21) }, 5)
        x[20] = -1; x[15] = 3; XCTAssertEqual(x.withUnsafeBufferPointer { Reductions.max($0.baseAddress!, 21) }, 3)
        let allInf = [Float](repeating: -.infinity, count: 9)
        XCTAssertEqual(allInf.withUnsafeBufferPointer { Reductions.max($0.baseAddress!, 9) }, -.infinity)
    }

    func testSumsEqualTheirReferencesBitForBit() {
        for n in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 511, 512, 49152] {
            let x = Self.values(n, seed: UInt64(n) + 7)
            x.withUnsafeBufferPointer { p in
                let base = p.baseAddress ?? UnsafePointer(bitPattern: 16)!
                let s = Reductions.sum(base, n)
                XCTAssertEqual(s.bitPattern, Reductions.scalarSum(base, n).bitPattern, "n = \(n)")
                // and close to the exact sum
                let exact = x.reduce(0.0) { $0 + Double($1) }
                XCTAssertEqual(Double(s), exact, accuracy: 1e-5 * max(1, x.reduce(0.0) { $0 + Double(abs($1)) }), "n = \(n)")
                XCTAssertEqual(Reductions.sumInDouble(base, n), exact, accuracy: 1e-12 * max(1, abs(exact)), "n = \(n)")
            }
        }
    }
}
