import Foundation

/// Wall seconds a calibration run spends in each of its phases, summed over layers — the forward pass that captures
/// inputs, the Hessians, GPTQ's solve, AWQ's searches, resume state, packing — in the order they first ran. The
/// phases do not overlap, so their sum is at most the run's wall time; `quantize` reports them (`--json`: "phases").
public final class PhaseTimes {
    public private(set) var phases: [(name: String, seconds: Double)] = []

    public init() {}

    /// Adds `seconds` to phase `name`.
    public func add(_ name: String, _ seconds: Double) {
        if let i = phases.firstIndex(where: { $0.name == name }) {
            phases[i].seconds += seconds
        } else {
            phases.append((name, seconds))
        }
    }

    /// Runs `body` and adds its wall time to phase `name`.
    @discardableResult
    public func time<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        let t0 = PhaseTimes.now()
        defer { add(name, PhaseTimes.now() - t0) }
        return try body()
    }

    public var total: Double { phases.reduce(0) { $0 + $1.seconds } }

    /// Seconds on a monotonic clock.
    public static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}

extension Optional where Wrapped == PhaseTimes {
    /// Runs `body`, timing it when there is a `PhaseTimes`.
    @discardableResult
    public func time<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        guard let t = self else { return try body() }
        return try t.time(name, body)
    }
}
