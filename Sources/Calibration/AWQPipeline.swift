import Checkpoints
import Foundation
import Llama
import ModelFormats
import Quantization
import TensorCore

/// AWQ layer by layer through our own forward pass, as AutoAWQ runs it on Llama: the layer's linear inputs are
/// captured from the full-precision layer, whose outputs feed the next layer (AutoAWQ's order); a scale search per
/// scaling group (`ScalingGroup.llama`); the scales folded; then the clip search on every linear but q/k. The
/// finished layers are scaled and clipped but not quantized: the caller quantizes them into its format.
public enum AWQPipeline {
    public struct Options {
        public var data = CalibrationSet()
        public var duoScaling = true
        /// The identity (no scaling) as a candidate beside the grid; false searches the grid alone, as AutoAWQ does.
        public var identityCandidate = true
        /// Calibration windows used for the scale-search losses of the attention and MLP blocks (all when nil); the
        /// o_proj and down_proj searches use every token through the Gram matrix of their inputs.
        public var searchSamples: Int? = nil
        /// What the attention and MLP groups' scale searches measure (the o_proj and down_proj searches are linear
        /// either way).
        public var searchLoss = SearchLoss.block
        /// The clip search after the scales (AutoAWQ's; the CLI turns it off before GPTQ).
        public var clip = true
        /// AWQ then GPTQ: keep a layer's scales only where GPTQ's output with them is closer to the target than without
        /// (`GPTQPipeline.Unscaled`); false keeps them in every layer.
        public var judgeScales = true
        public var groupSize = 128
        /// Keep per-layer state in OUTPUT.state/ (`statePath` = OUTPUT), and with `resume` continue from it.
        public var statePath: String? = nil
        public var resume = false
        /// Anything else the result depends on (the target format and scheme), for the resume fingerprint.
        public var fingerprintExtra = ""
        /// Receives the wall time of each phase ("awq capture", "awq search blocks", "awq clip", …) when given.
        public var times: PhaseTimes? = nil
        public init() {}
    }

    /// How a scale candidate of a group is judged.
    public enum SearchLoss: String, CaseIterable, Sendable {
        /// The output MSE of the block the group feeds (self-attention, MLP) on `searchSamples` windows, the block
        /// run once per candidate (AutoAWQ, llm-compressor).
        case block
        /// The output MSE of the group's linears themselves over every calibration token, through the Gram matrix of
        /// their shared input: no block runs, so the softmax and SwiGLU that follow are not seen.
        case linear

        /// What resume fingerprints add for this setting (nothing for the default, so earlier states still match).
        public var fingerprint: String { self == .block ? "" : "|loss \(rawValue)" }
    }

    public struct LayerReport {
        public let layer: Int
        /// Best ratio per searched group ("qkv", "o", "mlp", "down"; −1: no scaling), and the block-output MSE of plain Q
        /// (unscaled) and at the choice.
        public let ratios: [(group: String, ratio: Float, lossPlain: Double, lossBest: Double)]
        public let seconds: Double
        /// Weights the clip search changed (nil: no clip search).
        public var clipped: Int? = nil
        /// AWQ then GPTQ with the judge: whether the layer kept its scales under GPTQ (nil: not judged).
        public var keptUnderGPTQ: Bool? = nil
    }

    /// One scaling group (AutoAWQ's `(prev_op, layers, inp, module2inspect)`): the op whose output is divided by the
    /// scales, the linears whose input columns are multiplied by them (they share one captured input), and the block
    /// whose output the search's loss is measured on.
    struct ScalingGroup {
        enum Previous {
            /// An RMSNorm gain (one scale per hidden channel).
            case norm(LlamaNorm)
            /// A linear's output rows (and its bias): one per input column of the scaled linears, or under GQA one per
            /// KV channel for v → o (`tie`).
            case linear(LlamaLinear)
        }
        enum Inspect {
            /// Self-attention's output on `searchSamples` windows.
            case selfAttention
            /// The MLP's output on `searchSamples` windows.
            case mlp
            /// The group's one linear's output on every token, through the Gram matrix of its inputs.
            case linear
        }
        let name: String
        let previous: Previous
        let input: LlamaInput
        let inspect: Inspect
        /// The linears scaled.
        var linears: [LlamaLinear] { input.linears }

