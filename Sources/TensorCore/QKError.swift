/// The one error type quantkit throws for anything a file or a user controls.
/// `message` says what went wrong and where (file, tensor, offset), and what was expected.
public struct QKError: Error, CustomStringConvertible, Equatable {
    public let message: String

    public init(_ message: String) { self.message = message }

    /// An error about a file: "FILE: problem".
    public init(file: String, _ problem: String) { self.message = "\(file): \(problem)" }

    public var description: String { message }
}

/// Checked arithmetic for sizes that come from files: overflow is an error, never a trap.
public enum Checked {
    public static func mul(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws -> Int {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        if o || a < 0 || b < 0 { throw QKError("\(what()): size overflows (\(a) × \(b))") }
        return r
    }

    public static func add(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws -> Int {
        let (r, o) = a.addingReportingOverflow(b)
        if o { throw QKError("\(what()): size overflows (\(a) + \(b))") }
        return r
    }

    public static func product(_ xs: [Int], _ what: @autoclosure () -> String) throws -> Int {
        var p = 1
        for x in xs {
            if x < 0 { throw QKError("\(what()): negative dimension \(x)") }
            p = try mul(p, x, what())
        }
        return p
    }
}

/// Rounds `x` up to a multiple of `n` (n > 0).
@inlinable public func padTo(_ x: Int, _ n: Int) -> Int { ((x + n - 1) / n) * n }
