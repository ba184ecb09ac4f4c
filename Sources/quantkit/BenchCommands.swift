import ArgumentParser
import Calibration
import Checkpoints
import Foundation
import RowKernels
import Llama
import ModelFormats
import QuantKit
import Quantization
import TensorCore
import Tokenizers

/// Hidden helpers for Scripts/bench: bare sgemm GFLOP/s on the forward pass's shapes (OpenBLAS's, and quantkit's own
/// AVX-512 kernel where the CPU has it, alternating), tokenizer MB/s.
struct BenchSgemm: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-sgemm", abstract: "GFLOP/s of cblas_sgemm on given shapes.", shouldDisplay: false)
    @Option(help: "M,N,K triples separated by ';'.") var shapes: String = "512,576,576;512,192,576;512,1536,576;512,576,1536;256,49152,576"
    @Option(help: "Repeats.") var repeats: Int = 5
    func run() throws {
        // gflops: the kernel the forward pass uses (BLAS.kernel); also each kernel this CPU runs, measured in turns,
        // split over quantkit's threads as the forward pass splits them, OpenBLAS single-threaded as the forward
        // sets it (its own threads would spin beside ours)
        BLAS.setThreads(1)
        let used = BLAS.kernel
        let kernels = BLAS.Kernel.supported
        var flops = 0.0
        var secs = [Double](repeating: 0, count: kernels.count)
        for s in shapes.split(separator: ";") {
            let d = s.split(separator: ",").compactMap { Int($0) }
            guard d.count == 3 else { throw ValidationError("bad shape \(s)") }
            let (m, n, k) = (d[0], d[1], d[2])
            let a = [Float](repeating: 0.01, count: m * k), b = [Float](repeating: 0.02, count: n * k)
            var c = [Float](repeating: 0, count: m * n)
            for r in 0...repeats {
                for (i, kernel) in kernels.enumerated() {
                    BLAS.kernel = kernel
                    let t0 = Date()
                    a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                        BLAS.gemmNTParallel(m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: k, c: &c, ldc: n)
                    } }
                    if r > 0 { secs[i] += Date().timeIntervalSince(t0) }
                }
                if r > 0 { flops += 2.0 * Double(m * n * k) }
            }
        }
        BLAS.kernel = used
        let each = zip(kernels, secs).map { String(format: "\"%@\": %.1f", $0.rawValue, flops / $1 / 1e9) }.joined(separator: ", ")
        let usedGflops = flops / secs[kernels.firstIndex(of: used) ?? 0] / 1e9
        print(String(format: "{\"gflops\": %.1f, \"kernel\": \"%@\", \"core\": \"%@\", \"kernels\": {%@}}", usedGflops, used.rawValue,
                     BLAS.coreName, each))
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

/// The calibration windows `quantize --method gptq|awq` would run on, as JSON token ids, so Scripts/bench calibrate gives
/// its peers (llm-compressor) exactly the same windows.
struct BenchWindows: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-windows", abstract: "Print calibration windows as JSON.",
                                                    shouldDisplay: false)
    @Argument var model: String
    @OptionGroup var calib: CalibrationOptions
    func run() throws {
        try guarded {
            let windows = try calib.set().windows(LoadedModel.tokenizer(model))
            let j: JSONValue = .array(windows.map { w in .array(w.map { .int(Int64($0)) }) })
            print(j.serialized())
        }
    }
}

/// GB/s of each row kernel: one thread, products of one vector with a --rows × --cols matrix of each type (the default
/// 8192 × 4096 is 18–134 MB, so the 4-bit types may sit in a large L3), on both kernel sets this CPU runs.
struct BenchRowKernels: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-rowkernels", abstract: "Row-kernel GB/s.", shouldDisplay: false)
    @Option(help: "Rows and columns.") var rows: Int = 8192
    @Option var cols: Int = 4096
    @Option(help: "Repeats (the best is reported).") var repeats: Int = 5
    @Option(help: "Types to measure, comma-separated (default: all with a row kernel).")
    var types: String = "F32,F16,BF16,Q4_0,Q5_0,Q8_0,Q4_K,Q6_K"
    func run() throws {
        try guarded {
            let picked = try types.split(separator: ",").map { name in
                guard let t = GGMLType.named(String(name)) else { throw QKError("bench-rowkernels: unknown type \(name)") }
                return t
            }
            let x: [Float] = (0..<cols).map { i in Float(i % 17) / 17 - 0.5 }
            var values = [Float](repeating: 0, count: rows * cols)
            for i in values.indices {
                let h = (i &* 2654435761) % 2001
                values[i] = Float(h) / 1000 - 1
            }
            var report: [(String, JSONValue)] = []
            for t in picked {
                let bytes = try GGMLCodec.quantize(t, values, rowLength: cols)
                let m = try bytes.withUnsafeBytes { try StoredMatrix(type: t, rows: rows, cols: cols, bytes: $0) }
                var y = [Float](repeating: 0, count: rows)
                var line: [(String, JSONValue)] = []
                for k in RowKernelSet.supported {
                    var best = Double.infinity
                    for _ in 0..<repeats {
                        let t0 = Date()
                        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                            m.rowProducts(xp.baseAddress!, rows: 0..<rows, into: yp.baseAddress!, accumulate: false, kernels: k)
                        } }
                        best = min(best, Date().timeIntervalSince(t0))
                    }
                    line.append((k.rawValue, .double((Double(m.byteCount) / best / 1e9 * 100).rounded() / 100)))
                    // the integer kernel, activations rounded as llama.cpp rounds them (rounding included)
                    guard let block = RowKernels.Int8Dot.block(m.kind) else { continue }
                    best = .infinity
                    for _ in 0..<repeats {
                        let t0 = Date()
                        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                            let a = Int8Activations(xp.baseAddress!, count: 1, n: cols, block: block)
                            m.rowProducts(a, row: 0, rows: 0..<rows, into: yp.baseAddress!, accumulate: false,
                                          kernels: k)
                        } }
                        best = min(best, Date().timeIntervalSince(t0))
                    }
                    let gbs = (Double(m.byteCount) / best / 1e9 * 100).rounded() / 100
                    line.append((k.rawValue + "-int8", .double(gbs)))
                }
                report.append((t.name, .object(line)))
            }
            print(JSONValue.object(report).serialized())
        }
    }
}
