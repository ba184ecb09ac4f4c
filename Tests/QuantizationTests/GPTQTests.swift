import XCTest
import ModelFormats
import TensorCore
@testable import Quantization

final class GPTQTests: XCTestCase {
    /// Correlated inputs X [n × cols], weights W [rows × cols], H = 2XᵀX/n.
    func problem(rows: Int, cols: Int, n: Int, seed: UInt64) -> (W: [Float], X: [Float], H: [Float]) {
        var rng = SplitMix(seed: seed)
        let W = (0..<(rows * cols)).map { _ in rng.normal() * 0.05 }
        let mix = (0..<(cols * cols)).map { _ in rng.normal() / Float(cols).squareRoot() }
        var X = [Float](repeating: 0, count: n * cols)
        for s in 0..<n {
            let z = (0..<cols).map { _ in rng.normal() }
            for c in 0..<cols { var v: Float = 0; for k in 0..<cols { v += z[k] * mix[k * cols + c] }; X[s * cols + c] = v + 0.3 * z[c] * Float(1 + c % 5) }
        }
        var H = [Float](repeating: 0, count: cols * cols)
        X.withUnsafeBufferPointer { xp in BLAS.gemmTN(m: cols, n: cols, k: n, a: xp.baseAddress!, lda: cols, b: xp.baseAddress!, ldb: cols, c: &H, ldc: cols, alpha: 2 / Float(n), beta: 0) }
        return (W, X, H)
    }

    /// ‖X·(W − Q)ᵀ‖² / n: the layer-output error GPTQ minimizes.
    func outputError(_ X: [Float], _ W: [Float], _ Q: [Float], rows: Int, cols: Int, n: Int) -> Double {
        var e = 0.0
        for s in 0..<n {
            for r in 0..<rows {
                var d: Float = 0
                for c in 0..<cols { d += X[s * cols + c] * (W[r * cols + c] - Q[r * cols + c]) }
                e += Double(d * d)
            }
        }
        return e / Double(n)
    }

    func testBeatsRoundToNearestOnTheSameGrid() throws {
        let rows = 32, cols = 128, n = 512
        let (W, X, H) = problem(rows: rows, cols: cols, n: n, seed: 5)
        for (grid, g, act) in [(GPTQGrid.minmax(bits: 4, sym: true), 32, false), (.minmax(bits: 4, sym: false), 64, false),
                               (.minmax(bits: 4, sym: true), -1, true), (.ggml(.q4_0), 32, false), (.ggml(.q4_1), 32, false),
                               (.ggml(.q8_0), 32, false), (.minmax(bits: 3, sym: false), 32, false), (.minmax(bits: 8, sym: true), 128, false)] {
            var o = GPTQOptions()
            o.grid = grid; o.groupSize = g; o.actOrder = act; o.blockSize = 48
            let r = try GPTQ.run(W: W, rows: rows, cols: cols, H: H, options: o)
            // RTN: the same grid, no error feedback (H = identity makes GPTQ plain rounding)
            var id = [Float](repeating: 0, count: cols * cols)
            for i in 0..<cols { id[i * cols + i] = 1 }
            var ro = o; ro.actOrder = false
            let rtn = try GPTQ.run(W: W, rows: rows, cols: cols, H: id, options: ro)
            let eG = outputError(X, W, r.Q, rows: rows, cols: cols, n: n), eR = outputError(X, W, rtn.Q, rows: rows, cols: cols, n: n)
            XCTAssertLessThan(eG, eR * 0.9, "\(grid) g\(g) act \(act): GPTQ \(eG) vs RTN \(eR)")
        }
    }

