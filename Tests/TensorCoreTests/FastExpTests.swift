import Foundation
import XCTest
@testable import TensorCore

final class FastExpTests: XCTestCase {
    /// Against Foundation's exp (in double) on a dense sweep of the range softmax, SiLU and log-sum-exp use.
    func testRelativeErrorAgainstLibm() {
        var worst: Double = 0, at: Float = 0
        var x: Float = -87
        while x < 88.5 {
            let e = Double(FastExp.exp(x)), r = Foundation.exp(Double(x))
            let rel = abs(e - r) / r
            if rel > worst { worst = rel; at = x }
            x += 0.000_731
        }
        XCTAssertLessThan(worst, 2e-7, "worst relative error \(worst) at \(at)")
        XCTAssertEqual(FastExp.exp(0), 1)
        XCTAssertEqual(FastExp.exp(1), Float(M_E), accuracy: 4e-7)
    }

    func testClampedEndsStayFiniteAndPositive() {
        for x: Float in [-1e30, -1000, -88, -87.3, 88.7, 89, 1000, 1e30] {
            let e = FastExp.exp(x)
            XCTAssertTrue(e.isFinite && e > 0, "exp(\(x)) = \(e)")
        }
        XCTAssertLessThan(FastExp.exp(-1000), 2e-38)
        XCTAssertGreaterThan(FastExp.exp(1000), 3e38)
        // SiLU's use: a / (1 + e^−a) for large |a| is a or −0, never NaN
        let a: Float = -1000
        XCTAssertEqual(a / (1 + FastExp.exp(-a)), 0, accuracy: 1e-30)
    }

    func testBufferFormMatchesTheScalarForm() {
        let x = (0..<1000).map { Float($0) * 0.173 - 80 }
        var y = [Float](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { FastExp.exp(xp.baseAddress!, into: $0.baseAddress!, count: x.count) } }
        XCTAssertEqual(y, x.map { FastExp.exp($0) })
    }
}
