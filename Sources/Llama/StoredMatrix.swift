import CRowKernels
import Foundation
import ModelFormats
import Quantization
import RowKernels
import TensorCore

/// Which row kernels run: the C ones with AVX2/FMA/F16C (Sources/CRowKernels) when /proc/cpuinfo lists all three,
/// else the Swift ones for the baseline x86-64 (RowKernels: the reference). `QUANTKIT_ROW_KERNELS=baseline` forces
/// the baseline, `=avx2` keeps the AVX2 set off its AVX-512 float kernels (tests run all).
public enum RowKernelSet: String, CaseIterable, Sendable {
    case baseline, avx2

    public static let current: RowKernelSet = {
        if ProcessInfo.processInfo.environment["QUANTKIT_ROW_KERNELS"] == "baseline" { return .baseline }
        return supported.contains(.avx2) ? .avx2 : .baseline
    }()

    /// Whether the AVX2 set's f32 products run their AVX-512F copies (CRowKernels/FloatKernels512.c: 16 lanes, the
    /// same sums): where /proc/cpuinfo lists avx512f, unless QUANTKIT_ROW_KERNELS=avx2.
    nonisolated(unsafe) public static var avx512Floats = CPUFeatures.flags.contains("avx512f")
        && ProcessInfo.processInfo.environment["QUANTKIT_ROW_KERNELS"] != "avx2"

    /// The sets this CPU can run.
    public static var supported: [RowKernelSet] {
        CPUFeatures.flags.isSuperset(of: ["avx2", "fma", "f16c"]) ? [.baseline, .avx2] : [.baseline]
    }

    /// y[r] (+)= row r · x for r in `rows`: the Swift kernels (RowDot.matvec, the reference) in the baseline set, the
    /// C ones (CRowKernels/FloatKernels.c: FMA, scales once per 16 or 32 values; FloatKernels512.c where
    /// `avx512Floats`) in the AVX2 set — the dequantized rows' products in both, up to float rounding.
    public func matvec(_ kind: RowKernels.RowKind, _ w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>,
                       x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        switch self {
        case .baseline:
            RowKernels.RowDot.matvec(kind, w, rowBytes: rowBytes, rows: rows, x: x, n: n, y: y, accumulate: accumulate)
        case .avx2:
            let products = Self.avx512Floats ? qk_f32_matvec_avx512 : qk_f32_matvec_avx2
            let status = products(Int32(kind.rawValue), w, rowBytes, rows.lowerBound, rows.upperBound, x, n, y,
                                  accumulate ? 1 : 0)
            precondition(status == 0, "row kernel for \(kind): status \(status)")
        }
    }

    /// y[r] (+)= row r · x̂ for x̂ rounded to int8: the Swift kernels (Int8Dot.matvec) in the baseline set, the C ones
    /// (pmaddubsw, CRowKernels/Int8Kernels.c) in the AVX2 set — the same integer sums, the blocks' floats summed in
    /// another order.
    public func matvecInt8(_ kind: RowKernels.RowKind, _ w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>,
                           _ a: Int8Activations, row t: Int, y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let (v, d, s) = a.pointers(row: t)
        switch self {
        case .baseline:
            RowKernels.Int8Dot.matvec(kind, w, rowBytes: rowBytes, rows: rows, values: v, scales: d, sums: s, n: a.n,
                                      y: y, accumulate: accumulate)
        case .avx2:
            let status = qk_int8_matvec_avx2(Int32(kind.rawValue), w, rowBytes, rows.lowerBound, rows.upperBound,
                                             a.bytes(row: t), d, s, a.n, y, accumulate ? 1 : 0)
            precondition(status == 0, "no integer kernel for \(kind)")
        }
    }
}

/// How stored linears meet the activations: as f32 (`exact`: a row's product is that of its dequantized values), or
/// rounded to int8 as llama.cpp rounds them before its dot products (`llama`: per 32 values for Q4_0/Q5_0/Q8_0 rows,
/// per 256 for Q4_K/Q6_K; integer products — its numbers up to float order). Other rows (BF16, F16, F32, types held
/// as f32) take the activations as they are, as llama.cpp's bf16 decoding does in effect (its greedy tokens equal the
/// exact products'). With `llama`, prompts run the integer tiles (`Int8Tiles`).
public enum ActivationRounding: String, CaseIterable, Sendable {
    case exact, llama
}

