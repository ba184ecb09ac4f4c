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
        let model = try LoadedModel.load(Support.golden.appendingPathComponent("micro-llama-k-bf16.gguf").path)
        let text = try String(contentsOfFile: Support.golden.appendingPathComponent("wiki.valid.first20k.txt").path, encoding: .utf8)
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
}
