import Calibration
import Checkpoints
import Foundation
import Llama
import ModelFormats
import Quantization
import TensorCore

/// GPTQ and AWQ written as GGUF: the calibrated linears in the blocks of the types a preset plans.

extension GPTQPipeline {
    /// GPTQ expressed in ggml block types stock llama.cpp loads: the preset's plan (with --tensor-type, --pure and the
    /// imatrix rules, exactly as round-to-nearest would write it) gives every linear its type, and each linear is
    /// GPTQ-quantized onto that type's own grid and packed into it — Q4_0 / Q4_1 / Q8_0 blocks through their scale
    /// rules, the K-quants, IQ4_NL / IQ4_XS and Q5_0 / Q5_1 with each block's scales from the type's search on the
    /// values GPTQ has updated so far, weighted by the imatrix or else by diag(H). Linears the plan keeps in F16/BF16/F32
    /// are stored as they are; a type GPTQ cannot write stops the run before any work, naming the tensor. Everything
    /// else (embeddings, output, norms) follows the plan, so the file has llama-quantize's types and size.
    public static func quantizeToGGUF(source: String, output: String, preset: QuantPreset, options o: Options,
                                      quantizeOptions: GGUFQuantizer.Options? = nil, progress: ProgressCallback? = nil) throws -> (GGUFQuantizer.Report, [LinearReport]) {
        let r = try calibratedGGUF(source: source, output: output, preset: preset, options: o, awq: nil, quantizeOptions: quantizeOptions,
                                   progress: progress)
        return (r.0, r.1)
    }

    /// GPTQ into GGUF as above, after AWQ when `awq` is given (`AWQThenGPTQ`): AWQ's searches use each linear's planned
    /// type as Q, its scaled norms (and biases) replace the source's, and the imatrix (when given) is divided by the
    /// scales squared.
    static func calibratedGGUF(source: String, output: String, preset: QuantPreset, options o: Options, awq: AWQPipeline.Options?,
                               quantizeOptions: GGUFQuantizer.Options?, progress: ProgressCallback?)
        throws -> (GGUFQuantizer.Report, [LinearReport], [AWQPipeline.LayerReport]) {
        let qo = quantizeOptions ?? .init(preset: preset)
        let plan = try GGUFQuantizer.plan(source, options: qo)
        var typeOf: [String: GGMLType] = [:]
        for t in plan.tensors { typeOf[t.name] = t.to }
        var m = try LoadedModel.load(source)
        let c = m.forward.w.config
        var grids: [String: GPTQGrid] = [:]
        for l in 0..<c.numLayers {
            for lin in LlamaLinear.allCases {
                let g = lin.ggufName(layer: l)
                guard let t = typeOf[g] else { throw QKError(file: source, "the plan has no tensor \(g)") }
                if [.f32, .f16, .bf16].contains(t) { continue }
                guard let grid = GPTQGrid.forType(t) else {
                    let writable = BlockCodes.writable.sorted { $0.rawValue < $1.rawValue }.map(\.name).joined(separator: ", ")
                    throw QKError("--method gptq cannot write \(g) as \(t.name) (the plan of \(preset.name) with the given options); "
                                  + "GPTQ writes \(writable), F16, BF16 and F32")
                }
                grids[g] = grid
            }
        }
        var opts = o
        opts.grids = { l, lin in grids[lin.ggufName(layer: l)] }
        opts.fingerprintExtra += " plan " + grids.keys.sorted().map { "\($0)=\(typeOf[$0]!.name)" }.joined(separator: ",")
        if let ip = qo.imatrixPath {
            // llama-imatrix's statistics weight each block's scale search (by GGUF tensor name)
            let im = try ImatrixFile.load(path: ip)
            opts.importance = { hf in LlamaTensorNames.gguf(hf).flatMap { im.weights($0) } }
        }
        var replacements: [String: (GGMLType, [UInt8])] = [:]
        var awqReports: [AWQPipeline.LayerReport] = []
        let decisions = AWQThenGPTQ.Decisions()
        if var a = awq {
            a.statePath = o.statePath
            a.fingerprintExtra += opts.fingerprintExtra
            let scaled = try AWQThenGPTQ.scale(m, options: a, output: output, Q: plannedQ(typeOf), progress: progress)
            for v in scaled.vectors { try planVectors(v, typeOf, into: &replacements) }
            if a.judgeScales {
                // a layer GPTQ does better on unscaled keeps the source's norms and biases
                opts.unscaled = AWQThenGPTQ.judge(m, importance: opts.importance, dropped: { l in
                    for (name, _) in scaled.vectors[l] { LlamaTensorNames.gguf(name).map { replacements[$0] = nil } }
                }, decisions: decisions)
            }
            m = scaled.model
            awqReports = scaled.reports
            opts.importance = AWQThenGPTQ.scaledImportance(opts.importance, scaled)
            opts.fingerprintExtra += " after awq g\(a.groupSize) duo\(a.duoScaling) id\(a.identityCandidate) clip\(a.clip)"
                + a.searchLoss.fingerprint
        }
        // each linear packed into its blocks as soon as its layer is done
        let report = try run(m, options: opts, progress: progress) { l, lin, r in
            let (rows, cols) = lin.shape(c)
            let g = lin.ggufName(layer: l)
            guard let t = typeOf[g] else { return }
            let bytes = try r.blocks ?? GPTQ.packGGML(r, type: t, rows: rows, cols: cols)
            replacements[g] = (t, try lin.toGGUF(rowBytes: bytes, rowBytes: t.rowBytes(cols), c))
        }
        let q = try o.times.time("write") {
            try GGUFQuantizer.quantize(source, to: output, options: qo, replacements: replacements, progress: progress)
        }
        ResumeState.finish(output: output)
        if awq != nil { AWQThenGPTQ.finish(output: output) }
        return (q, report, decisions.apply(awqReports))
    }
}

