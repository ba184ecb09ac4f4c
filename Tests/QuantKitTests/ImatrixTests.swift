import Calibration
import Checkpoints
import XCTest
import ModelFormats
import Quantization
@testable import QuantKit

/// `imatrix` on the golden micro model and text against llama-imatrix's file (Formats/golden, from
/// `llama-imatrix -c 128 --chunks 20`): same keys, entries and counts; Σx² within float tolerance (llama.cpp keeps
/// the KV cache in f16, so layer outputs differ in the 4th digit).
final class ImatrixTests: XCTestCase {
    func testMatchesLlamaImatrix() throws {
        let model = try LoadedModel.load(Support.microK)
        let text = try String(contentsOfFile: Support.validText, encoding: .utf8)
        var o = ImatrixCollector.Options()
        o.ctx = 128; o.chunks = 20
        let r = try ImatrixCollector.collect(model: model, text: text, options: o)
        let out = Support.tmpDir() + "/m.imatrix.gguf"
        try ImatrixCollector.writeGGUF(r, dataset: "wiki.valid.first20k.txt", to: out)
        let ours = try GGUFFile(path: out), gold = try GGUFFile(path: Support.golden.appendingPathComponent("micro-llama-k.imatrix.gguf").path)
        XCTAssertEqual(ours.metadata.map(\.key), gold.metadata.map(\.key))
        for (k, v) in gold.metadata { XCTAssertEqual(ours[k], v, k) }
        XCTAssertEqual(ours.tensors.map(\.name), gold.tensors.map(\.name))
        let a = try ImatrixFile.load(path: out), b = try ImatrixFile.load(path: gold.path)
        for (name, e) in b.entries {
            let x = try XCTUnwrap(a.entries[name])
            XCTAssertEqual(x.counts, e.counts, name)
            var worst: Float = 0
            for (p, q) in zip(x.sums, e.sums) { worst = max(worst, abs(p - q) / max(abs(q), 1e-3)) }
            XCTAssertLessThan(worst, name.hasPrefix("blk.0.attn_") && !name.contains("output") ? 1e-5 : 3e-3, name)
        }
        // the legacy .dat carries the same means
        let dat = Support.tmpDir() + "/m.imatrix.dat"
        try ImatrixCollector.writeDat(r, dataset: "wiki.valid.first20k.txt", to: dat)
        let d = try ImatrixFile.load(path: dat)
        XCTAssertTrue(d.isLegacy)
        XCTAssertEqual(d.chunkCount, 20)
        XCTAssertEqual(d.datasets, ["wiki.valid.first20k.txt"])
        for name in a.entries.keys {
            let w1 = a.weights(name)!, w2 = d.weights(name)!
            for (p, q) in zip(w1, w2) { XCTAssertEqual(p, q, accuracy: 1e-5 * max(1, abs(p))) }
        }
    }

    /// The .dat as current llama-imatrix writes it: ncall rounded up (count 200 at chunk size 128 → 2, values scaled by
    /// it), entries without data left out; and its entries and ncall equal llama-imatrix's golden .dat for the same run.
    func testLegacyDatRoundsNcallUpAndSkipsEmptyEntries() throws {
        var r = ImatrixCollector.Result()
        r.sums = ["blk.0.attn_q.weight": [400, 800], "blk.0.ffn_up.weight": [0, 0]]
        r.counts = ["blk.0.attn_q.weight": 200, "blk.0.ffn_up.weight": 0]
        r.chunks = 2
        r.chunkSize = 128
        let dat = Support.tmpDir() + "/s.imatrix.dat"
        try ImatrixCollector.writeDat(r, dataset: "d.txt", to: dat)
        let entries = try Self.datEntries(dat)
        XCTAssertEqual(entries.map(\.name), ["blk.0.attn_q.weight"])
        XCTAssertEqual(entries[0].ncall, 2)
        XCTAssertEqual(entries[0].values, [4, 8])   // Σx²/count · ncall

        let model = try LoadedModel.load(Support.microK)
        let text = try String(contentsOfFile: Support.validText, encoding: .utf8)
        var o = ImatrixCollector.Options()
        o.ctx = 128; o.chunks = 20
        let ours = Support.tmpDir() + "/m.imatrix.dat"
        try ImatrixCollector.writeDat(try ImatrixCollector.collect(model: model, text: text, options: o), dataset: "wiki.valid.first20k.txt", to: ours)
        let a = try Self.datEntries(ours), b = try Self.datEntries(Support.golden.appendingPathComponent("micro-llama-k.imatrix.dat").path)
        XCTAssertEqual(a.map(\.name), b.map(\.name))
        XCTAssertEqual(a.map(\.ncall), b.map(\.ncall))
    }

    /// SmolLM2's head is tied to its embeddings: with --process-output llama-imatrix records no output entry (checked
    /// with its current build: 210 entries, the 7 linears of 30 layers), and neither does quantkit.
    func testTiedHeadHasNoOutputEntry() throws {
        let model = try LoadedModel.load(try Support.requiredEnv("QUANTKIT_SMOLLM2_DIR"))
        XCTAssertTrue(model.forward.w.config.tieWordEmbeddings)
        var o = ImatrixCollector.Options()
        o.ctx = 64; o.chunks = 1; o.processOutput = true
        let text = try String(contentsOfFile: Support.validText, encoding: .utf8)
        let r = try ImatrixCollector.collect(model: model, text: text, options: o)
        XCTAssertEqual(r.sums.count, 210)
        XCTAssertNil(r.sums["output.weight"])
    }

    /// (name, ncall, values) of each entry of a legacy .dat.
    static func datEntries(_ path: String) throws -> [(name: String, ncall: Int32, values: [Float])] {
        let d = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var at = 0
        func i32() -> Int32 { defer { at += 4 }; return d[at..<(at + 4)].withUnsafeBytes { $0.loadUnaligned(as: Int32.self) } }
        var out: [(String, Int32, [Float])] = []
        for _ in 0..<i32() {
            let len = Int(i32())
            let name = String(decoding: d[at..<(at + len)], as: UTF8.self)
            at += len
            let ncall = i32(), n = Int(i32())
            let values = (0..<n).map { _ in Float(bitPattern: UInt32(bitPattern: i32())) }
            out.append((name, ncall, values))
        }
        return out
    }
}
