import Calibration
import Foundation
import Llama
import ModelFormats
import Quantization
import TensorCore

/// AWQ layer by layer through our own forward pass, as AutoAWQ runs it on Llama: the layer's linear inputs are
/// captured from the full-precision layer, four scale searches (input_layernorm → q/k/v inspecting self-attention;
/// v_proj → o_proj only when the shapes match, which GQA skips; post_attention_layernorm → gate/up inspecting the
/// MLP; up_proj → down_proj), the scales folded, then the clip search on every linear but q/k. The next layer's
/// inputs are the full-precision outputs (AutoAWQ's order). The model's weights are left scaled and clipped but not
/// quantized: the caller quantizes them into its format.
public enum AWQPipeline {
    public struct Options {
        public var data = CalibrationSet()
        public var duoScaling = true
        /// Calibration windows used for the scale-search losses of the attention and MLP blocks (all when nil); the
        /// o_proj and down_proj searches use every token through the Gram matrix of their inputs.
        public var searchSamples: Int? = nil
        public var clip = true
        public var groupSize = 128
        /// Keep per-layer state in OUTPUT.state/ (`statePath` = OUTPUT), and with `resume` continue from it.
        public var statePath: String? = nil
        public var resume = false
        /// Anything else the result depends on (the target format and scheme), for the resume fingerprint.
        public var fingerprintExtra = ""
        public init() {}
    }

    public struct LayerReport {
        public let layer: Int
        /// Best ratio per searched group ("qkv", "o", "mlp", "down"), and the block-output MSE at r = 0 (plain Q) and at the best r.
        public let ratios: [(group: String, ratio: Float, lossPlain: Double, lossBest: Double)]
        public let seconds: Double
    }

    static func scaleColumns(_ W: inout [Float], cols: Int, _ s: [Float]) {
        for r in 0..<(W.count / cols) { for c in 0..<cols { W[r * cols + c] *= s[c] } }
    }

    static func divideColumns(_ x: inout [[Float]], cols: Int, _ s: [Float]) {
        for k in x.indices { for r in 0..<(x[k].count / cols) { for c in 0..<cols { x[k][r * cols + c] /= s[c] } } }
    }