    func testGGMLGridPacksExactly() throws {
        let rows = 8, cols = 64
        let (W, _, H) = problem(rows: rows, cols: cols, n: 128, seed: 9)
        for t: GGMLType in [.q4_0, .q4_1, .q8_0] {
            var o = GPTQOptions(); o.grid = .ggml(t)
            let r = try GPTQ.run(W: W, rows: rows, cols: cols, H: H, options: o)
            let bytes = try GPTQ.packGGML(r, type: t, rows: rows, cols: cols)
            XCTAssertEqual(bytes.count, rows * t.rowBytes(cols))
            let back = try bytes.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: rows * cols) }
            XCTAssertEqual(back, r.Q, t.name)
        }
    }

    /// Every type BlockCodes writes: the codes nearest to a block's own decoded values, written back into the block the
    /// type's search made, decode to exactly those values (the code layout and the affine map agree with the decoder).
    func testBlockCodesRoundTripEveryWritableType() throws {
        var rng = SplitMix(seed: 21)
        for t in BlockCodes.writable.sorted(by: { $0.rawValue < $1.rawValue }) {
            let rows = 3, n = t.blockSize
            let x = (0..<(rows * n)).map { _ in rng.normal() * 0.1 }
            let grid = try x.withUnsafeBufferPointer { try BlockGrid(t, $0.baseAddress!, rows: rows, stride: n, importance: nil) }
            XCTAssertTrue(grid.blocks == (try GGMLCodec.quantize(t, x, rowLength: n)), "\(t.name): the search is the codec's")
            let decoded = try grid.blocks.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: rows * n) }
            var packed = [UInt8](repeating: 0, count: rows * t.typeSize)
            for r in 0..<rows {
                var codes = [UInt8](repeating: 0, count: n)
                for j in 0..<n {
                    let (c, v) = grid.nearest(r, j, decoded[r * n + j])
                    codes[j] = c
                    XCTAssertEqual(v, decoded[r * n + j], accuracy: 1e-6 * max(1, abs(v)), "\(t.name) row \(r) element \(j)")
                }
                packed.withUnsafeMutableBytes { p in codes.withUnsafeBufferPointer { grid.pack(r, codes: $0.baseAddress!, into: p.baseAddress! + r * t.typeSize) } }
            }
            let back = try packed.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: rows * n) }
            XCTAssertTrue(back == decoded, "\(t.name): \(zip(back, decoded).filter { $0 != $1 }.count) values differ")
        }
    }

    /// GPTQ onto every block grid: with H = identity it is round-to-nearest (the codec's own bytes' values); with
    /// correlated inputs it lowers the layer-output error of the codec's importance-weighted rounding (llama-quantize
    /// with an imatrix of the same Σx²), and its blocks decode to its Q.
    func testBlockGridsBeatRoundToNearestAndPackExactly() throws {
        let rows = 16, cols = 512, n = 1024
        let (W, X, H) = problem(rows: rows, cols: cols, n: n, seed: 13)
        var id = [Float](repeating: 0, count: cols * cols)
        for i in 0..<cols { id[i * cols + i] = 1 }
        let diagH = (0..<cols).map { H[$0 * cols + $0] }
        for t in BlockCodes.writable.sorted(by: { $0.rawValue < $1.rawValue }) where ![.q4_0, .q4_1, .q8_0].contains(t) {
            var o = GPTQOptions()
            o.grid = .block(t)
            let r = try GPTQ.run(W: W, rows: rows, cols: cols, H: H, options: o)
            let blocks = try XCTUnwrap(r.blocks)
            XCTAssertEqual(blocks.count, rows * t.rowBytes(cols))
            XCTAssertTrue(try blocks.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: rows * cols) } == r.Q, t.name)
            // identity H, unit importance: nothing to feed back, so each block is the codec's weighted rounding of that
            // block alone (W's blocks are consecutive in memory: rows × cols is (rows·cols/bs) rows of one block)
            var po = o
            po.importance = [Float](repeating: 1, count: cols)
            let plain = try GPTQ.run(W: W, rows: rows, cols: cols, H: id, options: po)
            let perBlock = try GGMLCodec.quantize(t, W, rowLength: t.blockSize, imatrix: [Float](repeating: 1, count: t.blockSize))
            let codec = try perBlock.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: rows * cols) }
            // the same grid and the same codes, except where the codec keeps a code its search chose before the scale was
            // rounded to f16 (Q5_0/Q5_1's weighted search, IQ4_XS): there GPTQ takes the nearest code on the stored scale
            let differ = (0..<(rows * cols)).filter { plain.Q[$0] != codec[$0] }
            XCTAssertLessThan(differ.count, rows * cols / 200, "\(t.name): GPTQ with H = I is the codec's rounding")
            for k in differ {
                XCTAssertLessThanOrEqual(abs(W[k] - plain.Q[k]), abs(W[k] - codec[k]) * (1 + 1e-6), "\(t.name) element \(k)")
            }
            let rtnBytes = try GGMLCodec.quantize(t, W, rowLength: cols, imatrix: diagH)
            let rtn = try rtnBytes.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: rows * cols) }
            let eG = outputError(X, W, r.Q, rows: rows, cols: cols, n: n), eR = outputError(X, W, rtn, rows: rows, cols: cols, n: n)
            XCTAssertLessThan(eG, eR * 0.9, "\(t.name): GPTQ \(eG) vs importance-weighted RTN \(eR)")
        }
        // act-order with static groups: scales from the unmodified weights, codes in activation order
        var o = GPTQOptions()
        o.grid = .block(.q4_K); o.actOrder = true; o.staticGroups = true
        let r = try GPTQ.run(W: W, rows: rows, cols: cols, H: H, options: o)
        XCTAssertTrue(try XCTUnwrap(r.blocks).withUnsafeBytes { try GGMLCodec.dequantize(.q4_K, $0, count: rows * cols) } == r.Q)
        o.staticGroups = false
        XCTAssertThrowsError(try GPTQ.run(W: W, rows: rows, cols: cols, H: H, options: o)) { XCTAssertTrue("\($0)".contains("--static-groups"), "\($0)") }
    }

    func testDeadColumnsAndIllConditionedH() throws {
        let rows = 4, cols = 32
        let (W, _, H0) = problem(rows: rows, cols: cols, n: 64, seed: 2)
        var H = H0
        for j in 0..<cols { H[3 * cols + j] = 0; H[j * cols + 3] = 0 }  // column 3 never active
        let r = try GPTQ.run(W: W, rows: rows, cols: cols, H: H, options: GPTQOptions())
        for row in 0..<rows { XCTAssertEqual(r.Q[row * cols + 3], 0) }
        // rank-1 H: Cholesky needs more damping, which is raised automatically
        var h1 = [Float](repeating: 0, count: cols * cols)
        for i in 0..<cols { for j in 0..<cols { h1[i * cols + j] = 1 } }
        var o = GPTQOptions(); o.damp = 0
        let r1 = try GPTQ.run(W: W, rows: rows, cols: cols, H: h1, options: o)
        XCTAssertGreaterThan(r1.dampUsed, 0)
    }
}
