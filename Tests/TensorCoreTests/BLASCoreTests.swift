import XCTest
@testable import TensorCore

/// The OpenBLAS core quantkit asks for when OpenBLAS falls back to a generic one comes from the CPU's flags alone.
final class BLASCoreTests: XCTestCase {
    func testCandidateFromFlags() {
        let avx2: Set<String> = ["sse4_2", "avx", "avx2", "fma", "f16c", "bmi2"]
        let avx512 = avx2.union(["avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"])
        XCTAssertEqual(BLASCore.candidate(flags: avx2), "Haswell")                             // Zen 3 EPYC
        XCTAssertEqual(BLASCore.candidate(flags: avx512), "SkylakeX")                          // Skylake/Cascade Lake Xeon
        XCTAssertEqual(BLASCore.candidate(flags: avx512.union(["avx512_bf16", "amx_tile"])), "Cooperlake")  // Zen 4, Sapphire Rapids
        XCTAssertEqual(BLASCore.candidate(flags: avx2.subtracting(["fma"])), nil)
        XCTAssertEqual(BLASCore.candidate(flags: avx512.subtracting(["avx512bw"])), "Haswell")  // incomplete AVX-512 (Knights)
        XCTAssertEqual(BLASCore.candidate(flags: ["sse2", "avx512_bf16"]), nil)
    }
}
