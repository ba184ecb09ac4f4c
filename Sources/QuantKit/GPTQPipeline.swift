import Calibration
import Foundation
import Llama
import ModelFormats
import Quantization
import TensorCore

/// Calibrated quantization, layer by layer through our own forward pass: the calibration windows are embedded,
/// then for each decoder layer the inputs of its linears are captured (stage by stage with --true-sequential:
/// q/k/v, then o, then gate/up, then down, each stage re-run with the previous stages quantized), H = 2XᵀX/n is
/// accumulated with sgemm (f32, as the reference tools), every linear is quantized with GPTQ, and the quantized
/// layer produces the next layer's inputs. Memory: one set of activations (samples × seq-len × hidden) plus the model.
public enum GPTQPipeline {
    public struct Options {
        public var data = CalibrationSet()
        public var gptq = GPTQOptions()
        public var trueSequential = true
        /// Per-linear column importance for the weighted ggml block search (by HF weight name), e.g. from an imatrix;
        /// nil → diag(H).
        public var importance: ((String) -> [Float]?)? = nil
        /// Keep per-layer state in OUTPUT.state/ (`statePath` = OUTPUT), and with `resume` continue from it.
        public var statePath: String? = nil
        public var resume = false
        /// Anything else the result depends on (e.g. the imatrix file), for the resume fingerprint.
        public var fingerprintExtra = ""
        public init() {}

        func fingerprint(source: String, windows: [[Int32]]) -> String {
            let g = gptq
            return "gptq|\(source)|\(g.grid)|g\(g.groupSize)|act\(g.actOrder)|static\(g.staticGroups)|damp\(g.damp)|b\(g.blockSize)|w\(g.weightedBlockScales)" +
                "|seq\(trueSequential)|n\(data.samples)x\(data.seqLen)|seed\(data.seed)|\(fingerprintExtra)|windows \(ResumeState.digest(windows))"
        }
    }

    /// Per linear: the GPTQ loss, the damping used, and the mean squared output error per element on the
    /// calibration inputs (d·(H/2)·dᵀ per row, d = W − Q) of round-to-nearest on the same grid and of GPTQ.
    public struct LinearReport {
        public let name: String; public let loss: Double; public let damp: Float
        public let outputMSERTN: Double; public let outputMSE: Double
    }

