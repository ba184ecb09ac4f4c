import Foundation
import Synchronization
import XCTest
@testable import TensorCore

/// Counts per index, safe from any thread.
final class Counts: @unchecked Sendable {
    private var values: [Int]
    private let lock = NSLock()
    init(_ n: Int) { values = Array(repeating: 0, count: n) }
    func add(_ i: Int, _ v: Int = 1) { lock.lock(); values[i] += v; lock.unlock() }
    subscript(i: Int) -> Int { lock.lock(); defer { lock.unlock() }; return values[i] }
}

/// The spinning pool behind Parallel: every index runs exactly once per call, calls back to back (the decoding
/// pattern) and nested or concurrent calls (which fall back to Dispatch) all complete with every index done.
final class WorkerPoolTests: XCTestCase {
    func testEveryIndexRunsOncePerCall() {
        let pool = WorkerPool(helpers: 3)
        for n in 0...4 {
            for _ in 0..<2000 {
                let counts = Counts(max(1, n))
                pool.run(n) { i in counts.add(i) }
                for i in 0..<n where counts[i] != 1 { XCTFail("n=\(n) index \(i) ran \(counts[i]) times") }
            }
        }
    }

    func testMoreIndicesThanThreadsNestedAndConcurrentCalls() {
        let pool = WorkerPool(helpers: 1)
        let total = Atomic<Int>(0)
        pool.run(7) { _ in total.add(1, ordering: .relaxed) }               // more than helpers + 1: Dispatch
        XCTAssertEqual(total.load(ordering: .relaxed), 7)
        total.store(0, ordering: .relaxed)
        pool.run(2) { _ in pool.run(2) { _ in total.add(1, ordering: .relaxed) } }   // nested: the inner falls back
        XCTAssertEqual(total.load(ordering: .relaxed), 4)
        total.store(0, ordering: .relaxed)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<500 { pool.run(2) { _ in total.add(1, ordering: .relaxed) } }
        }
        XCTAssertEqual(total.load(ordering: .relaxed), 4 * 500 * 2)
    }

    /// Parallel's loops on the pool give the same sums as a serial loop, at any thread count.
    func testParallelLoopsCoverTheirRanges() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        for threads in [1, 2, 3] {
            Parallel.threads = threads
            for count in [0, 1, 5, 127, 1000] {
                let seen = Counts(max(1, count))
                Parallel.forRanges(count, minChunk: 3) { r in for i in r { seen.add(i) } }
                Parallel.forBlocks(count, block: 7) { r in for i in r { seen.add(i, 10) } }
                for i in 0..<count { XCTAssertEqual(seen[i], 11, "threads \(threads) count \(count) index \(i)") }
            }
        }
    }
}