/// The integer tiles for Q4_K, Q6_K, Q8_0, Q4_0 and Q5_0 rows under `llama` rounding, beside the AVX2 row kernels:
/// AVX-512 VNNI (CRowKernels/Int8Gemm.c: 8 tokens × 16 rows) where /proc/cpuinfo lists avx512f, avx512bw, avx512vl and
/// avx512_vnni, else AVX2 (Int8GemmAVX2.c: vpmaddubsw, 4 tokens × 8 rows). `QUANTKIT_INT8_TILES=off` turns them off
/// (the row kernels, token by token), `=avx2` picks the AVX2 tiles where both run. With the VNNI tiles the
/// activations are rounded by CRowKernels' AVX-512 copy of Int8Dot.quantize.
public enum Int8Tiles {
    public enum Kind: String, Sendable {
        case avx512vnni, avx2
    }

    /// Whether this CPU runs the VNNI tiles (the AVX2 ones run wherever the AVX2 row kernels do).
    public static let vnniSupported = CPUFeatures.flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl",
                                                                        "avx512_vnni", "f16c"])

    /// The tiles in use (nil: none).
    nonisolated(unsafe) public static var kind: Kind? = {
        switch ProcessInfo.processInfo.environment["QUANTKIT_INT8_TILES"] {
        case "off": return nil
        case "avx2": return .avx2
        default: return vnniSupported ? .avx512vnni : .avx2
        }
    }()
}

/// x [T × n] rounded to int8 blocks of `block` values (Int8Dot.quantize), one set of buffers per row of x.
public final class Int8Activations: @unchecked Sendable {
    public let n: Int, count: Int, block: Int
    let values: UnsafeMutablePointer<Int16>, scales: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Int32>
    /// The rounded values as bytes in their natural order (the C kernels' form).
    let int8: UnsafeMutablePointer<Int8>

    public init(_ x: UnsafePointer<Float>, count T: Int, n: Int, block: Int) {
        precondition(n % block == 0 && (block == 32 || block == 256),
                     "int8 activations: \(n) values in blocks of \(block)")
        self.n = n
        self.count = T
        self.block = block
        values = .allocate(capacity: T * n)
        scales = .allocate(capacity: T * n / block)
        sums = .allocate(capacity: T * n / 16)
        int8 = .allocate(capacity: T * n)
        Parallel.forRanges(T, minChunk: 16) { rows in   // rows of x on their own: any split gives the same bytes
            for t in rows { self.round(x + t * n, row: t) }
        }
    }

    private func round(_ x: UnsafePointer<Float>, row t: Int) {
        let (v, d, s) = pointers(row: t)
        if Int8Tiles.kind == .avx512vnni {
            qk_round_int8_avx512(x, n, block, .init(mutating: v), .init(mutating: d), .init(mutating: s), int8 + t * n)
            return
        }
        RowKernels.Int8Dot.quantize(x, n: n, block: block, values: .init(mutating: v), scales: .init(mutating: d),
                                    sums: .init(mutating: s))
        let o = int8 + t * n
        for g in stride(from: 0, to: n, by: 32) {   // per 32: 16 even-indexed values, then 16 odd-indexed ones
            for k in 0..<16 {
                o[g + 2 * k] = Int8(v[g + k])   // −128…127 (Int8Dot.int8)
                o[g + 2 * k + 1] = Int8(v[g + 16 + k])
            }
        }
    }

    deinit {
        values.deallocate()
        scales.deallocate()
        sums.deallocate()
        int8.deallocate()
    }

    func pointers(row t: Int) -> (UnsafePointer<Int16>, UnsafePointer<Float>, UnsafePointer<Int32>) {
        (.init(values + t * n), .init(scales + t * n / block), .init(sums + t * n / 16))
    }

    func bytes(row t: Int) -> UnsafePointer<Int8> { .init(int8 + t * n) }

    /// The rounded values as floats (q · d), row t (tests).
    public func dequantized(row t: Int) -> [Float] {
        let (v, d, _) = pointers(row: t)
        return (0..<n).map { i in
            let g = i / 32 * 32, j = i % 32
            return Float(v[g + (j % 2 == 0 ? j / 2 : 16 + j / 2)]) * d[i / block]
        }
    }
}

/// The activations a stored matrix's kernel reads under a rounding, made once for matrices that share x.
final class KernelInputs {
    let x: UnsafePointer<Float>, count: Int, n: Int, rounding: ActivationRounding
    private var int8: [Int: Int8Activations] = [:]

    init(_ x: UnsafePointer<Float>, count: Int, n: Int, rounding: ActivationRounding) {
        (self.x, self.count, self.n, self.rounding) = (x, count, n, rounding)
    }

    enum Input {
        case floats(UnsafePointer<Float>)
        case int8(Int8Activations)
    }

    /// What `m`'s kernel reads (valid while this object lives).
    func input(for m: StoredMatrix) -> Input {
        guard rounding == .llama else { return .floats(x) }
        guard let b = RowKernels.Int8Dot.block(m.kind) else { return .floats(x) }
        if let a = int8[b] { return .int8(a) }
        let a = Int8Activations(x, count: count, n: n, block: b)
        int8[b] = a
        return .int8(a)
    }
}

