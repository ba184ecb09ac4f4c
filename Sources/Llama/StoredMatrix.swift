import Foundation
import ModelFormats
import Quantization
import RowKernels
import RowKernelsAVX2
import TensorCore

/// Which compiled copy of the row kernels runs: the AVX2/FMA/F16C one when /proc/cpuinfo lists all three, else the
/// baseline x86-64 one. `QUANTKIT_ROW_KERNELS=baseline` forces the baseline (tests compare the two).
public enum RowKernelSet: String, CaseIterable, Sendable {
    case baseline, avx2

    public static let current: RowKernelSet = {
        if ProcessInfo.processInfo.environment["QUANTKIT_ROW_KERNELS"] == "baseline" { return .baseline }
        return supported.contains(.avx2) ? .avx2 : .baseline
    }()

    /// The sets this CPU can run.
    public static var supported: [RowKernelSet] {
        CPUFeatures.flags.isSuperset(of: ["avx2", "fma", "f16c"]) ? [.baseline, .avx2] : [.baseline]
    }

    /// y[r] (+)= row r · x for r in `rows` (see RowDot.matvec).
    public func matvec(_ kind: RowKernels.RowKind, _ w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>,
                       x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        switch self {
        case .baseline:
            RowKernels.RowDot.matvec(kind, w, rowBytes: rowBytes, rows: rows, x: x, n: n, y: y, accumulate: accumulate)
        case .avx2:
            RowKernelsAVX2.RowDot.matvec(RowKernelsAVX2.RowKind(rawValue: kind.rawValue)!, w, rowBytes: rowBytes, rows: rows,
                                         x: x, n: n, y: y, accumulate: accumulate)
        }
    }

}

/// A linear's weights [rows × cols] kept as the file stores them (ggml blocks, rows in HF order) and multiplied
/// without an f32 copy of the matrix: decoding reads each weight once per token, so it reads 4-bit blocks instead of
/// f32. F32, BF16, Q8_0, Q4_0, Q5_0, Q4_K and Q6_K rows have row kernels (RowDot); other types are held dequantized
/// to f32.
public final class StoredMatrix: @unchecked Sendable {
    /// The type the bytes hold: the file's, or F32.
    public let type: GGMLType
    public let rows: Int, cols: Int, rowBytes: Int
    let kind: RowKernels.RowKind
    let data: UnsafeMutableRawBufferPointer

    static func kind(of t: GGMLType) -> RowKernels.RowKind? {
        switch t {
        case .f32: return .f32
        case .bf16: return .bf16
        case .q8_0: return .q8_0
        case .q4_0: return .q4_0
        case .q5_0: return .q5_0
        case .q4_K: return .q4_K
        case .q6_K: return .q6_K
        default: return nil
        }
    }

    /// `bytes`: the tensor's rows of type `type`; row i of this matrix is row `rowOrder[i]` of `bytes` (all rows in
    /// order when nil).
    public init(type t: GGMLType, rows: Int, cols: Int, bytes: UnsafeRawBufferPointer, rowOrder: [Int]? = nil) throws {
        guard GGMLCodec.decodable.contains(t) else { throw QKError("quantkit cannot decode \(t.name) weights") }
        guard cols % 8 == 0, cols % t.blockSize == 0 else { throw QKError("a \(t.name) matrix cannot have \(cols) columns") }
        let rb = t.rowBytes(cols)
        guard bytes.count >= rows * rb else {
            throw QKError("\(t.name) matrix [\(rows) × \(cols)] has \(bytes.count) bytes")
        }
        if let order = rowOrder {
            guard order.count == rows, order.allSatisfy({ $0 >= 0 && $0 < rows }) else {
                throw QKError("bad row order for \(rows) rows")
            }
        }
        self.rows = rows
        self.cols = cols
        if let k = Self.kind(of: t) {
            type = t
            kind = k
            rowBytes = rb
            data = .allocate(byteCount: max(1, rows * rb), alignment: 64)
            for i in 0..<rows {
                let src = rowOrder?[i] ?? i
                (data.baseAddress! + i * rb).copyMemory(from: bytes.baseAddress! + src * rb, byteCount: rb)
            }
        } else {
            type = .f32
            kind = .f32
            rowBytes = 4 * cols
            data = .allocate(byteCount: max(1, rows * rowBytes), alignment: 64)
            let f = data.baseAddress!.bindMemory(to: Float.self, capacity: rows * cols)
            for i in 0..<rows {
                let src = rowOrder?[i] ?? i
                GGMLCodec.decodeBlocks(t, bytes.baseAddress! + src * rb, f + i * cols, blocks: cols / t.blockSize)
            }
        }
    }

