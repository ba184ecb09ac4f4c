import Foundation
#if canImport(Glibc)
import CMalloc
#endif

/// How glibc's allocator serves the large buffers of calibration.
///
/// glibc maps every block above its mmap threshold (128 KiB, raised as blocks are freed, to at most 32 MiB) afresh
/// and unmaps it on free, so each new buffer of that size faults in zeroed pages. The AWQ scale search allocates the
/// scaled weights of a linear per grid point (1536 × 8960 floats, 55 MB, on Qwen2.5-Coder-1.5B; 180 MB at 7B): on two
/// 1.5B layers 9.0 M page faults and 101 s of 430 CPU-s in the kernel, most of it clearing pages. Served from the heap
/// (threshold 1 GiB) with at most 256 MiB of free memory kept at its top, the same run took 1.5 M faults and 35 s of
/// kernel time, with the same peak RSS and the same output bytes.
public enum HeapPolicy {
    public static let mmapThreshold: Int32 = 1 << 30
    public static let trimThreshold: Int32 = 1 << 28

    /// Keeps large freed blocks for reuse, unless the environment already tunes glibc's allocator (GLIBC_TUNABLES
    /// naming a malloc tunable, MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_). Returns whether it changed anything.
    @discardableResult
    public static func reuseLargeBlocks(environment env: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        #if canImport(Glibc)
        if env["GLIBC_TUNABLES"]?.contains("glibc.malloc.") == true { return false }
        if env["MALLOC_MMAP_THRESHOLD_"] != nil || env["MALLOC_TRIM_THRESHOLD_"] != nil { return false }
        let mapped = mallopt(M_MMAP_THRESHOLD, mmapThreshold)
        let trimmed = mallopt(M_TRIM_THRESHOLD, trimThreshold)
        return mapped == 1 && trimmed == 1
        #else
        return false
        #endif
    }
}
