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
        WorkerPool.shared.run(n) { t in
            let lo = t * per
            let hi = min(count, lo + per)
            if lo < hi { body(lo..<hi) }
        }
    }

    /// `forRanges` over the rows of a matrix whose rows are `rowLength` values, each range at least 16K values (a
    /// row-by-row kernel: small matrices stay on one thread).
    public static func forRows(_ rows: Int, rowLength: Int, _ body: (Range<Int>) -> Void) {
        forRanges(rows, minChunk: max(1, 16384 / max(1, rowLength)), body)
    }

    /// Calls `body(range)` for the fixed blocks [0, block), [block, 2·block), … of `0..<count`, spread over the
    /// threads. The blocks do not depend on the thread count, so a kernel whose rounding depends on the shape it is
    /// given (BLAS) computes the same bytes at any thread count.
    public static func forBlocks(_ count: Int, block: Int, _ body: (Range<Int>) -> Void) {
        forBlocksWithWorker(count, block: block) { _, r in body(r) }
    }

    /// `forBlocks`, also passing the index of the worker running the block (0 ..< `threads`), so each worker can keep
    /// its own scratch buffers. Which worker runs a block is fixed by the block's index.
    public static func forBlocksWithWorker(_ count: Int, block: Int, _ body: (Int, Range<Int>) -> Void) {
        if count <= 0 { return }
        let b = max(1, block)
        let nBlocks = (count + b - 1) / b
        let n = max(1, min(threads, nBlocks))
        if n == 1 { for k in 0..<nBlocks { body(0, (k * b)..<min(count, (k + 1) * b)) }; return }
        WorkerPool.shared.run(n) { t in
            for k in stride(from: t, to: nBlocks, by: n) { body(t, (k * b)..<min(count, (k + 1) * b)) }
        }
    }
}

/// Progress callback: (what, done, total). Nothing below the CLI prints.
public typealias ProgressCallback = (String, Int, Int) -> Void
