import Foundation
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT/SIGTERM: remove every partial output, say so, exit 130/143.
enum Signals {
    nonisolated(unsafe) static var sources: [DispatchSourceSignal] = []

    static func install() {
        if !sources.isEmpty { return }
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler {
                let removed = PartialFiles.removeAllForExit()
                let name = sig == SIGINT ? "SIGINT" : "SIGTERM"
                let msg = "quantkit: interrupted by \(name)" + (removed.isEmpty ? "" : "; removed \(removed.joined(separator: ", "))") + "\n"
                FileHandle.standardError.write(Data(msg.utf8))
                // _exit: no atexit handlers (OpenBLAS frees its buffers there) while worker threads may still be computing
                _exit(128 + sig)
            }
            s.resume()
            sources.append(s)
        }
    }
}
