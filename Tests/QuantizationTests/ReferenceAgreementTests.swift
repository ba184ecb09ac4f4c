import XCTest
import ModelFormats
import TensorCore
@testable import Quantization

/// The optimized encoders against the scalar reference routines beside them: the same bytes on every kind of row.
final class ReferenceAgreementTests: XCTestCase {
    /// Rows that stress rounding: random normal-ish, ties on a grid (values that land exactly on .5 after scaling),
    /// heavy tails, all-zero blocks, tiny and huge magnitudes, one-sided, negative maxima, repeated maxima.
    static func awkwardRows(_ n: Int) -> [(String, [Float])] {
        var g = SplitMix(seed: 7)
        return [
            ("random", (0..<n).map { _ in g.normal() }),
            ("grid ties", (0..<n).map { i in Float(i % 17 - 8) * 0.5 + (i % 32 == 0 ? 8 : 0) }),
            ("heavy-tailed", (0..<n).map { i in i % 97 == 3 ? 40 * g.normal() : 0.01 * g.normal() }),
            ("zeros", [Float](repeating: 0, count: n)),
            ("zero blocks", (0..<n).map { i in (i / 32) % 2 == 0 ? 0 : g.normal() }),
            ("tiny", (0..<n).map { _ in 1e-8 * g.normal() }),
            ("huge", (0..<n).map { _ in 3e4 * g.normal() }),
            ("one-sided", (0..<n).map { _ in abs(g.normal()) + 0.25 }),
            ("negative max", (0..<n).map { i in i % 32 == 5 ? -9 : g.normal() }),
            ("repeated max", (0..<n).map { i in i % 32 == 1 || i % 32 == 9 ? (i % 64 < 32 ? 4 : -4) : 0.3 * g.normal() }),
            ("signed zeros", (0..<n).map { i in i % 3 == 0 ? -0.0 : (i % 3 == 1 ? 0 : 1e-3 * g.normal()) }),
        ]
    }

    func encode(_ f: (UnsafePointer<Float>, UnsafeMutableRawPointer, Int) -> Void, _ x: [Float], blockValues: Int, blockBytes: Int) -> [UInt8] {
        var y = [UInt8](repeating: 0xAA, count: x.count / blockValues * blockBytes)
        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBytes { f(xp.baseAddress!, $0.baseAddress!, x.count / blockValues) } }
        return y
    }

    func testVectorQ8_0AndQ4_0EqualTheReference() {
        for (name, x) in Self.awkwardRows(4096) {
            XCTAssertEqual(encode({ LegacyQuants.quantizeQ8_0Vector($0, $1, blocks: $2) }, x, blockValues: 32, blockBytes: 34),
                           encode({ LegacyQuants.quantizeQ8_0($0, $1, blocks: $2) }, x, blockValues: 32, blockBytes: 34), "Q8_0 \(name)")
            XCTAssertEqual(encode({ LegacyQuants.quantizeQ4_0Vector($0, $1, blocks: $2) }, x, blockValues: 32, blockBytes: 18),
                           encode({ LegacyQuants.quantizeQ4_0($0, $1, blocks: $2) }, x, blockValues: 32, blockBytes: 18), "Q4_0 \(name)")
        }
    }

    /// The lane-parallel searches (make_qx_quants: Q6_K, Q3_K, weighted legacy types; make_qkx2/3_quants over the
    /// sub-blocks of Q4_K/Q5_K) against the scalar loops, with and without an importance matrix.
    func testLaneParallelScaleSearchEqualsTheReference() throws {
        defer { KQuantSearch.scalarReference = false }
        var g = SplitMix(seed: 11)
        let imatrix = (0..<256).map { _ in abs(g.normal()) + 0.01 }
        for (name, x) in Self.awkwardRows(2048) {
            for t: GGMLType in [.q6_K, .q3_K, .q4_K, .q5_K, .q4_0, .q5_0, .iq4_XS] {
                for im in [nil, imatrix] {
                    KQuantSearch.scalarReference = true
                    let ref = try GGMLCodec.quantize(t, x, rowLength: 256, imatrix: im)
                    KQuantSearch.scalarReference = false
                    let fast = try GGMLCodec.quantize(t, x, rowLength: 256, imatrix: im)
                    XCTAssertEqual(fast, ref, "\(t.name) \(name) imatrix: \(im != nil)")
                }
            }
        }
    }

    /// IQ4's branch-free nearest-entry search against the binary search, on every midpoint and entry of the grid (ties),
    /// just beside them, far outside the grid, and random values.
    func testBranchFreeNearestIndexEqualsTheBinarySearch() {
        var xs: [Float] = [-1000, -128, 127, 200, 1e30, -1e30, 0, -0.0]
        let v = NonLinearQuants.kvalues.map(Float.init)
        for k in 0..<16 {
            xs += [v[k], v[k].nextUp, v[k].nextDown]
            if k < 15 { let m = (v[k] + v[k + 1]) / 2; xs += [m, m.nextUp, m.nextDown] }
        }
        var g = SplitMix(seed: 3)
        xs += (0..<4000).map { _ in 90 * g.normal() }
        while xs.count % 32 != 0 { xs.append(g.normal()) }
        NonLinearQuants.kvalues.withUnsafeBufferPointer { vp in
            for start in stride(from: 0, to: xs.count, by: 32) {
                let chunk = Array(xs[start..<(start + 32)])
                var got = [UInt8](repeating: 99, count: 32)
                for id: Float in [1, 0.37] {
                    chunk.withUnsafeBufferPointer { NonLinearQuants.bestIndices32(vp.baseAddress!, id, $0.baseAddress!, &got) }
                    for (j, x) in chunk.enumerated() {
                        XCTAssertEqual(Int(got[j]), NonLinearQuants.bestIndex(vp.baseAddress!, id * x), "x = \(x), id = \(id)")
                    }
                }
            }
        }
    }
}
