import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Progress on a terminal (what, n/total, rate, ETA), silent when stderr is not a TTY.
final class ProgressPrinter {
    let enabled = isatty(2) == 1
    let start = Date()
    var lastDraw = Date.distantPast

    func update(_ what: String, _ done: Int, _ total: Int) {
        guard enabled else { return }
        let now = Date()
        if done < total && now.timeIntervalSince(lastDraw) < 0.1 { return }
        lastDraw = now
        let el = now.timeIntervalSince(start)
        let rate = el > 0 ? Double(done) / el : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let line = String(format: "\r\u{1B}[K%@ %ld/%ld  %.1f/s  ETA %.0fs", what, done, total, rate, eta)
        FileHandle.standardError.write(Data(line.utf8))
        if done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