        static let llama: [ScalingGroup] = [
            ScalingGroup(name: "qkv", previous: .norm(.attn), input: .attnNormed, inspect: .selfAttention),
            ScalingGroup(name: "o", previous: .linear(.v), input: .attention, inspect: .linear),
            ScalingGroup(name: "mlp", previous: .norm(.ffn), input: .ffnNormed, inspect: .mlp),
            ScalingGroup(name: "down", previous: .linear(.up), input: .mlpHidden, inspect: .linear),
        ]

        /// For each input column of the scaled linears, the output channel of the previous op that feeds it (nil: the
        /// scales cannot be folded under `c`). Column i reads channel i, except v → o under GQA: o's column h·hd + d
        /// reads channel k·hd + d of v, k = h ÷ (heads ÷ KV heads) the KV head of query head h. One scale per KV channel,
        /// applied to every o column that reads it, keeps the fold exact (AutoAWQ and llm-compressor skip the pair).
        func tie(_ c: LlamaConfig) -> [Int]? {
            let cols = linears[0].shape(c).cols
            guard case .linear(let p) = previous else { return Array(0..<cols) }
            let rows = p.shape(c).rows
            if rows == cols { return Array(0..<cols) }
            let hd = c.headDim
            guard p == .v, linears == [.o], c.numKVHeads > 0, c.numHeads % c.numKVHeads == 0, rows == c.numKVHeads * hd,
                  cols == c.numHeads * hd else { return nil }
            let group = c.numHeads / c.numKVHeads
            return (0..<cols).map { col in (col / hd / group) * hd + col % hd }
        }

        /// Whether the group's scales can be folded into its previous op under `c`.
        func applies(_ c: LlamaConfig) -> Bool { tie(c) != nil }

        /// The number of channels the previous op outputs (one scale each).
        func channels(_ c: LlamaConfig) -> Int {
            switch previous {
            case .norm: return linears[0].shape(c).cols
            case .linear(let p): return p.shape(c).rows
            }
        }
    }

    /// Per channel, the mean of a per-column statistic over the columns the channel feeds (`tie`: column → channel).
    static func perChannel(_ v: [Float], tie: [Int], channels: Int) -> [Float] {
        var sum = [Float](repeating: 0, count: channels)
        var count = [Float](repeating: 0, count: channels)
        for (col, ch) in tie.enumerated() {
            sum[ch] += v[col]
            count[ch] += 1
        }
        return zip(sum, count).map { $0 / $1 }
    }

    static func scaleColumns(_ W: inout [Float], cols: Int, _ s: [Float]) {
        s.withUnsafeBufferPointer { sp in
            W.withUnsafeMutableBufferPointer { w in
                for r in 0..<(w.count / cols) {
                    let row = w.baseAddress! + r * cols
                    for c in 0..<cols { row[c] *= sp[c] }
                }
            }
        }
    }

    /// x[k][r, c] ÷ s[c] for every window k (through pointers: indexing the nested arrays re-checks each one's
    /// uniqueness per element, 6 of a SmolLM2 run's 267 s).
    static func divideColumns(_ x: inout [[Float]], cols: Int, _ s: [Float]) {
        s.withUnsafeBufferPointer { sp in
            for k in x.indices {
                x[k].withUnsafeMutableBufferPointer { xk in
                    for r in 0..<(xk.count / cols) {
                        let row = xk.baseAddress! + r * cols
                        for c in 0..<cols { row[c] /= sp[c] }
                    }
                }
            }
        }
    }

