import XCTest
@testable import TensorCore
#if canImport(Glibc)
import Glibc
#endif

/// Large freed buffers stay mapped for the next allocation of their size, unless the environment tunes malloc itself.
final class HeapPolicyTests: XCTestCase {
    func testEnvironmentThatTunesMallocIsLeftAlone() {
        XCTAssertFalse(HeapPolicy.reuseLargeBlocks(environment: ["GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"]))
        XCTAssertFalse(HeapPolicy.reuseLargeBlocks(environment: ["MALLOC_TRIM_THRESHOLD_": "0"]))
        XCTAssertFalse(HeapPolicy.reuseLargeBlocks(environment: ["MALLOC_MMAP_THRESHOLD_": "131072"]))
    }

    #if canImport(Glibc)
    /// Minor page faults of allocating, filling and freeing a 96 MiB buffer (above glibc's largest dynamic threshold).
    func faultsOfOneBuffer() -> Int {
        var before = rusage()
        getrusage(RUSAGE_SELF.rawValue, &before)
        let n = 96 << 18
        let a = [Float](repeating: 1, count: n)
        XCTAssertEqual(a[n - 1], 1)
        var after = rusage()
        getrusage(RUSAGE_SELF.rawValue, &after)
        return after.ru_minflt - before.ru_minflt
    }

    func testSecondLargeBufferReusesTheFirstsPages() {
        XCTAssertTrue(HeapPolicy.reuseLargeBlocks(environment: [:]))
        let pages = (96 << 20) / Int(sysconf(Int32(_SC_PAGESIZE)))
        _ = faultsOfOneBuffer()
        let second = faultsOfOneBuffer()
        // without the policy glibc maps the buffer afresh: one fault per page (or per huge page) every time
        XCTAssertLessThan(second, pages / 8, "faults \(second) of \(pages) pages")
    }
    #endif
}
