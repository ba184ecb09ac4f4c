import Calibration
import Checkpoints
import Llama
import ModelFormats
import Quantization
import XCTest
@testable import QuantKit

/// AWQ into GGUF with an importance matrix: each linear is quantized with the imatrix's E[x²] divided by the square of
/// the AWQ scale folded into its input columns (its inputs are x / s), not written with imatrix metadata it ignored.
final class AWQGGUFTests: XCTestCase {
    func testImatrixIsHonouredAfterFolding() throws {
        let src = Support.golden.appendingPathComponent("micro-llama-k-bf16.gguf").path
        let imatrix = Support.golden.appendingPathComponent("micro-llama-k.imatrix.gguf").path
        let text = Support.golden.appendingPathComponent("wiki.valid.first20k.txt").path
        let dir = Support.tmpDir()
        var o = AWQPipeline.Options()
        o.data.calibration = [text]; o.data.samples = 8; o.data.seqLen = 64; o.groupSize = 32
        var qo = GGUFQuantizer.Options(preset: .named("Q4_K_M")!)
        qo.imatrixPath = imatrix
        _ = try AWQPipeline.quantizeToGGUF(source: src, output: dir + "/awq-im.gguf", options: o, quantizeOptions: qo)
        // the same AWQ run, its folded layers and scales kept, quantized here the way the file should be
        let plan = try GGUFQuantizer.plan(src, options: qo)
        let typeOf = Dictionary(uniqueKeysWithValues: plan.tensors.map { ($0.name, $0.to) })
        let m = try LoadedModel.load(src)
        let c = m.forward.w.config
        var folded: [(Int, LlamaWeights.Layer, [LlamaInput: [Float]])] = []
        _ = try AWQPipeline.run(m, options: o, Q: { l, lin in
            let t = typeOf[lin.ggufName(layer: l)]!
            return { W, _, cols in
                let b = try GGMLCodec.quantize(t, W, rowLength: cols)
                return try b.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: W.count) }
            }
        }) { l, L, s in folded.append((l, L, s)) }
        XCTAssertTrue(folded.contains { !$0.2.isEmpty }, "AWQ scaled something")
        let g = try GGUFFile(path: dir + "/awq-im.gguf")
        XCTAssertEqual(g.metadata.first { $0.key == "quantize.imatrix.file" }?.value.string, imatrix)
        var divided = 0
        for (l, L, scales) in folded {
            for lin in LlamaLinear.allCases {
                let name = lin.ggufName(layer: l), t = typeOf[name]!, cols = lin.shape(c).cols
                let im = try XCTUnwrap(plan.imatrix[name])
                let s = scales[lin.input] ?? [Float](repeating: 1, count: cols)
                if scales[lin.input] != nil { divided += 1 }
                let expected = try GGMLCodec.quantize(t, try lin.toGGUF(L[lin], c), rowLength: cols,
                                                      imatrix: zip(im.prefix(cols), s).map { $0 / ($1 * $1) })
                let info = try XCTUnwrap(g.tensors.first { $0.name == name })
                XCTAssertTrue(Array(g.bytes(of: info)) == expected, "\(name)")
                // and not what the undivided imatrix gives, where AWQ scaled the inputs
                if scales[lin.input] != nil {
                    let undivided = try GGMLCodec.quantize(t, try lin.toGGUF(L[lin], c), rowLength: cols, imatrix: Array(im.prefix(cols)))
                    XCTAssertFalse(Array(g.bytes(of: info)) == undivided, "\(name): the imatrix was not divided by s²")
                }
            }
        }
        XCTAssertGreaterThan(divided, 0)
    }
}