    /// Runs AWQ on `m`, layer by layer. `Q(l, linear)` is the pseudo-quantizer of that linear in layer `l`; each
    /// finished (scaled and clipped) layer goes to `finished` with the scales folded into each input's columns (by the
    /// input; an input whose group does not apply, or that AWQ left unscaled, has none).
    public static func run(_ m: LoadedModel, options o: Options, Q: @escaping (Int, LlamaLinear) -> AWQ.PseudoQuantize, progress: ProgressCallback? = nil,
                           finished: @escaping Finished) throws -> [LayerReport] {
        let windows = try o.data.windows(m.tokenizer)
        let c = m.forward.w.config
        let widths = [("hidden size", c.hiddenSize), ("attention width", c.numHeads * c.headDim), ("intermediate size", c.intermediateSize)]
        for (what, width) in widths where o.groupSize > 0 && width % o.groupSize != 0 {
            let fits = [128, 64, 32].filter { width % $0 == 0 }.map(String.init).joined(separator: ", ")
            throw QKError("AWQ group size \(o.groupSize) does not divide the \(what) \(width); use one that does (e.g. \(fits))")
        }
        let method = Layers(options: o, forward: m.forward, source: m.path, windows: windows.count, Q: Q, finished: finished)
        try LayerwiseCalibration.run(m.forward, windows: windows, method: method, statePath: o.statePath, resume: o.resume, progress: progress)
        return method.reports
    }

    public typealias Finished = (Int, LlamaWeights.Layer, [LlamaInput: [Float]]) throws -> Void

    /// AWQ as a layer-wise method.
    final class Layers: LayerwiseMethod {
        let o: Options
        let fwd: LlamaForward
        let c: LlamaConfig
        let source: String
        let nSearch: Int
        let Q: (Int, LlamaLinear) -> AWQ.PseudoQuantize
        let finished: Finished
        /// The current layer, scaled and clipped, and the scales folded into its linears' input columns.
        var current: LlamaWeights.Layer?
        var scales: [LlamaInput: [Float]] = [:]
        var reports: [LayerReport] = []

        init(options: Options, forward: LlamaForward, source: String, windows: Int, Q: @escaping (Int, LlamaLinear) -> AWQ.PseudoQuantize,
             finished: @escaping Finished) {
            o = options
            fwd = forward
            c = forward.w.config
            self.source = source
            nSearch = min(windows, options.searchSamples ?? windows)
            self.Q = Q
            self.finished = finished
        }

        var label: String { "awq" }
        var times: PhaseTimes? { o.times }
        var advancesFirst: Bool { true }

        var fingerprint: String {
            let groups = ScalingGroup.llama.filter { $0.applies(c) }.map(\.name).joined(separator: ",")
            return "awq|\(source)|g\(o.groupSize)|duo\(o.duoScaling)|id\(o.identityCandidate)|clip\(o.clip)|search\(nSearch)"
                + o.searchLoss.fingerprint
                + "|n\(o.data.samples)x\(o.data.seqLen)|seed\(o.data.seed)|groups \(groups)|\(o.fingerprintExtra)"
        }

