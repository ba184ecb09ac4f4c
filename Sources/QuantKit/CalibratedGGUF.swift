import Calibration
import Checkpoints
import Foundation
import Llama
import ModelFormats
import Quantization
import TensorCore

/// GPTQ and AWQ written as GGUF: the calibrated linears in the blocks of the types a preset plans.

extension GPTQPipeline {
    /// GPTQ expressed in ggml block types stock llama.cpp loads: every linear the preset puts in Q4_0 / Q4_1 / Q8_0
    /// is GPTQ-quantized against that block type's own grid and packed into it; everything else follows the
    /// preset's round-to-nearest plan (so the file has the same types and size as llama-quantize's).
    public static func quantizeToGGUF(source: String, output: String, preset: QuantPreset, options o: Options,
                                      quantizeOptions: GGUFQuantizer.Options? = nil, progress: ProgressCallback? = nil) throws -> (GGUFQuantizer.Report, [LinearReport]) {
        guard [GGMLType.q4_0, .q4_1, .q8_0].contains(preset.defaultType) else {
            throw QKError("--method gptq writes GGUF presets Q4_0, Q4_1 and Q8_0 (got \(preset.name))")
        }
        let type = preset.defaultType
        let m = try LoadedModel.load(source)
        let c = m.forward.w.config
        var opts = o
        opts.gptq.grid = .ggml(type)
        if let ip = quantizeOptions?.imatrixPath {
            // llama-imatrix's statistics weight the block scale search (by GGUF tensor name)
            let im = try ImatrixFile.load(path: ip)
            opts.importance = { hf in LlamaTensorNames.gguf(hf).flatMap { im.weights($0) } }
        }
        // each linear packed into its blocks as soon as its layer is done
        var replacements: [String: (GGMLType, [UInt8])] = [:]
        let report = try run(m, options: opts, progress: progress) { l, lin, r in
            let (rows, cols) = lin.shape(c)
            let bytes = try GPTQ.packGGML(r, type: type, rows: rows, cols: cols)
            replacements[lin.ggufName(layer: l)] = (type, try lin.toGGUF(rowBytes: bytes, rowBytes: type.rowBytes(cols), c))
        }
        let q = try GGUFQuantizer.quantize(source, to: output, options: quantizeOptions ?? .init(preset: preset), replacements: replacements, progress: progress)
        ResumeState.finish(output: output)
        return (q, report)
    }
}

extension AWQPipeline {
    /// AWQ into GGUF: the preset's plan gives each linear its ggml type; the scale and clip searches use that type's
    /// own quantize-dequantize as Q, the scales are folded into the norms and linears, and the scaled, clipped weights
    /// are quantized with the plan (same types and size as the round-to-nearest file).
    public static func quantizeToGGUF(source: String, output: String, options o: Options, quantizeOptions qo: GGUFQuantizer.Options,
                                      progress: ProgressCallback? = nil) throws -> (GGUFQuantizer.Report, [LayerReport]) {
        let plan = try GGUFQuantizer.plan(source, options: qo)
        var typeOf: [String: GGMLType] = [:]
        for t in plan.tensors { typeOf[t.name] = t.to }
        let m = try LoadedModel.load(source)
        let c = m.forward.w.config
        func type(_ l: Int, _ lin: LlamaLinear) -> GGMLType { typeOf[lin.ggufName(layer: l)] ?? .f32 }
        // each finished layer quantized into its planned types at once
        var replacements: [String: (GGMLType, [UInt8])] = [:]
        let reports = try run(m, options: o, Q: { l, lin in
            let t = type(l, lin)
            return { W, rows, cols in
                let b = try GGMLCodec.quantize(t, W, rowLength: cols)
                return try b.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: W.count) }
            }
        }, progress: progress) { l, L in
            for lin in LlamaLinear.allCases {
                let g = lin.ggufName(layer: l)
                guard let t = typeOf[g] else { continue }
                replacements[g] = (t, try GGMLCodec.quantize(t, try lin.toGGUF(L[lin], c), rowLength: lin.shape(c).cols))
            }
            for norm in LlamaNorm.allCases {
                guard let g = LlamaTensorNames.gguf(norm.hfName(layer: l)), let t = typeOf[g] else { continue }
                replacements[g] = (t, try GGMLCodec.quantize(t, L[norm], rowLength: L[norm].count))
            }
        }
        let q = try GGUFQuantizer.quantize(source, to: output, options: qo, replacements: replacements, progress: progress)
        ResumeState.finish(output: output)
        return (q, reports)
    }
}
