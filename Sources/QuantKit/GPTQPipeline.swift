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
        public var calibration: [String] = []
        public var textField = "text"
        /// Share of the windows per calibration file (e.g. [7, 3]); nil reads the files as one text.
        public var mix: [Double]? = nil
        public var samples = 128
        public var seqLen = 512
        public var seed: UInt64 = 0
        public var gptq = GPTQOptions()
        public var trueSequential = true
        /// Per-linear column importance for the weighted ggml block search (by HF weight name), e.g. from an imatrix;
        /// nil → diag(H).
        public var importance: ((String) -> [Float]?)? = nil
        public init() {}
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

    /// The four linear stages of a Llama layer: the captured input name and the linears it feeds.
    static let stages: [(input: String, linears: [String])] = [
        ("self_attn.q_proj", ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]),
        ("self_attn.o_proj", ["self_attn.o_proj"]),
        ("mlp.gate_proj", ["mlp.gate_proj", "mlp.up_proj"]),
        ("mlp.down_proj", ["mlp.down_proj"]),
    ]

    static func weight(_ L: LlamaWeights.Layer, _ n: String) -> [Float] {
        switch n {
        case "self_attn.q_proj": return L.wq
        case "self_attn.k_proj": return L.wk
        case "self_attn.v_proj": return L.wv
        case "self_attn.o_proj": return L.wo
        case "mlp.gate_proj": return L.wGate
        case "mlp.up_proj": return L.wUp
        default: return L.wDown
        }
    }

    static func setWeight(_ L: inout LlamaWeights.Layer, _ n: String, _ v: [Float]) {
        switch n {
        case "self_attn.q_proj": L.wq = v
        case "self_attn.k_proj": L.wk = v
        case "self_attn.v_proj": L.wv = v
        case "self_attn.o_proj": L.wo = v
        case "mlp.gate_proj": L.wGate = v
        case "mlp.up_proj": L.wUp = v
        default: L.wDown = v
        }
    }

    /// Runs GPTQ over the model in `m` (its weights are replaced by the quantized ones). Returns the GPTQ result of
    /// every linear by HF name, and per-linear reports.
    public static func run(_ m: LoadedModel, options o: Options, progress: Progress? = nil) throws -> (results: [String: GPTQ.Result], report: [LinearReport]) {
        let windows = try CalibrationWindows.make(tokenizer: m.tokenizer, files: o.calibration, textField: o.textField, mix: o.mix,
                                                  samples: o.samples, seqLen: o.seqLen, seed: o.seed)
        let fwd = m.forward, c = fwd.w.config
        var X = try windows.map { try fwd.embed($0) }
        let cache = LlamaForward.KVCache(config: c, capacity: o.seqLen)
        var results: [String: GPTQ.Result] = [:]
        var report: [LinearReport] = []
        let t0 = Date()
        for l in 0..<c.numLayers {
            var L = fwd.w.layers[l]
            let groups = o.trueSequential ? stages.map { [$0] } : [stages]
            for group in groups {
                // capture the inputs of this group's stages with the current (partly quantized) layer
                var H: [String: [Float]] = [:], rowsSeen: [String: Int] = [:]
                let wanted = Set(group.map(\.input))
                fwd.captureLinearInput = { layer, name, x, width in
                    guard wanted.contains(name) else { return }
                    let rows = x.count / width
                    var acc = H[name] ?? [Float](repeating: 0, count: width * width)
                    acc.withUnsafeMutableBufferPointer { ap in
                        BLAS.gemmTNParallel(m: width, n: width, k: rows, a: x.baseAddress!, lda: width, b: x.baseAddress!, ldb: width, c: ap.baseAddress!, ldc: width)
                    }
                    H[name] = acc
                    rowsSeen[name, default: 0] += rows
                }
                // only as far into the layer as the last input this group needs
                let last = stages.map(\.input).last { wanted.contains($0) }
                for s in X.indices {
                    var x = X[s]
                    fwd.runLayer(l, L, x: &x, T: o.seqLen, P: 0, cache: cache, stopAfter: last)
                }
                fwd.captureLinearInput = nil
                for stage in group {
                    guard var h = H[stage.input], let n = rowsSeen[stage.input], n > 0 else { continue }
                    let scale = 2 / Float(n)
                    for i in h.indices { h[i] *= scale }
                    let width = Int(Double(h.count).squareRoot())
                    for lin in stage.linears {
                        let w = weight(L, lin)
                        let rows = w.count / width
                        var go = o.gptq
                        if let imp = o.importance?("model.layers.\(l).\(lin).weight"), imp.count == width { go.importance = imp }
                        let r = try GPTQ.run(W: w, rows: rows, cols: width, H: h, options: go)
                        setWeight(&L, lin, r.Q)
                        let name = "model.layers.\(l).\(lin).weight"
                        results[name] = r
                        let rtn = try roundToNearest(w, rows: rows, cols: width, options: o.gptq)
                        report.append(LinearReport(name: name, loss: r.loss, damp: r.dampUsed,
                                                   outputMSERTN: OutputError.mse(w, rtn, gram: h, rows: rows, cols: width, gramScale: 0.5),
                                                   outputMSE: OutputError.mse(w, r.Q, gram: h, rows: rows, cols: width, gramScale: 0.5)))
                    }
                }
            }
            fwd.w.layers[l] = L
            // the quantized layer makes the next layer's inputs
            for s in X.indices { fwd.runLayer(l, L, x: &X[s], T: o.seqLen, P: 0, cache: cache) }
            let el = Date().timeIntervalSince(t0)
            progress?("gptq layer \(l) (\(Int(el))s, ETA \(Int(el / Double(l + 1) * Double(c.numLayers - l - 1)))s)", l + 1, c.numLayers)
        }
        return (results, report)
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
            guard let g = LlamaTensorNames.gguf(hf) else { continue }
            let rows = r.codes.count / r.groupIndex.count, cols = r.groupIndex.count
            var bytes = try GPTQ.packGGML(r, type: type, rows: rows, cols: cols)
            let heads = hf.contains("q_proj") ? c.numHeads : hf.contains("k_proj") ? c.numKVHeads : nil
            if let heads {
                bytes = bytes.withUnsafeBytes { LlamaTensorNames.gatherRowBytes($0, rowBytes: type.rowBytes(cols), src: (try? LlamaTensorNames.qkPermutation(rows: rows, heads: heads)) ?? Array(0..<rows)) }
            }
            replacements[g] = (type, bytes)
        }
        let q = try GGUFQuantizer.quantize(source, to: output, options: quantizeOptions ?? .init(preset: preset), replacements: replacements, progress: progress)
        return (q, report)
    }
}
