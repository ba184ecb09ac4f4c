import Foundation

/// Parallel loops. Work is split into contiguous chunks so results never depend on the thread count.
public enum Parallel {
    /// Threads to use: `QUANTKIT_THREADS` if set, else the number of active cores.
    nonisolated(unsafe) public static var threads: Int = {
        if let s = ProcessInfo.processInfo.environment["QUANTKIT_THREADS"], let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Calls `body(range)` over `0..<count` split into at most `threads` contiguous ranges.
    public static func forRanges(_ count: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let n = max(1, min(threads, count / max(1, minChunk)))
        if n == 1 { body(0..<count); return }
        let per = (count + n - 1) / n
        DispatchQueue.concurrentPerform(iterations: n) { t in
            let lo = t * per
            let hi = min(count, lo + per)
            if lo < hi { body(lo..<hi) }
        }
    }
}