        func process(_ l: Int, _ L: inout LlamaWeights.Layer, pass: LayerwisePass) throws {
            let tl = Date()
            let T = o.data.seqLen
            // 1. inputs of every linear from the full-precision layer, whose outputs feed the next layer
            var X = [[[Float]]](repeating: [], count: LlamaInput.allCases.count)
            times.time("awq capture") {
                pass.run(L, capturing: Set(LlamaInput.layerStages), advance: true) { _, input, x, _ in X[input.rawValue].append(Array(x)) }
            }
            let L0 = L
            let groups = ScalingGroup.llama.filter { $0.applies(c) }
            // 2. every group's scales searched on the unscaled layer
            var found: [(ScalingGroup, AWQ.ScaleSearch)] = []
            for g in groups {
                let phase = inspect(g) == .linear ? "awq search linears" : "awq search blocks"
                found.append((g, try times.time(phase) { try search(l, g, L0, X[g.input.rawValue], T: T) }))
            }
            // 3. fold: previous op ÷ s, the group's linears' columns × s, their captured inputs ÷ s
            let tFold = PhaseTimes.now()
            scales = [:]
            // (r.s: one scale per channel of the previous op; s: per input column of the linears)
            for (g, r) in found where r.ratio >= 0 {
                let s = g.tie(c)!.map { r.s[$0] }
                scales[g.input] = s
                let width = g.linears[0].shape(c).cols
                switch g.previous {
                case .norm(let n):
                    for i in r.s.indices { L[n][i] /= r.s[i] }
                case .linear(let p):
                    let cols = p.shape(c).cols
                    for row in r.s.indices { for cc in 0..<cols { L[p][row * cols + cc] /= r.s[row] } }
                    // its bias too: the channel's output (w·x + b) ÷ s
                    for row in L.biases[p.rawValue].indices { L.biases[p.rawValue][row] /= r.s[row] }
                }
                for lin in g.linears { scaleColumns(&L[lin], cols: width, s) }
                divideColumns(&X[g.input.rawValue], cols: width, s)
            }
            times?.add("awq fold", PhaseTimes.now() - tFold)
            // 4. clip search on every linear but q and k, with 512 tokens sampled evenly from its inputs
            var clipped: Int? = nil
            if o.clip {
                let tClip = PhaseTimes.now()
                defer { times?.add("awq clip", PhaseTimes.now() - tClip) }
                var sampled: [LlamaInput: [Float]] = [:]
                clipped = 0
                for lin in LlamaLinear.allCases where lin != .q && lin != .k {
                    let (rows, cols) = lin.shape(c)
                    if sampled[lin.input] == nil { sampled[lin.input] = AWQ.sampleRows(X[lin.input.rawValue], cols: cols) }
                    let W0 = L[lin]
                    let W = try AWQ.clip(W0, rows: rows, cols: cols, groupSize: o.groupSize, x: sampled[lin.input]!, Q: Q(l, lin))
                    for k in W.indices where W[k] != W0[k] { clipped! += 1 }
                    L[lin] = W
                }
            }
            current = L
            let ratios = found.map { ($0.0.name, $0.1.ratio, $0.1.plain, min($0.1.plain, $0.1.losses.min() ?? .infinity)) }
            reports.append(LayerReport(layer: l, ratios: ratios, seconds: Date().timeIntervalSince(tl), clipped: clipped))
        }

        /// What group `g`'s search measures: its own block, or its linears under `SearchLoss.linear`.
        func inspect(_ g: ScalingGroup) -> ScalingGroup.Inspect { o.searchLoss == .linear ? .linear : g.inspect }

        /// The scale search of group `g` on the unscaled layer `L0`, its inputs `x` (one block per window).
        func search(_ l: Int, _ g: ScalingGroup, _ L0: LlamaWeights.Layer, _ x: [[Float]], T: Int) throws -> AWQ.ScaleSearch {
            // the statistics per channel of the previous op (the search's s), the candidates' s per input column
            let width = g.linears[0].shape(c).cols
            let tie = g.tie(c)!
            let channels = g.channels(c)
            let xMean = AWQPipeline.perChannel(AWQ.xMean(x, cols: width), tie: tie, channels: channels)
            let wMean = AWQPipeline.perChannel(AWQ.wMean(g.linears.map { L0[$0] }, cols: width, groupSize: o.groupSize), tie: tie,
                                               channels: channels)
            let perColumn = { (s: [Float]) in tie.map { s[$0] } }
            func scaled(_ s: [Float]) throws -> LlamaWeights.Layer {
                var Lq = L0
                for lin in g.linears {
                    let (rows, cols) = lin.shape(c)
                    Lq[lin] = try AWQ.scaledPseudoQuantize(L0[lin], rows: rows, cols: cols, s: perColumn(s), Q: Q(l, lin))
                }
                return Lq
            }
            switch inspect(g) {
            case .selfAttention, .mlp:
                let block = { (L: LlamaWeights.Layer, k: Int) -> [Float] in
                    g.inspect == .mlp ? self.fwd.mlp(L, normed: x[k], T: T) : self.fwd.selfAttention(l, L, normed: x[k], T: T)
                }
                let ref = (0..<nSearch).map { block(L0, $0) }
                return try AWQ.searchScales(xMean: xMean, wMean: wMean, duo: o.duoScaling, identity: o.identityCandidate) { s in
                    let Lq = try scaled(s)
                    var loss = 0.0
                    for k in 0..<nSearch { loss += AWQ.mse(block(Lq, k), ref[k]) }
                    return loss / Double(nSearch)
                }
            case .linear:
                // the linears' output MSE from their input's Gram matrix, over every calibration token (several linears:
                // the mean over all their outputs)
                let gram = OutputError.gram(x, cols: width)
                let outputs = g.linears.reduce(0) { $0 + $1.shape(c).rows }
                return try AWQ.searchScales(xMean: xMean, wMean: wMean, duo: o.duoScaling, identity: o.identityCandidate) { s in
                    var sum = 0.0
                    for lin in g.linears {
                        let (rows, cols) = lin.shape(c)
                        let Wq = try AWQ.scaledPseudoQuantize(L0[lin], rows: rows, cols: cols, s: perColumn(s),
                                                              Q: self.Q(l, lin))
                        let mse = OutputError.mse(L0[lin], Wq, gram: gram, rows: rows, cols: cols)
                        if g.linears.count == 1 { return mse }
                        sum += mse * Double(rows)
                    }
                    return sum / Double(outputs)
                }
            }
        }

