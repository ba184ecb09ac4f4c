import Foundation
import Synchronization

/// Helper threads that stay awake for a moment between parallel loops. Decoding runs about 200 small parallel
/// products per token; waking a sleeping thread for each (DispatchQueue.concurrentPerform) cost more than the second
/// core gave back (SmolLM2 Q8_0: 56 tokens/s on 2 threads, 69 on 1). A helper spins on a generation counter for
/// about `spinLimit` checks after its last job, then sleeps on a condition until the next one.
public final class WorkerPool: @unchecked Sendable {
    public static let shared = WorkerPool(helpers: max(0, Parallel.threads - 1))

    public let helpers: Int
    private let generation = Atomic<Int>(0)
    private let remaining = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let sleep = NSCondition()
    private var sleepers = 0                     // guarded by `sleep`
    // written by the caller before the generation is published (release), read by helpers after (acquire)
    private var job: ((Int) -> Void)?
    private var jobCount = 0
    static let spinLimit = 200_000

    init(helpers: Int) {
        self.helpers = helpers
        for h in 0..<helpers {
            let t = Thread { [unowned self] in self.helperLoop(index: h + 1) }
            t.name = "quantkit-worker-\(h + 1)"
            t.start()
        }
    }

    private func helperLoop(index: Int) {
        var seen = 0
        while true {
            var spins = 0
            var g = generation.load(ordering: .acquiring)
            while g == seen {
                spins += 1
                if spins > Self.spinLimit {
                    sleep.lock()
                    sleepers += 1
                    while generation.load(ordering: .acquiring) == seen { sleep.wait() }
                    sleepers -= 1
                    sleep.unlock()
                    spins = 0
                }
                g = generation.load(ordering: .acquiring)
            }
            seen = g
            if index < jobCount, let job { job(index) }
            remaining.subtract(1, ordering: .releasing)
        }
    }

    /// Calls body(0 ..< n) with index 0 on the calling thread and the others on the helpers; returns when all are done.
    /// Falls back to DispatchQueue.concurrentPerform when n exceeds the helpers + 1 or the pool is already running a
    /// job (a nested or concurrent call).
    public func run(_ n: Int, _ body: (Int) -> Void) {
        if n <= 1 { if n == 1 { body(0) }; return }
        guard n <= helpers + 1, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            DispatchQueue.concurrentPerform(iterations: n, execute: body)
            return
        }
        withoutActuallyEscaping(body) { body in
            job = body
            jobCount = n
            remaining.store(helpers, ordering: .relaxed)
            generation.add(1, ordering: .releasing)
            sleep.lock()
            if sleepers > 0 { sleep.broadcast() }
            sleep.unlock()
            body(0)
            while remaining.load(ordering: .acquiring) != 0 {}
            job = nil
        }
        busy.store(false, ordering: .releasing)
    }
}
