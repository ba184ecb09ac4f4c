import ArgumentParser
import Foundation
import QuantKit
import TensorCore
import Tokenizers

/// Hidden helpers for Scripts/bench: bare sgemm GFLOP/s on the forward pass's shapes, tokenizer MB/s.
struct BenchSgemm: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-sgemm", abstract: "GFLOP/s of cblas_sgemm on given shapes.", shouldDisplay: false)
    @Option(help: "M,N,K triples separated by ';'.") var shapes: String = "512,576,576;512,192,576;512,1536,576;512,576,1536;256,49152,576"
    @Option(help: "Repeats.") var repeats: Int = 5
    func run() throws {
        var flops = 0.0, secs = 0.0
        for s in shapes.split(separator: ";") {
            let d = s.split(separator: ",").compactMap { Int($0) }
            guard d.count == 3 else { throw ValidationError("bad shape \(s)") }
            let (m, n, k) = (d[0], d[1], d[2])
            let a = [Float](repeating: 0.01, count: m * k), b = [Float](repeating: 0.02, count: n * k)
            var c = [Float](repeating: 0, count: m * n)
            for r in 0...repeats {
                let t0 = Date()
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                    BLAS.gemmNT(m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: k, c: &c, ldc: n)
                } }
                if r > 0 { secs += Date().timeIntervalSince(t0); flops += 2.0 * Double(m * n * k) }
            }
        }
        print(String(format: "{\"gflops\": %.1f, \"core\": \"%@\"}", flops / secs / 1e9, BLAS.coreName))
    }
}

struct BenchTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-tokenizer", abstract: "Tokenizer MB/s on a text file.", shouldDisplay: false)
    @Argument var model: String
    @Argument var text: String
    func run() throws {
        try guarded {
            let tok = try Tokenizer(gguf: model)
            let s = try String(contentsOfFile: text, encoding: .utf8)
            let t0 = Date()
            let ids = tok.encode(s, addSpecial: false, parseSpecial: false)
            let dt = Date().timeIntervalSince(t0)
            print(String(format: "{\"mb_per_s\": %.2f, \"tokens\": %ld, \"seconds\": %.3f}", Double(s.utf8.count) / dt / 1e6, ids.count, dt))
        }
    }
}