    /// Runs AWQ on `m` (weights replaced by the scaled and clipped ones). `Q(l, linear)` is the pseudo-quantizer of
    /// that linear in layer `l`.
    public static func run(_ m: LoadedModel, options o: Options, Q: (Int, LlamaLinear) -> AWQ.PseudoQuantize, progress: Progress? = nil) throws -> [LayerReport] {
        let windows = try o.data.windows(m.tokenizer)
        let fwd = m.forward, c = fwd.w.config, T = o.data.seqLen
        let H = c.hiddenSize, qd = c.numHeads * c.headDim, kvd = c.numKVHeads * c.headDim, F = c.intermediateSize
        for (what, width) in [("hidden size", H), ("attention width", qd), ("intermediate size", F)] {
            if o.groupSize > 0 && width % o.groupSize != 0 {
                throw QKError("AWQ group size \(o.groupSize) does not divide the \(what) \(width); use one that does (e.g. \([128, 64, 32].filter { width % $0 == 0 }.map(String.init).joined(separator: ", ")))")
            }
        }
        let nSearch = min(windows.count, o.searchSamples ?? windows.count)
        let cache = LlamaForward.KVCache(config: c, capacity: T)
        var reports: [LayerReport] = []
        let fp = "awq|\(m.path)|g\(o.groupSize)|duo\(o.duoScaling)|clip\(o.clip)|search\(nSearch)|n\(o.data.samples)x\(T)|seed\(o.data.seed)|\(o.fingerprintExtra)|windows \(ResumeState.digest(windows))"
        let state = try o.statePath.map { try ResumeState(output: $0, fingerprint: fp, resume: o.resume) }
        let first = state?.done ?? 0
        // resume keys: the tensors' HF names inside the layer
        let keys = LlamaNorm.allCases.map(\.hf) + LlamaLinear.allCases.map(\.hf)
        for l in 0..<first {
            // finished by an earlier run: the scaled and clipped layer and its report
            let s = try state!.load("layer-\(l)")
            guard keys.allSatisfy({ s.floats[$0] != nil }) else { throw QKError("resume state of layer \(l) is incomplete; run without --resume to start over") }
            fwd.w.replaceLayer(l, with: LlamaWeights.Layer(norms: LlamaNorm.allCases.map { s.floats[$0.hf]! },
                                                           linears: LlamaLinear.allCases.map { s.floats[$0.hf]! }))
            let groups = (s.metadata["groups"] ?? "").split(separator: ",").map(String.init)
            reports.append(LayerReport(layer: l, ratios: try groups.map { g in
                guard let r = s.metadata[g + ".ratio"].flatMap({ Float($0) }), let a = s.metadata[g + ".plain"].flatMap({ Double($0) }),
                      let b = s.metadata[g + ".best"].flatMap({ Double($0) }) else { throw QKError("resume state of layer \(l) lacks the \(g) report") }
                return (g, r, a, b)
            }, seconds: Double(s.metadata["seconds"] ?? "") ?? 0))
        }
        var X = first > 0 ? try state!.loadActivations(after: first - 1, count: windows.count) : try windows.map { try fwd.embed($0) }
        let t0 = Date()
        for l in first..<c.numLayers {
            let tl = Date()
            var L = try fwd.w.layer(l)
            // 1. inputs of every linear from the full-precision layer; its outputs feed the next layer
            var captured = [[[Float]]](repeating: [], count: LlamaInput.allCases.count)
            fwd.captureLinearInput = { _, input, x, _ in captured[input.rawValue].append(Array(x)) }
            for s in X.indices { fwd.runLayer(l, L, x: &X[s], T: T, P: 0, cache: cache) }
            fwd.captureLinearInput = nil
            var h1 = captured[LlamaInput.attnNormed.rawValue], att = captured[LlamaInput.attention.rawValue]
            var h2 = captured[LlamaInput.ffnNormed.rawValue], gact = captured[LlamaInput.mlpHidden.rawValue]
            captured = []
            let L0 = L
            var ratios: [(String, Float, Double, Double)] = []
            func record(_ name: String, _ r: AWQ.ScaleSearch) { ratios.append((name, r.ratio, r.losses.first ?? 0, r.losses.min() ?? 0)) }

            // 2. input_layernorm → q, k, v; loss on the self-attention output
            let refAttn = (0..<nSearch).map { fwd.selfAttention(l, L0, normed: h1[$0], T: T) }
            let sQKV = try AWQ.searchScales(xMean: AWQ.xMean(h1, cols: H),
                                             wMean: AWQ.wMean([L0[.q], L0[.k], L0[.v]], cols: H, groupSize: o.groupSize), duo: o.duoScaling) { s in
                var Lq = L0
                Lq[.q] = try AWQ.scaledPseudoQuantize(L0[.q], rows: qd, cols: H, s: s, Q: Q(l, .q))
                Lq[.k] = try AWQ.scaledPseudoQuantize(L0[.k], rows: kvd, cols: H, s: s, Q: Q(l, .k))
                Lq[.v] = try AWQ.scaledPseudoQuantize(L0[.v], rows: kvd, cols: H, s: s, Q: Q(l, .v))
                var loss = 0.0
                for k in 0..<nSearch { loss += AWQ.mse(fwd.selfAttention(l, Lq, normed: h1[k], T: T), refAttn[k]) }
                return loss / Double(nSearch)
            }
            record("qkv", sQKV)

            // 3. v_proj → o_proj, only when v's output width equals o's input width (not with GQA)
            var sVO: AWQ.ScaleSearch? = nil
            if kvd == qd {
                // a linear block: its output MSE from the inputs' Gram matrix, over every calibration token
                let gram = OutputError.gram(att, cols: qd)
                sVO = try AWQ.searchScales(xMean: AWQ.xMean(att, cols: qd), wMean: AWQ.wMean([L0[.o]], cols: qd, groupSize: o.groupSize), duo: o.duoScaling) { s in
                    OutputError.mse(L0[.o], try AWQ.scaledPseudoQuantize(L0[.o], rows: H, cols: qd, s: s, Q: Q(l, .o)), gram: gram, rows: H, cols: qd)
                }
                record("o", sVO!)
            }

            // 4. post_attention_layernorm → gate, up; loss on the MLP output
            let refMLP = (0..<nSearch).map { fwd.mlp(L0, normed: h2[$0], T: T) }
            let sMLP = try AWQ.searchScales(xMean: AWQ.xMean(h2, cols: H),
                                             wMean: AWQ.wMean([L0[.gate], L0[.up]], cols: H, groupSize: o.groupSize), duo: o.duoScaling) { s in
                var Lq = L0
                Lq[.gate] = try AWQ.scaledPseudoQuantize(L0[.gate], rows: F, cols: H, s: s, Q: Q(l, .gate))
                Lq[.up] = try AWQ.scaledPseudoQuantize(L0[.up], rows: F, cols: H, s: s, Q: Q(l, .up))
                var loss = 0.0
                for k in 0..<nSearch { loss += AWQ.mse(fwd.mlp(Lq, normed: h2[k], T: T), refMLP[k]) }
                return loss / Double(nSearch)
            }
            record("mlp", sMLP)

            // 5. up_proj → down_proj; loss on down_proj's output
            let gramDown = OutputError.gram(gact, cols: F)
            let sDown = try AWQ.searchScales(xMean: AWQ.xMean(gact, cols: F), wMean: AWQ.wMean([L0[.down]], cols: F, groupSize: o.groupSize), duo: o.duoScaling) { s in
                OutputError.mse(L0[.down], try AWQ.scaledPseudoQuantize(L0[.down], rows: H, cols: F, s: s, Q: Q(l, .down)), gram: gramDown, rows: H, cols: F)
            }
            record("down", sDown)

            // fold: previous op ÷ s, next linears' columns × s, cached inputs ÷ s
            for i in 0..<H { L[.attn][i] /= sQKV.s[i]; L[.ffn][i] /= sMLP.s[i] }
            scaleColumns(&L[.q], cols: H, sQKV.s); scaleColumns(&L[.k], cols: H, sQKV.s); scaleColumns(&L[.v], cols: H, sQKV.s)
            divideColumns(&h1, cols: H, sQKV.s)
            if let sVO {
                for r in 0..<kvd { for cc in 0..<H { L[.v][r * H + cc] /= sVO.s[r] } }
                scaleColumns(&L[.o], cols: qd, sVO.s)
                divideColumns(&att, cols: qd, sVO.s)
            }
            scaleColumns(&L[.gate], cols: H, sMLP.s); scaleColumns(&L[.up], cols: H, sMLP.s)
            divideColumns(&h2, cols: H, sMLP.s)
            for r in 0..<F { for cc in 0..<H { L[.up][r * H + cc] /= sDown.s[r] } }
            scaleColumns(&L[.down], cols: F, sDown.s)
            divideColumns(&gact, cols: F, sDown.s)

            // 6. clip search on every linear but q and k, with 512 tokens sampled evenly from its inputs
            if o.clip {
                let xv = AWQ.sampleRows(h1, cols: H), xo = AWQ.sampleRows(att, cols: qd)
                let xg = AWQ.sampleRows(h2, cols: H), xd = AWQ.sampleRows(gact, cols: F)
                L[.v] = try AWQ.clip(L[.v], rows: kvd, cols: H, groupSize: o.groupSize, x: xv, Q: Q(l, .v))
                L[.o] = try AWQ.clip(L[.o], rows: H, cols: qd, groupSize: o.groupSize, x: xo, Q: Q(l, .o))
                L[.gate] = try AWQ.clip(L[.gate], rows: F, cols: H, groupSize: o.groupSize, x: xg, Q: Q(l, .gate))
                L[.up] = try AWQ.clip(L[.up], rows: F, cols: H, groupSize: o.groupSize, x: xg, Q: Q(l, .up))
                L[.down] = try AWQ.clip(L[.down], rows: H, cols: F, groupSize: o.groupSize, x: xd, Q: Q(l, .down))
            }
            fwd.w.replaceLayer(l, with: L)
            reports.append(LayerReport(layer: l, ratios: ratios, seconds: Date().timeIntervalSince(tl)))
            if let state {
                var md: [(String, String)] = [("groups", ratios.map(\.0).joined(separator: ",")), ("seconds", "\(reports.last!.seconds)")]
                for r in ratios { md += [(r.0 + ".ratio", "\(r.1)"), (r.0 + ".plain", "\(r.2)"), (r.0 + ".best", "\(r.3)")] }
                let floats = LlamaNorm.allCases.map { ($0.hf, L[$0]) } + LlamaLinear.allCases.map { ($0.hf, L[$0]) }
                try state.save("layer-\(l)", floats: floats, metadata: md)
                try state.saveActivations(X, after: l)
            }
            let el = Date().timeIntervalSince(t0)
            progress?("awq layer \(l) (\(Int(el))s, ETA \(Int(el / Double(l - first + 1) * Double(c.numLayers - l - 1)))s)", l + 1, c.numLayers)
        }
        return reports
    }
}