/// A linear's weights [rows × cols] kept as the file stores them (ggml blocks, rows in HF order) and multiplied
/// without an f32 copy of the matrix: decoding reads each weight once per token, so it reads 4-bit blocks instead of
/// f32. F32, BF16, F16, Q8_0, Q4_0, Q5_0, Q4_K and Q6_K rows have row kernels (RowDot); other types are held
/// dequantized to f32.
public final class StoredMatrix: @unchecked Sendable {
    /// The type the bytes hold: the file's, or F32.
    public let type: GGMLType
    public let rows: Int, cols: Int, rowBytes: Int
    public let kind: RowKernels.RowKind
    let data: UnsafeMutableRawBufferPointer

    static func kind(of t: GGMLType) -> RowKernels.RowKind? {
        switch t {
        case .f32: return .f32
        case .bf16: return .bf16
        case .f16: return .f16
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

    /// y[r] (+)= row r · x̂ for r in `rows`, x̂ row t of int8 activations rounded for this matrix's kind.
    public func rowProducts(_ a: Int8Activations, row t: Int, rows r: Range<Int>, into y: UnsafeMutablePointer<Float>,
                            accumulate: Bool, kernels: RowKernelSet = .current) {
        precondition(a.n == cols && RowKernels.Int8Dot.block(kind) == a.block, "int8 activations of the wrong form")
        kernels.matvecInt8(kind, data.baseAddress!, rowBytes: rowBytes, rows: r, a, row: t, y: y,
                           accumulate: accumulate)
    }

    /// Row t of `input` times rows `r`.
    func rowProducts(_ input: KernelInputs.Input, row t: Int, rows r: Range<Int>, into y: UnsafeMutablePointer<Float>,
                     accumulate: Bool, kernels: RowKernelSet) {
        switch input {
        case .floats(let x): rowProducts(x + t * cols, rows: r, into: y, accumulate: accumulate, kernels: kernels)
        case .int8(let a): rowProducts(a, row: t, rows: r, into: y, accumulate: accumulate, kernels: kernels)
        }
    }

    /// y_i [T × rows_i] = x [T × cols] · W_iᵀ for matrices that read the same x (q, k and v; gate and up). For a few
    /// rows of x, one parallel loop over all their rows: decoding wakes the threads once for the group.
    public static func multiply(_ ms: [StoredMatrix], _ x: UnsafePointer<Float>, count T: Int,
                                into ys: [UnsafeMutablePointer<Float>], rounding: ActivationRounding = .exact,
                                kernels: RowKernelSet = .current) {
        let given = KernelInputs(x, count: T, n: ms[0].cols, rounding: rounding)
        guard T <= 4 else {   // the activations rounded once for the group
            for (m, y) in zip(ms, ys) { m.multiply(given, into: y, accumulate: false, kernels: kernels) }
            return
        }
        nonisolated(unsafe) let inputs = ms.map { given.input(for: $0) }
        nonisolated(unsafe) let outs = ys
        Parallel.forRanges(ms.reduce(0) { $0 + $1.rows }, minChunk: 128) { r in
            var first = 0   // the group's row index of matrix i's row 0
            for (i, m) in ms.enumerated() {
                let lo = max(r.lowerBound, first), hi = min(r.upperBound, first + m.rows)
                if lo < hi {
                    let local = (lo - first)..<(hi - first)
                    for t in 0..<T {
                        m.rowProducts(inputs[i], row: t, rows: local, into: outs[i] + t * m.rows, accumulate: false,
                                      kernels: kernels)
                    }
                }
                first += m.rows
            }
        }
        withExtendedLifetime(given) {}
    }

    /// The most values of an F16/BF16 matrix a prompt widens to f32 at once (64 MiB); larger ones go by 256-row tiles.
    nonisolated(unsafe) static var wholeWidening = 1 << 24

    /// y [T × rows] (+)= x [T × cols] · Wᵀ. A few rows of x (decoding), or any number under `llama` rounding when
    /// this kind has an integer kernel: row kernels, W's rows split evenly over the threads (each row's result does
    /// not depend on the split; under 256 rows, the calling thread alone) — or, for more than 4 rows with the AVX2
    /// kernels, the integer tiles. Otherwise (a prompt): f32 rows by sgemm as they are, other types in
    /// blocks of 256 of W's rows made f32 in a scratch tile and multiplied by sgemm.
    public func multiply(_ x: UnsafePointer<Float>, count T: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool,
                         rounding: ActivationRounding = .exact, kernels: RowKernelSet = .current) {
        let given = KernelInputs(x, count: T, n: cols, rounding: rounding)
        multiply(given, into: y, accumulate: accumulate, kernels: kernels)
    }

    /// `multiply` with the activations as `given` holds them (rounded once for matrices that share them). Under `llama`
    /// rounding, rows with an integer kernel meet many tokens in the integer tiles (`Int8Tiles.kind`, the row
    /// kernels' integer sums).
    func multiply(_ given: KernelInputs, into y: UnsafeMutablePointer<Float>, accumulate: Bool, kernels: RowKernelSet) {
        let T = given.count
        nonisolated(unsafe) let (xs, ys) = (given.x, y)
        let (R, C, rb) = (rows, cols, rowBytes)
        if T <= 4 || (given.rounding == .llama && RowKernels.Int8Dot.block(kind) != nil) {
            nonisolated(unsafe) let input = given.input(for: self)
            let rowKernels = { (r: Range<Int>) in
                for t in 0..<T {
                    self.rowProducts(input, row: t, rows: r, into: ys + t * R, accumulate: accumulate, kernels: kernels)
                }
            }
            if case .int8(let a) = input, T > 4, kernels == .avx2, let tiles = Int8Tiles.kind {
                nonisolated(unsafe) let w = UnsafeRawPointer(data.baseAddress!)
                let k = Int32(kind.rawValue)
                let gemm = tiles == .avx512vnni ? qk_int8_gemm_avx512vnni : qk_int8_gemm_avx2
                Parallel.forBlocks(R, block: 64) { r in
                    let status = gemm(k, w, rb, r.lowerBound, r.upperBound, a.bytes(row: 0), a.scales, a.sums, T, C, ys,
                                      R, accumulate ? 1 : 0)
                    // no memory for the unpacked rows (the tiles fail before writing y): the row kernels
                    if status != 0 { rowKernels(r) }
                }
                return
            }
            Parallel.forRanges(R, minChunk: 128, rowKernels)
            return
        }
        if type == .f32 {   // f32 rows (the file's, or a type without kernels made f32 at load): sgemm on them
            let f = UnsafePointer(data.baseAddress!.assumingMemoryBound(to: Float.self))
            BLAS.gemmNTParallel(m: T, n: R, k: C, a: xs, lda: C, b: f, ldb: C, c: ys, ldc: R, beta: accumulate ? 1 : 0)
            return
        }
        if type == .f16 || type == .bf16, kernels == .avx2, R * C <= Self.wholeWidening {
            // F16/BF16 rows widened whole (exact; at most 64 MiB) and multiplied as f32 rows are: the 256-row tiles
            // below made SmolLM2 F16 prompts about 9 % slower
            let f = UnsafeMutablePointer<Float>.allocate(capacity: R * C)
            defer { f.deallocate() }
            nonisolated(unsafe) let (src, dst) = (UnsafeRawPointer(data.baseAddress!), f)
            let bf16: Int32 = type == .bf16 ? 1 : 0
            Parallel.forBlocks(R, block: 64) { r in
                qk_widen_16bit_avx2(src + r.lowerBound * rb, dst + r.lowerBound * C, r.count * C, bf16)
            }
            BLAS.gemmNTParallel(m: T, n: R, k: C, a: xs, lda: C, b: f, ldb: C, c: ys, ldc: R, beta: accumulate ? 1 : 0)
            return
        }
        nonisolated(unsafe) let w = UnsafeRawPointer(data.baseAddress!)
        let tile = 256   // rows made f32 at a time per thread (the tokens are packed again for each: 64 took 20 % longer)
        let workers = Parallel.threads
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: workers * tile * C)
        defer { scratch.deallocate() }
        nonisolated(unsafe) let sp = scratch
        let t = type
        // F16/BF16 past 64 MiB: widened by the F16C / shift loop the whole-matrix path uses, not the codec's scalar one
        let widen16: Int32? = kernels == .avx2 && (t == .f16 || t == .bf16) ? (t == .bf16 ? 1 : 0) : nil
        Parallel.forBlocksWithWorker(R, block: tile) { worker, r in
            let f = sp + worker * tile * C
            if let bf16 = widen16 {
                qk_widen_16bit_avx2(w + r.lowerBound * rb, f, r.count * C, bf16)
            } else {
                GGMLCodec.decodeBlocks(t, w + r.lowerBound * rb, f, blocks: r.count * C / t.blockSize)  // checked at init
            }
            BLAS.gemmNT(m: T, n: r.count, k: C, a: xs, lda: C, b: f, ldb: C, c: ys + r.lowerBound, ldc: R,
                        beta: accumulate ? 1 : 0)
        }
    }
}
