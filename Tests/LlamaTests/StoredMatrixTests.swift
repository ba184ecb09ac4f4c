import Foundation
import ModelFormats
import Quantization
import TensorCore
import XCTest
import CRowKernels
@testable import RowKernels
@testable import Llama

/// Stored-weight products (decoding) against the dequantized matrix multiplied in double, in both kernel sets, and the
/// forward pass on stored linears against the f32 one.
final class StoredMatrixTests: XCTestCase {
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var s = seed
        return (0..<count).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 2001 - 1000) / 1000
        }
    }

    /// Σ_j W[r, j]·x[j] in double for each row of the dequantized matrix, and Σ |W[r, j]·x[j]| (the error scale).
    static func reference(_ w: [Float], rows: Int, cols: Int, x: ArraySlice<Float>) -> [(Double, Double)] {
        let x = Array(x)
        return (0..<rows).map { r in
            var s = 0.0, a = 0.0
            for j in 0..<cols {
                let p = Double(w[r * cols + j]) * Double(x[j])
                s += p
                a += abs(p)
            }
            return (s, a)
        }
    }

    /// Every f32 row-kernel variant this CPU runs: the baseline set, the AVX2 set, and the AVX2 set on its AVX-512
    /// float kernels where /proc/cpuinfo lists avx512f.
    static func eachFloatKernel(_ body: (RowKernelSet, String) throws -> Void) rethrows {
        let saved = RowKernelSet.avx512Floats
        defer { RowKernelSet.avx512Floats = saved }
        for k in RowKernelSet.supported {
            for wide in k == .avx2 && CPUFeatures.flags.contains("avx512f") ? [false, true] : [false] {
                RowKernelSet.avx512Floats = wide
                try body(k, wide ? "avx512" : k.rawValue)
            }
        }
    }

    func testRowKernelsAgainstTheDequantizedRows() throws {
        let rows = 37
        let kept: [GGMLType] = [.f32, .bf16, .f16, .q8_0, .q4_0, .q5_0, .q4_K, .q6_K]
        // 512 columns: every type; 288: blocks of 32 past a whole step of 4; 40: f32/bf16 rows past whole vectors
        let shapes: [(Int, [GGMLType])] = [(512, kept + [.q5_K]), (288, [.q8_0, .q4_0, .q5_0]), (40, [.f32, .bf16, .f16])]
        for (cols, types) in shapes {
            let w = Self.values(rows * cols, seed: 1), x = Self.values(cols, seed: 2)
            for t in types {
                let bytes = try GGMLCodec.quantize(t, w, rowLength: cols)
                let deq = try bytes.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: rows * cols) }
                let m = try bytes.withUnsafeBytes { try StoredMatrix(type: t, rows: rows, cols: cols, bytes: $0) }
                XCTAssertEqual(m.type, kept.contains(t) ? t : .f32, "\(t.name) held as")
                XCTAssertEqual(m.byteCount, m.type == t ? bytes.count : 4 * rows * cols)
                let ref = Self.reference(deq, rows: rows, cols: cols, x: x[...])
                Self.eachFloatKernel { k, name in
                    var y = [Float](repeating: .nan, count: rows)
                    x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                        m.rowProducts(xp.baseAddress!, rows: 0..<rows, into: yp.baseAddress!, accumulate: false,
                                      kernels: k)
                    } }
                    for r in 0..<rows {
                        XCTAssertEqual(Double(y[r]), ref[r].0, accuracy: 2e-6 * ref[r].1 + 1e-9,
                                       "\(t.name) \(cols) \(name) row \(r)")
                    }
                }
            }
        }
    }

    /// F16 rows holding every finite f16 (subnormals, ±0, the largest), in every kernel variant, against the
    /// products in double; the Swift reference's eight-lane widening equals the standard conversion bit for bit.
    func testF16RowsOnEveryHalf() throws {
        let cols = 64, rows = 65536 / cols
        var bits = (0..<65536).map { UInt16($0) }
        for i in bits.indices where bits[i] & 0x7C00 == 0x7C00 { bits[i] = 0 }   // ±∞ and NaN: zeros
        let values = bits.map { Float(Float16(bitPattern: $0)) }
        let x = Self.values(cols, seed: 21)
        let bytes = bits.withUnsafeBytes { Array($0) }
        let m = try bytes.withUnsafeBytes { try StoredMatrix(type: .f16, rows: rows, cols: cols, bytes: $0) }
        let ref = Self.reference(values, rows: rows, cols: cols, x: x[...])
        Self.eachFloatKernel { k, name in
            var y = [Float](repeating: .nan, count: rows)
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                m.rowProducts(xp.baseAddress!, rows: 0..<rows, into: yp.baseAddress!, accumulate: false, kernels: k)
            } }
            for r in 0..<rows {
                XCTAssertEqual(Double(y[r]), ref[r].0, accuracy: 2e-6 * ref[r].1 + 1e-30, "F16 \(name) row \(r)")
            }
        }
        for i in stride(from: 0, to: 65536, by: 8) {
            let wide = bytes.withUnsafeBytes { RowDot.halves($0.baseAddress! + 2 * i) }
            for l in 0..<8 { XCTAssertEqual(wide[l].bitPattern, values[i + l].bitPattern, "f16 \(bits[i + l])") }
        }
    }

    /// Both paths of `multiply` (row kernels for up to 4 rows of x, f32 tiles + sgemm for more; F16/BF16 widened
    /// whole, or by tiles past `wholeWidening`), accumulation, and a row order (GGUF's q/k permutation undone at load).
    func testMultiplyPathsRowOrderAndAccumulate() throws {
        let rows = 150, cols = 256
        let w = Self.values(rows * cols, seed: 3)
        let order = (0..<rows).map { ($0 * 7 + 3) % rows }   // 7 is coprime to 150: a permutation
        let whole = StoredMatrix.wholeWidening
        defer { StoredMatrix.wholeWidening = whole }
        let cases: [(GGMLType, Int)] = [(.q8_0, whole), (.bf16, whole), (.bf16, 0), (.f16, whole), (.f16, 0),
                                        (.q6_K, whole), (.q5_0, whole), (.q5_1, whole)]
        for (t, widening) in cases {
            StoredMatrix.wholeWidening = widening
            let bytes = try GGMLCodec.quantize(t, w, rowLength: cols)
            let deq = try bytes.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: rows * cols) }
            var permuted = [Float](repeating: 0, count: rows * cols)
            for i in 0..<rows { for j in 0..<cols { permuted[i * cols + j] = deq[order[i] * cols + j] } }
            let m = try bytes.withUnsafeBytes { try StoredMatrix(type: t, rows: rows, cols: cols, bytes: $0, rowOrder: order) }
            for T in [1, 3, 9] {
                let x = Self.values(T * cols, seed: UInt64(10 + T))
                let start = Self.values(T * rows, seed: 99)
                for accumulate in [false, true] {
                    var y = start
                    x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                        m.multiply(xp.baseAddress!, count: T, into: yp.baseAddress!, accumulate: accumulate)
                    } }
                    for tt in 0..<T {
                        let ref = Self.reference(permuted, rows: rows, cols: cols, x: x[(tt * cols)..<((tt + 1) * cols)])
                        for r in 0..<rows {
                            let want = ref[r].0 + (accumulate ? Double(start[tt * rows + r]) : 0)
                            XCTAssertEqual(Double(y[tt * rows + r]), want, accuracy: 2e-6 * (ref[r].1 + 1) + 1e-9,
                                           "\(t.name) T=\(T) accumulate=\(accumulate) widening \(widening) row \(r)")
                        }
                    }
                }
            }
        }
    }

    func testBadShapesAndOrdersAreRefused() throws {
        let w = Self.values(4 * 64, seed: 5)
        let bytes = try GGMLCodec.quantize(.q8_0, w, rowLength: 64)
        try bytes.withUnsafeBytes { b in
            XCTAssertThrowsError(try StoredMatrix(type: .q8_0, rows: 4, cols: 48, bytes: b))      // not whole blocks
            XCTAssertThrowsError(try StoredMatrix(type: .q8_0, rows: 5, cols: 64, bytes: b))      // too few bytes
            XCTAssertThrowsError(try StoredMatrix(type: .q8_0, rows: 4, cols: 64, bytes: b, rowOrder: [0, 1, 2, 4]))
            XCTAssertThrowsError(try StoredMatrix(type: .q8_0, rows: 4, cols: 64, bytes: b, rowOrder: [0, 1]))
            XCTAssertNoThrow(try StoredMatrix(type: .q8_0, rows: 4, cols: 64, bytes: b, rowOrder: [3, 2, 1, 0]))
        }
    }

    /// The golden micro Llama as GGUF (bf16, q/k rows permuted as llama.cpp stores them) and as its HF checkpoint,
    /// run on stored linears and head: the prompt (sgemm tiles) and token-by-token decoding (row kernels) give the f32
    /// pass's logits and greedy tokens.
    func testForwardOnStoredLinearsMatchesTheF32Pass() throws {
        let golden = LlamaArchitectureTests.repo.appendingPathComponent("Formats/golden")
        let g = try GGUFFile(path: golden.appendingPathComponent("micro-llama-k-bf16.gguf").path)
        let hfPath = golden.appendingPathComponent("micro-llama-hf").path
        let ck = try SafetensorsCheckpoint.open(hfPath)
        let hfConfig = try LlamaConfig.load(path: hfPath + "/config.json")
        let sources: [(String, () throws -> LlamaWeights, GGMLType)] = [
            ("GGUF", { try LlamaWeights.load(gguf: g, config: try LlamaConfig(gguf: g)) }, .bf16),
            ("HF", { try LlamaWeights.load(hfCheckpoint: ck, config: hfConfig) },
             ck.info("model.layers.0.mlp.up_proj.weight")!.dtype == .bf16 ? .bf16 : .f32),
        ]
        for (name, load, storedType) in sources {
            func run(stored: Bool) throws -> (logits: [[Float]], tokens: [Int32]) {
                let w = try load()
                let c = w.config
                w.keepLayers = true
                w.storedLinears = stored
                if stored { try w.holdStoredHead() }
                XCTAssertEqual(w.storedHead != nil, stored, name)
                let f = LlamaForward(w)
                let cache = LlamaForward.KVCache(config: c, capacity: 24)
                let prompt: [Int32] = [1, 5, 9, 13, 2, 7, 11, 3].map { $0 % Int32(c.vocabSize) }
                var logits = [try f.logits(prompt, cache: cache, logitRows: (prompt.count - 1)..<prompt.count)]
                var tokens: [Int32] = []
                for _ in 0..<12 {
                    let l = logits.last!
                    let next = Int32(l.indices.max { l[$0] < l[$1] }!)
                    tokens.append(next)
                    logits.append(try f.logits([next], cache: cache))
                }
                if stored {
                    let L = try w.layer(0)
                    XCTAssertTrue(L.stored.allSatisfy { $0?.type == storedType }, "\(name): every linear held as the file's \(storedType.name)")
                    XCTAssertTrue(L.linears.allSatisfy(\.isEmpty), "\(name): no f32 copies")
                }
                return (logits, tokens)
            }
            let a = try run(stored: false), b = try run(stored: true)
            XCTAssertEqual(a.tokens, b.tokens, name)
            for (la, lb) in zip(a.logits, b.logits) {
                let scale = la.map(abs).max()!
                for i in la.indices { XCTAssertEqual(la[i], lb[i], accuracy: 1e-4 * scale, name) }
            }
        }
    }

    /// The integer kernels against the dequantized rows times the rounded activations (q·d) in double, on both
    /// kernel sets (Swift in the baseline, C in the AVX2 one: the same integer sums, floats summed in another order);
    /// odd block counts take the 32-value kernels' single-block tail.
    func testInt8KernelsAgainstTheRoundedActivations() throws {
        let cases: [(GGMLType, Int)] = [(.q8_0, 544), (.q4_0, 544), (.q4_0, 512), (.q5_0, 544), (.q5_0, 512),
                                        (.q4_K, 512), (.q6_K, 768)]
        for (t, cols) in cases {
            let rows = 21
            let w = Self.values(rows * cols, seed: 7), x = Self.values(2 * cols, seed: 8).map { $0 * 3 }
            let bytes = try GGMLCodec.quantize(t, w, rowLength: cols)
            let deq = try bytes.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: rows * cols) }
            let m = try bytes.withUnsafeBytes { try StoredMatrix(type: t, rows: rows, cols: cols, bytes: $0) }
            let block = t == .q4_K || t == .q6_K ? 256 : 32
            let a = x.withUnsafeBufferPointer { Int8Activations($0.baseAddress!, count: 2, n: cols, block: block) }
            for row in 0..<2 {
                let xr = Array(x[(row * cols)..<((row + 1) * cols)]), xhat = a.dequantized(row: row)
                let d = (0..<(cols / block)).map { b in xhat[(b * block)..<((b + 1) * block)].map(abs).max()! / 127 }
                // each value within half a step of its block (the rounding, not a coarser one); per 32 the step is
                // kept as f16 after rounding with the exact one, as llama.cpp does: up to 127 · 2⁻¹¹ steps more
                let within: Float = block == 32 ? 0.5 + 127.0 / 2048 : 0.5001
                for i in 0..<cols {
                    XCTAssertEqual(xhat[i], xr[i], accuracy: d[i / block] * within + 1e-7, "\(t.name) x̂[\(i)]")
                }
                let ref = Self.reference(deq, rows: rows, cols: cols, x: xhat[...])
                for k in RowKernelSet.supported {
                    var y = [Float](repeating: .nan, count: rows)
                    y.withUnsafeMutableBufferPointer { yp in
                        m.rowProducts(a, row: row, rows: 0..<rows, into: yp.baseAddress!, accumulate: false, kernels: k)
                    }
                    for r in 0..<rows {
                        XCTAssertEqual(Double(y[r]), ref[r].0, accuracy: 2e-6 * ref[r].1 + 1e-9,
                                       "\(t.name) \(k) row \(r)")
                    }
                }
            }
        }
    }

    /// The integer tiles (each kind this CPU runs: AVX2, and AVX-512 VNNI where it has it) against the dequantized
    /// rows times the rounded activations in double, and against the Swift row kernels, with and without
    /// accumulation, 37 rows × 13 tokens (strips and tiles cut short). Rows are quantized values, random bytes, or
    /// the largest magnitudes every type holds (Q4_K/Q6_K/Q4_0/Q5_0 all ones, Q8_0 all −128) against activations at
    /// ±127 in every position: the AVX2 tiles' int16 sums at their bounds.
    func testInt8TilesAgainstTheRoundedActivations() throws {
        try XCTSkipUnless(RowKernelSet.supported.contains(.avx2), "no AVX2 on this CPU")
        let kinds: [Int8Tiles.Kind] = Int8Tiles.vnniSupported ? [.avx2, .avx512vnni] : [.avx2]
        let saved = Int8Tiles.kind
        defer { Int8Tiles.kind = saved }
        enum Rows { case quantized, random, extreme }
        let blockBytes = [GGMLType.q4_K: 144, .q6_K: 210, .q8_0: 34, .q4_0: 18, .q5_0: 22]
        let cases: [(GGMLType, Int, Rows)] = [
            (.q4_K, 768, .quantized), (.q6_K, 512, .quantized), (.q4_K, 512, .random), (.q6_K, 768, .random),
            (.q8_0, 544, .quantized), (.q4_0, 544, .quantized), (.q5_0, 544, .quantized), (.q8_0, 96, .random),
            (.q4_0, 96, .random), (.q5_0, 96, .random), (.q4_K, 512, .extreme), (.q6_K, 512, .extreme),
            (.q8_0, 96, .extreme), (.q4_0, 96, .extreme), (.q5_0, 96, .extreme),
        ]
        for tiles in kinds {
            Int8Tiles.kind = tiles
            for (t, cols, pattern) in cases {
                let rows = 37, tokens = 13
                var bytes = try GGMLCodec.quantize(t, Self.values(rows * cols, seed: 11), rowLength: cols)
                if pattern != .quantized {
                    var state: UInt64 = 5
                    for i in bytes.indices {
                        state = state &* 6364136223846793005 &+ 1442695040888963407
                        bytes[i] = pattern == .extreme ? (t == .q8_0 ? 0x80 : 0xFF)
                                                       : UInt8(truncatingIfNeeded: state >> 33)
                    }
                    let bb = blockBytes[t]!
                    for b in 0..<(bytes.count / bb) {   // f16 scales of ±(0.5…2): finite products
                        for o in t == .q4_K ? [0, 2] : t == .q6_K ? [208] : [0] {
                            if pattern == .extreme { bytes[b * bb + o] = 0 }
                            bytes[b * bb + o + 1] = (b + o) % 3 == 0 ? 0xBC : 0x3A
                        }
                    }
                }
                let deq = try bytes.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: rows * cols) }
                let m = try bytes.withUnsafeBytes { try StoredMatrix(type: t, rows: rows, cols: cols, bytes: $0) }
                let block = t == .q4_K || t == .q6_K ? 256 : 32
                var x = Self.values(tokens * cols, seed: 12).map { $0 * 2 }
                if pattern == .extreme {   // one sign per token: every value ±127 steps
                    x = (0..<(tokens * cols)).map { i in i / cols % 2 == 0 ? 1.5 : -1.5 }
                } else {
                    for i in stride(from: 0, to: x.count, by: block) { x[i] = -3 }   // −127 steps in every block
                }
                let a = x.withUnsafeBufferPointer { Int8Activations($0.baseAddress!, count: tokens, n: cols, block: block) }
                let start = Self.values(tokens * rows, seed: 13)
                for accumulate in [false, true] {
                    var y = start
                    x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                        m.multiply(xp.baseAddress!, count: tokens, into: yp.baseAddress!, accumulate: accumulate,
                                   rounding: .llama, kernels: .avx2)
                    } }
                    for tok in 0..<tokens {
                        let ref = Self.reference(deq, rows: rows, cols: cols, x: a.dequantized(row: tok)[...])
                        var rowKernels = [Float](repeating: .nan, count: rows)
                        rowKernels.withUnsafeMutableBufferPointer { yp in
                            m.rowProducts(a, row: tok, rows: 0..<rows, into: yp.baseAddress!, accumulate: false,
                                          kernels: .baseline)
                        }
                        for r in 0..<rows {
                            let base = accumulate ? Double(start[tok * rows + r]) : 0
                            let tol = 2e-6 * ref[r].1 + 1e-6 * abs(base) + 1e-9
                            let name = "\(tiles) \(t.name) \(pattern) accumulate \(accumulate) token \(tok) row \(r)"
                            XCTAssertEqual(Double(y[tok * rows + r]), ref[r].0 + base, accuracy: tol, name)
                            XCTAssertEqual(Double(rowKernels[r]), ref[r].0, accuracy: 2e-6 * ref[r].1 + 1e-9, name)
                        }
                    }
                }
            }
        }
    }

    /// The AVX-512 rounding of activations (the VNNI tiles' input) against Int8Dot.quantize, the Swift reference, on
    /// values that test its edges: zero blocks, the largest magnitude negative or repeated with both signs, exact
    /// half-steps (ties to even), NaN, ±infinity, subnormals alone in a block (a step that overflows), values past ±127
    /// steps; every output equal, bit for bit.
    func testAVX512ActivationRoundingIsTheReferences() throws {
        try XCTSkipUnless(Int8Tiles.vnniSupported, "no AVX-512 VNNI on this CPU")
        let n = 2048
        var x = Self.values(n, seed: 31).map { $0 * 7 }
        for i in 0..<32 { x[i] = 0 }                        // a zero block of 32
        for i in 256..<512 { x[i] = 0 }                     // a zero block of 256
        x[40] = -9                                          // the largest, negative first,
        x[41] = 9                                           // then positive
        for i in 64..<96 { x[i] = Float(i - 80) * 0.5 }     // half-steps at a step of 1/8 · 127 … ties
        x[96] = 127
        for i in 97..<128 { x[i] = Float(i - 97) + 0.5 }    // exact ties: n + 0.5 steps
        x[600] = .nan
        x[700] = .infinity
        x[800] = -.infinity
        for i in 1024..<1056 { x[i] = Float.leastNonzeroMagnitude * Float(i - 1040) }   // subnormals: step ∞
        for i in 1280..<1536 { x[i] = Float.leastNormalMagnitude * Float(i % 7 - 3) }
        x[1600] = 3e38
        x[1601] = -3e38
        for block in [32, 256] {
            var v1 = [Int16](repeating: 0, count: n), v2 = v1
            var d1 = [Float](repeating: 0, count: n / block), d2 = d1
            var s1 = [Int32](repeating: 0, count: n / 16), s2 = s1
            var bytes = [Int8](repeating: 0, count: n)
            RowKernels.Int8Dot.quantize(x, n: n, block: block, values: &v1, scales: &d1, sums: &s1)
            qk_round_int8_avx512(x, n, block, &v2, &d2, &s2, &bytes)
            XCTAssertEqual(v1, v2, "values, block \(block)")
            XCTAssertEqual(d1.map(\.bitPattern), d2.map(\.bitPattern), "steps, block \(block)")
            XCTAssertEqual(s1, s2, "sums, block \(block)")
            for g in stride(from: 0, to: n, by: 32) {
                for k in 0..<16 {
                    XCTAssertEqual(Int16(bytes[g + 2 * k]), v1[g + k])
                    XCTAssertEqual(Int16(bytes[g + 2 * k + 1]), v1[g + 16 + k])
                }
            }
        }
    }

    /// Blocks of random bytes (every weight byte, −128 in Q8_0, the largest 6-bit scales and mins and negative Q6_K
    /// scales) against activations whose blocks reach ±127 steps: both kernel sets stay within float rounding of the
    /// dequantized rows times x̂ (no 16-bit overflow in the byte products), and their integer sums agree; the f32
    /// kernels on the same bytes, against the dequantized rows times x.
    func testKernelsOnEveryByteValue() throws {
        // Q4_K at 16640 columns: 65 super-blocks
        let cases: [(GGMLType, Int, [Int], Int)] = [(.q8_0, 34, [0], 512), (.q4_0, 18, [0], 512),
                                                    (.q5_0, 22, [0], 512), (.q4_K, 144, [0, 2], 512),
                                                    (.q4_K, 144, [0, 2], 16640), (.q6_K, 210, [208], 512)]
        for (t, blockBytes, scaleOffsets, cols) in cases {
            let rows = 9
            let perRow = cols / t.blockSize
            var state: UInt64 = 99
            var bytes = (0..<(rows * perRow * blockBytes)).map { _ -> UInt8 in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return UInt8(truncatingIfNeeded: state >> 33)
            }
            for b in 0..<(rows * perRow) {   // f16 scales of ±(0.5…2): finite products
                for o in scaleOffsets {
                    bytes[b * blockBytes + o] = UInt8(truncatingIfNeeded: state >> 20)
                    bytes[b * blockBytes + o + 1] = (state >> 40) & 1 == 0 ? 0x3A : 0xBC
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                }
            }
            let deq = try bytes.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: rows * cols) }
            let m = try bytes.withUnsafeBytes { try StoredMatrix(type: t, rows: rows, cols: cols, bytes: $0) }
            var x = Self.values(cols, seed: 5)
            for i in stride(from: 0, to: cols, by: 32) { x[i] = i % 64 == 0 ? 1 : -1 }   // ±127 steps per block
            let block = t == .q4_K || t == .q6_K ? 256 : 32
            let a = x.withUnsafeBufferPointer { Int8Activations($0.baseAddress!, count: 1, n: cols, block: block) }
            let ref = Self.reference(deq, rows: rows, cols: cols, x: a.dequantized(row: 0)[...])
            let refF32 = Self.reference(deq, rows: rows, cols: cols, x: x[...])
            Self.eachFloatKernel { k, name in
                var y = [Float](repeating: .nan, count: rows)
                y.withUnsafeMutableBufferPointer { yp in
                    m.rowProducts(a, row: 0, rows: 0..<rows, into: yp.baseAddress!, accumulate: false, kernels: k)
                }
                for r in 0..<rows {
                    XCTAssertEqual(Double(y[r]), ref[r].0, accuracy: 2e-6 * ref[r].1 + 1e-9, "\(t.name) \(name) row \(r)")
                }
                x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                    m.rowProducts(xp.baseAddress!, rows: 0..<rows, into: yp.baseAddress!, accumulate: false, kernels: k)
                } }
                for r in 0..<rows {
                    XCTAssertEqual(Double(y[r]), refF32[r].0, accuracy: 2e-6 * refF32[r].1 + 1e-9,
                                   "\(t.name) \(name) f32 row \(r)")
                }
            }
        }
    }

    /// The rounding itself: per 32 values llama.cpp's Q8_0 (the same values as llama-quantize's Q8_0 of x: both
    /// round to nearest, ties aside), per 256 its Q8_K (the largest magnitude to exactly −127 steps), block sums of
    /// the rounded values, and non-finite activations rounded without a trap.
    func testActivationRoundingIsLlamas() throws {
        let n = 512
        let x = Self.values(n, seed: 21).map { $0 * 5 }
        let q8 = try GGMLCodec.roundTrip(.q8_0, x, rowLength: n)
        let a32 = x.withUnsafeBufferPointer { Int8Activations($0.baseAddress!, count: 1, n: n, block: 32) }
        XCTAssertEqual(a32.dequantized(row: 0), q8)
        let a256 = x.withUnsafeBufferPointer { Int8Activations($0.baseAddress!, count: 1, n: n, block: 256) }
        let xk = a256.dequantized(row: 0)
        for b in 0..<2 {
            let i = (256 * b..<256 * (b + 1)).max { abs(x[$0]) < abs(x[$1]) }!
            XCTAssertEqual(xk[i], x[i], accuracy: abs(x[i]) * 1e-6, "the block's largest value is a whole step count")
        }
        let (v, _, sums) = a256.pointers(row: 0)
        for s in 0..<(n / 16) {   // values are stored even/odd per 32: a 16-value run is 8 evens and 8 odds
            let g = s / 2 * 32, half = s % 2 * 8
            let want = (0..<8).reduce(Int32(0)) { $0 + Int32(v[g + half + $1]) + Int32(v[g + 16 + half + $1]) }
            XCTAssertEqual(sums[s], want, "sum \(s)")
        }
        var bad = x
        bad[3] = .nan
        bad[300] = .infinity
        for block in [32, 256] {
            let a = bad.withUnsafeBufferPointer { Int8Activations($0.baseAddress!, count: 1, n: n, block: block) }
            let r = a.dequantized(row: 0)
            XCTAssertEqual(r[3], 0, "NaN rounds to 0 steps (no trap); its block's step comes from the finite values")
            XCTAssertTrue(r[300].isNaN, "an infinite block has an infinite step: its products are not finite")
            XCTAssertEqual(r[40], q8[40], accuracy: 5 * 1.0001 / 127 * 0.5 + abs(q8[40]) * 1e-6,
                           "blocks without NaN round as before")
        }
    }

    /// The micro Llama (HF, hidden 32, FFN 96) with every linear and the head quantized to Q8_0, Q4_0 and Q5_0 and
    /// held as blocks: with llama.cpp's rounding the prompt and decoding run the integer kernels and stay within the
    /// rounding's error of the exact products; bf16 rows are not rounded (llama.cpp's bf16 decoding matched the exact
    /// products token for token on SmolLM2).
    func testForwardWithLlamaActivationRounding() throws {
        let golden = LlamaArchitectureTests.repo.appendingPathComponent("Formats/golden")
        let hfPath = golden.appendingPathComponent("micro-llama-hf").path
        let ck = try SafetensorsCheckpoint.open(hfPath)
        let c = try LlamaConfig.load(path: hfPath + "/config.json")
        for t in [GGMLType.q8_0, .q4_0, .q5_0, .bf16] {
            func run(_ rounding: ActivationRounding) throws -> [[Float]] {
                let w = try LlamaWeights.load(config: c, source: LlamaTensorSource(
                    shape: { ck.info($0)?.shape }, floats: { try ck.floats($0) },
                    stored: { n in
                        guard let s = ck.info(n)?.shape, s.count == 2 else { return nil }
                        let b = try GGMLCodec.quantize(t, try ck.floats(n), rowLength: s[1])
                        return try b.withUnsafeBytes { try StoredMatrix(type: t, rows: s[0], cols: s[1], bytes: $0) }
                    }))
                w.keepLayers = true
                w.storedLinears = true
                w.activationRounding = rounding
                try w.holdStoredHead()
                XCTAssertEqual(w.storedHead?.type, t)
                let f = LlamaForward(w)
                let cache = LlamaForward.KVCache(config: c, capacity: 24)
                var logits = [try f.logits([1, 5, 9, 13, 2, 7], cache: cache, logitRows: 5..<6)]
                for tok: Int32 in [2, 7, 11, 3, 8] { logits.append(try f.logits([tok], cache: cache)) }
                return logits
            }
            let exact = try run(.exact), llama = try run(.llama)
            let scale = exact.joined().map(abs).max()!
            var diff: Float = 0
            for (a, b) in zip(exact, llama) { for i in a.indices { diff = max(diff, abs(a[i] - b[i])) } }
            if t == .bf16 {
                XCTAssertEqual(exact, llama, "bf16 rows take the activations as they are")
            } else {
                XCTAssertGreaterThan(diff, 0, "\(t.name): rounded activations change the products")
                XCTAssertLessThan(diff, 3e-2 * scale, "\(t.name): within the int8 rounding's error")
            }
        }
    }
}