        func record(_ l: Int) -> ResumeState.Record {
            guard let L = current, let rep = reports.last else { return ResumeState.Record() }
            var md: [(String, String)] = [("groups", rep.ratios.map(\.group).joined(separator: ",")), ("seconds", "\(rep.seconds)")]
            if let n = rep.clipped { md.append(("clipped", "\(n)")) }
            for r in rep.ratios { md += [(r.group + ".ratio", "\(r.ratio)"), (r.group + ".plain", "\(r.lossPlain)"), (r.group + ".best", "\(r.lossBest)")] }
            // the biases too: a v → o fold divides v's
            let biases = LlamaLinear.allCases.filter { $0.hasBias(c) }.map { ($0.hf + ".bias", L.bias($0)) }
            let floats = LlamaNorm.allCases.map { ($0.hf, L[$0]) } + LlamaLinear.allCases.map { ($0.hf, L[$0]) } + biases
                + scales.sorted { $0.key < $1.key }.map { ("scales.\($0.key.rawValue)", $0.value) }
            return ResumeState.Record(floats: floats, metadata: md)
        }

        func restore(_ l: Int, from s: ResumeState.Saved) throws {
            // resume keys: the tensors' HF names inside the layer
            let biased = LlamaLinear.allCases.filter { $0.hasBias(c) }
            let keys = LlamaNorm.allCases.map(\.hf) + LlamaLinear.allCases.map(\.hf) + biased.map { $0.hf + ".bias" }
            guard keys.allSatisfy({ s.floats[$0] != nil }) else {
                throw QKError("resume state of layer \(l) is incomplete; run without --resume to start over")
            }
            let biases = LlamaLinear.allCases.map { $0.hasBias(c) ? s.floats[$0.hf + ".bias"]! : [] }
            current = LlamaWeights.Layer(norms: LlamaNorm.allCases.map { s.floats[$0.hf]! }, linears: LlamaLinear.allCases.map { s.floats[$0.hf]! },
                                         biases: biases)
            scales = [:]
            for input in LlamaInput.allCases { scales[input] = s.floats["scales.\(input.rawValue)"] }
            let groups = (s.metadata["groups"] ?? "").split(separator: ",").map(String.init)
            reports.append(LayerReport(layer: l, ratios: try groups.map { g in
                guard let r = s.metadata[g + ".ratio"].flatMap({ Float($0) }), let a = s.metadata[g + ".plain"].flatMap({ Double($0) }),
                      let b = s.metadata[g + ".best"].flatMap({ Double($0) }) else {
                    throw QKError("resume state of layer \(l) lacks the \(g) report")
                }
                return (g, r, a, b)
            }, seconds: Double(s.metadata["seconds"] ?? "") ?? 0, clipped: s.metadata["clipped"].flatMap { Int($0) }))
        }

        func finish(_ l: Int) throws {
            guard let L = current else { return }
            current = nil
            try finished(l, L, scales)
        }
    }
}