    /// Round-to-nearest on a GPTQ grid (the baseline of the report).
    static func roundToNearest(_ W: [Float], rows: Int, cols: Int, options o: GPTQOptions) throws -> [Float] {
        switch o.grid {
        case let .minmax(bits, sym):
            return try IntegerQuant.rtn(W, rows: rows, cols: cols, scheme: IntegerScheme(bits: bits, groupSize: o.groupSize, sym: sym), quantizer: .gptq).dequantized()
        case let .ggml(t):
            let b = try GGMLCodec.quantize(t, W, rowLength: cols)
            return try b.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: W.count) }
        }
    }

    /// Runs GPTQ over the model in `m` (its weights are replaced by the quantized ones). Returns the GPTQ result of
    /// every linear by HF name, and per-linear reports.
    public static func run(_ m: LoadedModel, options o: Options, progress: Progress? = nil) throws -> (results: [String: GPTQ.Result], report: [LinearReport]) {
        let windows = try o.data.windows(m.tokenizer)
        let fwd = m.forward, c = fwd.w.config
        var X: [[Float]]
        let cache = LlamaForward.KVCache(config: c, capacity: o.data.seqLen)
        var results: [String: GPTQ.Result] = [:]
        var report: [LinearReport] = []
        let state = try o.statePath.map { try ResumeState(output: $0, fingerprint: o.fingerprint(source: m.path, windows: windows), resume: o.resume) }
        let first = state?.done ?? 0
        for l in 0..<first {
            // finished by an earlier run: its results, and the quantized layer
            let saved = try state!.load("layer-\(l)")
            var L = try fwd.w.layer(l)
            for lin in LlamaLinear.allCases {
                let (r, rep) = try restore(saved, lin, layer: l)
                L[lin] = r.Q
                results[rep.name] = r
                report.append(rep)
            }
            fwd.w.replaceLayer(l, with: L)
        }
        X = first > 0 ? try state!.loadActivations(after: first - 1, count: windows.count) : try windows.map { try fwd.embed($0) }
        let t0 = Date()
        for l in first..<c.numLayers {
            var L = try fwd.w.layer(l)
            let stages = LlamaInput.layerStages
            let groups = o.trueSequential ? stages.map { [$0] } : [stages]
            for group in groups {
                // capture the inputs of this group's stages with the current (partly quantized) layer
                var H: [LlamaInput: [Float]] = [:], rowsSeen: [LlamaInput: Int] = [:]
                let wanted = Set(group)
                fwd.captureLinearInput = { layer, name, x, width in
                    guard wanted.contains(name) else { return }
                    let rows = x.count / width
                    // accumulated in place (a copy out of the dictionary would duplicate H for every window)
                    H[name, default: [Float](repeating: 0, count: width * width)].withUnsafeMutableBufferPointer { ap in
                        BLAS.gemmTNParallel(m: width, n: width, k: rows, a: x.baseAddress!, lda: width, b: x.baseAddress!, ldb: width, c: ap.baseAddress!, ldc: width)
                    }
                    rowsSeen[name, default: 0] += rows
                }
                // only as far into the layer as the last input this group needs
                let last = group.max()
                for s in X.indices {
                    var x = X[s]
                    fwd.runLayer(l, L, x: &x, T: o.data.seqLen, P: 0, cache: cache, stopAfter: last)
                }
                fwd.captureLinearInput = nil
                for stage in group {
                    guard var h = H[stage], let n = rowsSeen[stage], n > 0 else { continue }
                    let scale = 2 / Float(n)
                    for i in h.indices { h[i] *= scale }
                    for lin in stage.linears {
                        let w = L[lin]
                        let (rows, width) = lin.shape(c)
                        let name = lin.hfName(layer: l)
                        var go = o.gptq
                        if let imp = o.importance?(name), imp.count == width { go.importance = imp }
                        let r = try GPTQ.run(W: w, rows: rows, cols: width, H: h, options: go)
                        L[lin] = r.Q
                        results[name] = r
                        let rtn = try roundToNearest(w, rows: rows, cols: width, options: o.gptq)
                        report.append(LinearReport(name: name, loss: r.loss, damp: r.dampUsed,
                                                   outputMSERTN: OutputError.mse(w, rtn, gram: h, rows: rows, cols: width, gramScale: 0.5),
                                                   outputMSE: OutputError.mse(w, r.Q, gram: h, rows: rows, cols: width, gramScale: 0.5)))
                    }
                }
            }
            fwd.w.replaceLayer(l, with: L)
            // the quantized layer makes the next layer's inputs
            for s in X.indices { fwd.runLayer(l, L, x: &X[s], T: o.data.seqLen, P: 0, cache: cache) }
            if let state {
                try save(state, layer: l, results: results, report: report)
                try state.saveActivations(X, after: l)
            }
            let el = Date().timeIntervalSince(t0)
            progress?("gptq layer \(l) (\(Int(el))s, ETA \(Int(el / Double(l - first + 1) * Double(c.numLayers - l - 1)))s)", l + 1, c.numLayers)
        }
        return (results, report)
    }

    /// One finished layer's GPTQ results and reports into the resume state.
    static func save(_ state: ResumeState, layer l: Int, results: [String: GPTQ.Result], report: [LinearReport]) throws {
        var fl: [(String, [Float])] = [], it: [(String, [Int32])] = [], md: [(String, String)] = []
        for linear in LlamaLinear.allCases {
            let name = linear.hfName(layer: l), lin = linear.hf
            guard let r = results[name], let rep = report.last(where: { $0.name == name }) else { continue }
            fl += [(lin + ".Q", r.Q), (lin + ".scale", r.params.flatMap(\.scale)), (lin + ".zero", r.params.flatMap(\.zero))]
            it += [(lin + ".codes", r.codes), (lin + ".groupIndex", r.groupIndex.map { Int32($0) })]
            if let p = r.perm { it.append((lin + ".perm", p.map { Int32($0) })) }
            md += [(lin + ".loss", "\(r.loss)"), (lin + ".damp", "\(r.dampUsed)"), (lin + ".groups", "\(r.params.count)"),
                   (lin + ".mseRTN", "\(rep.outputMSERTN)"), (lin + ".mse", "\(rep.outputMSE)")]
        }
        try state.save("layer-\(l)", floats: fl, ints: it, metadata: md)
    }

    static func restore(_ s: ResumeState.Saved, _ linear: LlamaLinear, layer l: Int) throws -> (GPTQ.Result, LinearReport) {
        let lin = linear.hf
        guard let Q = s.floats[lin + ".Q"], let sc = s.floats[lin + ".scale"], let ze = s.floats[lin + ".zero"], let codes = s.ints[lin + ".codes"],
              let gi = s.ints[lin + ".groupIndex"], let G = s.metadata[lin + ".groups"].flatMap({ Int($0) }), G > 0, sc.count % G == 0,
              let loss = s.metadata[lin + ".loss"].flatMap({ Double($0) }), let damp = s.metadata[lin + ".damp"].flatMap({ Float($0) }),
              let mr = s.metadata[lin + ".mseRTN"].flatMap({ Double($0) }), let mse = s.metadata[lin + ".mse"].flatMap({ Double($0) }) else {
            throw QKError("resume state of layer \(l) lacks \(lin); run without --resume to start over")
        }
        let rows = sc.count / G
        let params = (0..<G).map { g in GroupParams(scale: Array(sc[(g * rows)..<((g + 1) * rows)]), zero: Array(ze[(g * rows)..<((g + 1) * rows)])) }
        let r = GPTQ.Result(Q: Q, codes: codes, params: params, groupIndex: gi.map { Int($0) }, perm: s.ints[lin + ".perm"].map { $0.map { Int($0) } },
                            loss: loss, dampUsed: damp)
        return (r, LinearReport(name: linear.hfName(layer: l), loss: loss, damp: damp, outputMSERTN: mr, outputMSE: mse))
    }
}

