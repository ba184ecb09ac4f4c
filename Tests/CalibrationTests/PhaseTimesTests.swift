import XCTest
@testable import Calibration

/// The phase clock of calibrated runs: seconds summed by name, in the order the phases first ran.
final class PhaseTimesTests: XCTestCase {
    struct Boom: Error {}

    func testAddsByNameInFirstRunOrder() {
        let t = PhaseTimes()
        t.add("b", 1.5)
        t.add("a", 2)
        t.add("b", 0.25)
        XCTAssertEqual(t.phases.map(\.name), ["b", "a"])
        XCTAssertEqual(t.phases.map(\.seconds), [1.75, 2])
        XCTAssertEqual(t.total, 3.75)
    }

    func testTimeReturnsTheBodysValueAndCountsThrowingBodies() throws {
        let t = PhaseTimes()
        let before = PhaseTimes.now()
        let v = t.time("sleep") { () -> Int in
            usleep(20_000)
            return 7
        }
        let wall = PhaseTimes.now() - before
        XCTAssertEqual(v, 7)
        XCTAssertGreaterThanOrEqual(t.phases[0].seconds, 0.02)
        XCTAssertLessThanOrEqual(t.phases[0].seconds, wall)
        XCTAssertThrowsError(try t.time("fails") { throw Boom() })
        XCTAssertEqual(t.phases.map(\.name), ["sleep", "fails"], "a phase that threw still counts its time")
        let none: PhaseTimes? = nil
        XCTAssertEqual(none.time("x") { 3 }, 3, "no clock: the body runs all the same")
    }
}
