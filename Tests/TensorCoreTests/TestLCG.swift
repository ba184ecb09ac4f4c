/// Knuth's 64-bit linear congruential generator: reproducible pseudo-random test inputs.
struct TestLCG {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state
    }
}