extension GPTQPipeline {
    /// GPTQ expressed in ggml block types stock llama.cpp loads: every linear the preset puts in Q4_0 / Q4_1 / Q8_0
    /// is GPTQ-quantized against that block type's own grid and packed into it; everything else follows the
    /// preset's round-to-nearest plan (so the file has the same types and size as llama-quantize's).
    public static func quantizeToGGUF(source: String, output: String, preset: QuantPreset, options o: Options,
                                      quantizeOptions: GGUFQuantizer.Options? = nil, progress: Progress? = nil) throws -> (GGUFQuantizer.Report, [LinearReport]) {
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
        let (results, report) = try run(m, options: opts, progress: progress)
        var replacements: [String: (GGMLType, [UInt8])] = [:]
        for (hf, r) in results {
            guard let (l, lin) = LlamaLinear.parse(hfName: hf) else { continue }
            let (rows, cols) = lin.shape(c)
            let bytes = try GPTQ.packGGML(r, type: type, rows: rows, cols: cols)
            replacements[lin.ggufName(layer: l)] = (type, try lin.toGGUF(rowBytes: bytes, rowBytes: type.rowBytes(cols), c))
        }
        let q = try GGUFQuantizer.quantize(source, to: output, options: quantizeOptions ?? .init(preset: preset), replacements: replacements, progress: progress)
        ResumeState.finish(output: output)
        return (q, report)
    }
}