extension AWQPipeline {
    /// AWQ into GGUF: the preset's plan gives each linear its ggml type; the scale and clip searches use that type's
    /// own quantize-dequantize as Q, the scales are folded into the norms and linears, and the scaled, clipped weights
    /// are quantized with the plan (same types and size as the round-to-nearest file).
    public static func quantizeToGGUF(source: String, output: String, options o: Options, quantizeOptions qo: GGUFQuantizer.Options,
                                      progress: Progress? = nil) throws -> (GGUFQuantizer.Report, [LayerReport]) {
        let plan = try GGUFQuantizer.plan(source, options: qo)
        var typeOf: [String: GGMLType] = [:]
        for t in plan.tensors { typeOf[t.name] = t.to }
        let m = try LoadedModel.load(source)
        let c = m.forward.w.config
        func type(_ l: Int, _ lin: LlamaLinear) -> GGMLType { typeOf[lin.ggufName(layer: l)] ?? .f32 }
        let reports = try run(m, options: o, Q: { l, lin in
            let t = type(l, lin)
            return { W, rows, cols in
                let b = try GGMLCodec.quantize(t, W, rowLength: cols)
                return try b.withUnsafeBytes { try GGMLCodec.dequantize(t, $0, count: W.count) }
            }
        }, progress: progress)
        var replacements: [String: (GGMLType, [UInt8])] = [:]
        for l in 0..<c.numLayers {
            let L = try m.forward.w.layer(l)
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
