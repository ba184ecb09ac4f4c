import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Debian's OpenBLAS 0.3.21 does not recognize newer CPUs and runs generic SSE3 kernels ("Prescott"), about
/// 5× slower than its SkylakeX/Haswell kernels. OpenBLAS reads OPENBLAS_CORETYPE only when it loads, so quantkit
/// re-executes itself with the variable set — only when the variable is unset, the detected core is generic, the
/// CPU has the features the better kernels need, and a child process running a small sgemm with that core agrees
/// with a plain-loop reference (a child, so a faulting kernel cannot take the main process down).
public enum BLASCore {
    static let generic: Set<String> = ["Prescott", "Core2", "Nehalem", "Katmai", "Coppermine", "Northwood", "Banias", "Atom", "Dunnington", "Penryn"]

    /// The better core for this CPU, from /proc/cpuinfo flags.
    public static func candidate() -> String? { candidate(flags: CPUFeatures.flags) }

    /// The OpenBLAS core whose kernels these CPU flags can run: AVX-512 with BF16 → Cooperlake (fastest sgemm on a
    /// Zen 4 EPYC: 129 GFLOP/s vs SkylakeX 98, Haswell 100, Zen 95, Prescott 41), AVX-512 → SkylakeX,
    /// AVX2+FMA → Haswell (what OpenBLAS runs for Zen too). Only used when OpenBLAS itself fell back to a generic core.
    public static func candidate(flags: Set<String>) -> String? {
        let avx512: Set<String> = ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"]
        if flags.isSuperset(of: avx512), flags.contains("avx512_bf16") { return "Cooperlake" }
        if flags.isSuperset(of: avx512) { return "SkylakeX" }
        if flags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
        return nil
    }

    /// Re-executes the process with OPENBLAS_CORETYPE set when that helps. Returns only if it does not re-exec.
    public static func selectFastKernels() {
        let env = ProcessInfo.processInfo.environment
        if env["OPENBLAS_CORETYPE"] != nil || env["QUANTKIT_BLAS_CHECKED"] != nil { return }
        guard generic.contains(BLAS.coreName), let core = candidate() else { return }
        setenv("QUANTKIT_BLAS_CHECKED", "1", 1)
        // self-check in a child
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        p.arguments = ["blas-selfcheck"]
        var e = env
        e["OPENBLAS_CORETYPE"] = core
        e["QUANTKIT_BLAS_CHECKED"] = "1"
        p.environment = e
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return }
        p.waitUntilExit()
        guard p.terminationReason == .exit, p.terminationStatus == 0 else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        let args = CommandLine.arguments
        var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
        cargs.append(nil)
        execv("/proc/self/exe", cargs)
        // execv only returns on failure: carry on with the generic kernels
    }

    /// sgemm against a plain-loop reference on a few shapes; true when they agree to 1e-4 relative.
    public static func selfCheck() -> Bool {
        var s: UInt32 = 12345
        func r() -> Float { s = s &* 1_103_515_245 &+ 12345; return Float(Int(s >> 16) % 2001 - 1000) / 1000 }
        for (m, n, k) in [(37, 53, 71), (128, 96, 576), (5, 300, 64)] {
            let a = (0..<(m * k)).map { _ in r() }, b = (0..<(n * k)).map { _ in r() }
            var c = [Float](repeating: 0, count: m * n)
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                BLAS.gemmNT(m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: k, c: &c, ldc: n)
            } }
            for i in 0..<m {
                for j in 0..<n {
                    var ref: Double = 0
                    for t in 0..<k { ref += Double(a[i * k + t]) * Double(b[j * k + t]) }
                    if abs(Double(c[i * n + j]) - ref) > 1e-4 * max(1, abs(ref)) { return false }
                }
            }
        }
        return true
    }
}