extension AWQThenGPTQ {
    /// AWQ then GPTQ into GGUF: the preset's plan, AWQ's scales (and clips, if asked), then GPTQ on each linear's planned type.
    public static func quantizeToGGUF(source: String, output: String, preset: QuantPreset, gptq: GPTQPipeline.Options, awq: AWQPipeline.Options,
                                      quantizeOptions: GGUFQuantizer.Options? = nil, progress: ProgressCallback? = nil)
        throws -> (GGUFQuantizer.Report, [GPTQPipeline.LinearReport], [AWQPipeline.LayerReport]) {
        try GPTQPipeline.calibratedGGUF(source: source, output: output, preset: preset, options: gptq, awq: awq,
                                        quantizeOptions: quantizeOptions, progress: progress)
    }
}

extension AWQPipeline {
    /// AWQ into GGUF: the preset's plan gives each linear its ggml type; the scale and clip searches use that type's
    /// own quantize-dequantize as Q, the scales are folded into the norms and linears, and the scaled, clipped weights
    /// are quantized with the plan (same types and size as the round-to-nearest file) — with the imatrix when one is
    /// given, each column's importance divided by its AWQ scale squared (the folded linear's inputs are x / s).
    public static func quantizeToGGUF(source: String, output: String, options o: Options, quantizeOptions qo: GGUFQuantizer.Options,
                                      progress: ProgressCallback? = nil) throws -> (GGUFQuantizer.Report, [LayerReport]) {
        let plan = try GGUFQuantizer.plan(source, options: qo)
        var typeOf: [String: GGMLType] = [:]
        for t in plan.tensors { typeOf[t.name] = t.to }
        let m = try LoadedModel.load(source)
        let c = m.forward.w.config
        // each finished layer quantized into its planned types at once
        var replacements: [String: (GGMLType, [UInt8])] = [:]
        let reports = try run(m, options: o, Q: plannedQ(typeOf), progress: progress) { l, L, scales in
            for lin in LlamaLinear.allCases {
                let g = lin.ggufName(layer: l)
                guard let t = typeOf[g] else { continue }
                // the imatrix holds E[x²] of the unscaled inputs; the folded linear sees x / s, so its importance is ÷ s²
                let cols = lin.shape(c).cols
                var importance = plan.imatrix[g].map { Array($0.prefix(cols)) }
                if let s = scales[lin.input], let im = importance { importance = zip(im, s).map { $0 / ($1 * $1) } }
                replacements[g] = (t, try GGMLCodec.quantize(t, try lin.toGGUF(L[lin], c), rowLength: cols, imatrix: importance))
            }
            try planVectors(L.vectors(layer: l), typeOf, into: &replacements)
        }
        let q = try o.times.time("write") {
            try GGUFQuantizer.quantize(source, to: output, options: qo, replacements: replacements, progress: progress)
        }
        ResumeState.finish(output: output)
        return (q, reports)
    }
}

/// AWQ's pseudo-quantizer for a GGUF plan (ggml name → type): each linear quantized into its planned type and decoded
/// (F32 when the plan does not name it).
func plannedQ(_ typeOf: [String: GGMLType]) -> (Int, LlamaLinear) -> AWQ.PseudoQuantize {
    { l, lin in
        let t = typeOf[lin.ggufName(layer: l)] ?? .f32
        return { W, _, cols in try GGMLCodec.roundTrip(t, W, rowLength: cols) }
    }
}

/// A layer's norms and biases by HF name (`Layer.vectors`, e.g. AWQ-scaled) encoded in the types the plan gives them.
func planVectors(_ vectors: [(name: String, values: [Float])], _ typeOf: [String: GGMLType],
                 into replacements: inout [String: (GGMLType, [UInt8])]) throws {
    for (name, x) in vectors {
        guard let g = LlamaTensorNames.gguf(name), let t = typeOf[g] else { continue }
        replacements[g] = (t, try GGMLCodec.quantize(t, x, rowLength: x.count))
    }
}