    deinit { data.deallocate() }

    /// Bytes held.
    public var byteCount: Int { rows * rowBytes }

    /// y[r] (+)= row r · x for r in `rows`, on the calling thread.
    public func rowProducts(_ x: UnsafePointer<Float>, rows r: Range<Int>, into y: UnsafeMutablePointer<Float>,
                            accumulate: Bool, kernels: RowKernelSet = .current) {
        kernels.matvec(kind, data.baseAddress!, rowBytes: rowBytes, rows: r, x: x, n: cols, y: y, accumulate: accumulate)
    }

    /// y_i [T × rows_i] = x [T × cols] · W_iᵀ for matrices that read the same x (q, k and v; gate and up). For a few
    /// rows of x, one parallel loop over all their rows: decoding wakes the threads once for the group.
    public static func multiply(_ ms: [StoredMatrix], _ x: UnsafePointer<Float>, count T: Int,
                                into ys: [UnsafeMutablePointer<Float>], kernels: RowKernelSet = .current) {
        guard T <= 4 else {
            for (m, y) in zip(ms, ys) { m.multiply(x, count: T, into: y, accumulate: false, kernels: kernels) }
            return
        }
        nonisolated(unsafe) let (xs, outs) = (x, ys)
        Parallel.forRanges(ms.reduce(0) { $0 + $1.rows }, minChunk: 128) { r in
            var first = 0   // the group's row index of matrix i's row 0
            for (m, y) in zip(ms, outs) {
                let lo = max(r.lowerBound, first), hi = min(r.upperBound, first + m.rows)
                if lo < hi {
                    let local = (lo - first)..<(hi - first)
                    for t in 0..<T {
                        m.rowProducts(xs + t * m.cols, rows: local, into: y + t * m.rows, accumulate: false, kernels: kernels)
                    }
                }
                first += m.rows
            }
        }
    }

    /// y [T × rows] (+)= x [T × cols] · Wᵀ. A few rows of x (decoding): row kernels, W's rows split evenly over the
    /// threads (each row's result does not depend on the split; under 256 rows, the calling thread alone). More (a
    /// prompt): blocks of 64 of W's rows made f32 in a scratch tile and multiplied by sgemm.
    public func multiply(_ x: UnsafePointer<Float>, count T: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool,
                         kernels: RowKernelSet = .current) {
        nonisolated(unsafe) let (xs, ys) = (x, y)
        let (R, C, rb) = (rows, cols, rowBytes)
        if T <= 4 {
            Parallel.forRanges(R, minChunk: 128) { r in
                for t in 0..<T {
                    self.rowProducts(xs + t * C, rows: r, into: ys + t * R, accumulate: accumulate, kernels: kernels)
                }
            }
            return
        }
        nonisolated(unsafe) let w = UnsafeRawPointer(data.baseAddress!)
        let tile = 64   // rows made f32 at a time per thread
        let workers = Parallel.threads
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: workers * tile * C)
        defer { scratch.deallocate() }
        nonisolated(unsafe) let sp = scratch
        let t = type
        Parallel.forBlocksWithWorker(R, block: tile) { worker, r in
            let f = sp + worker * tile * C
            GGMLCodec.decodeBlocks(t, w + r.lowerBound * rb, f, blocks: r.count * C / t.blockSize)  // checked at init
            BLAS.gemmNT(m: T, n: r.count, k: C, a: xs, lda: C, b: f, ldb: C, c: ys + r.lowerBound, ldc: R,
                        beta: accumulate ? 1 : 0)
        }
    }
}
