import FuzzTargets
import Foundation

#if FUZZING
// libFuzzer entry (built by Scripts/fuzz with -sanitize=fuzzer,address); the target comes from QUANTKIT_FUZZ_TARGET.
nonisolated(unsafe) let target = ProcessInfo.processInfo.environment["QUANTKIT_FUZZ_TARGET"] ?? ""

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    if !FuzzTargets.run(target, UnsafeRawBufferPointer(start: data, count: size)) {
        FileHandle.standardError.write(Data("set QUANTKIT_FUZZ_TARGET to one of \(FuzzTargets.names.joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return 0
}

// SwiftPM links executables with their entry point renamed to <product>_main; hand it to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ cb: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("quantkit_fuzz_main")
public func fuzzDriverMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var c = argc, v = argv
    return LLVMFuzzerRunDriver(&c, &v) { data, size in fuzzOne(data, size) }
}
#else
/// Replays files through a fuzz target: `quantkit-fuzz TARGET FILE...` (the corpus and crashers in CI run through
/// the test suite the same way).
@main
struct Replay {
    static func main() {
        let args = CommandLine.arguments
        guard args.count >= 3, FuzzTargets.names.contains(args[1]) else {
            print("usage: quantkit-fuzz \(FuzzTargets.names.joined(separator: "|")) FILE...")
            exit(2)
        }
        for f in args[2...] {
            guard let d = FileManager.default.contents(atPath: f) else { print("cannot read \(f)"); exit(1) }
            d.withUnsafeBytes { _ = FuzzTargets.run(args[1], $0) }
        }
        print("replayed \(args.count - 2) inputs through \(args[1])")
    }
}
#endif
