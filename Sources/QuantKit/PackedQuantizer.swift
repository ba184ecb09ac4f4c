import Calibration
import Checkpoints
import Foundation
import Llama
import ModelFormats
import Quantization
import TensorCore

/// `quantize --method rtn|gptq|awq --format gptq|awq|compressed-tensors`: every linear of the decoder layers in an
/// integer scheme (bits, group size, sym/asym), written as a packed checkpoint. lm_head and the embeddings stay in
/// the source's float type.
public enum PackedQuantizer {
    public enum Method: String, CaseIterable, Sendable {
        case rtn, gptq, awq
        /// AWQ's scales (and clips, if asked), then GPTQ on the scaled weights.
        case awqGPTQ = "awq+gptq"
    }

    public struct Options {
        public var method: Method = .rtn
        public var layout: PackedLayout = .gptq
        public var scheme = IntegerScheme(bits: 4, groupSize: 128, sym: true)
        /// RTN's quantizer: GPTQ's min-max grid (default) or AutoAWQ's.
        public var rtnQuantizer: IntegerQuantizer = .gptq
        public var gptq = GPTQPipeline.Options()
        public var awq = AWQPipeline.Options()
        /// GPTQ layout: `checkpoint_format: gptq_v2` instead of v1 (whose zero points are floored at 1).
        public var gptqV2 = false
        /// Receives the wall time of each phase of the run (the calibration's and "write") when given.
        public var times: PhaseTimes? = nil
        public init() {}
    }

    public struct Report {
        public var checkpoint: PackedCheckpoint.Report
        public var linears: [GPTQPipeline.LinearReport] = []
        public var awqLayers: [AWQPipeline.LayerReport] = []
        public var seconds: Double = 0
    }

    public static func quantize(_ source: String, to dir: String, options o: Options, progress: ProgressCallback? = nil) throws -> Report {
        let t0 = Date()
        if LoadedModel.isGGUF(source) { throw QKError(file: source, "packed formats are written from an HF checkpoint; run `quantkit export` on this GGUF first") }
        try OutputDirectory.check(dir)
        let ck = try HFCheckpoint.open(source)
        if try PackedReader(configPath: ck.dir + "/config.json", weights: ck.weights) != nil {
            throw QKError(file: source, "is already quantized (config.json has quantization_config); start from the float checkpoint")
        }
        try Converter.checkShapes(ck)
        let c = ck.config
        var s = o.scheme
        if o.layout == .gptq && !o.gptqV2 && !s.sym { s.zeroFloor = 1 }
        let qd = c.numHeads * c.headDim
        for (what, width) in [("hidden size", c.hiddenSize), ("attention width", qd), ("intermediate size", c.intermediateSize)] {
            try s.validate(cols: width, what: "the \(what)")
        }
        if o.layout == .awq && (o.method == .gptq || o.method == .awqGPTQ) && o.gptq.gptq.actOrder && !o.gptq.gptq.staticGroups {
            throw QKError("the AWQ GEMM layout has no g_idx: GPTQ with --act-order needs --static-groups there, or use --format gptq / compressed-tensors")
        }
        // the codes wait in a scratch file beside the output until it is written
        let linears = try PackedCheckpoint.Linears(spillPath: dir + ".codes.partial")
        var replaced: [String: [Float]] = [:]
        var report = Report(checkpoint: PackedCheckpoint.Report(dir: dir, tensors: 0, bytes: 0, bitsPerWeight: 0, checkpointFormat: ""))
        var prov = PackedCheckpoint.Provenance()
        prov.method = o.method.rawValue
        switch o.method {
        case .rtn:
            for l in 0..<c.numLayers {
                for lin in LlamaLinear.allCases {
                    let m = lin.module(layer: l)
                    guard let info = ck.weights.info(m + ".weight"), info.shape.count == 2 else { throw QKError(file: ck.dir, "missing tensor \(m).weight") }
                    let W = try ck.weights.floats(m + ".weight")
                    if let bad = W.firstIndex(where: { !$0.isFinite }) { throw QKError(file: ck.dir, "tensor \(m).weight has a non-finite value at \(bad)") }
                    try linears.add(m, try IntegerQuant.rtn(W, rows: info.shape[0], cols: info.shape[1], scheme: s, quantizer: o.rtnQuantizer))
                }
                progress?("rtn layer \(l)", l + 1, c.numLayers)
            }
        case .gptq, .awqGPTQ:
            var model = try LoadedModel.load(source)
            let decisions = AWQThenGPTQ.Decisions()
            var g = o.gptq
            g.times = o.times
            if o.method == .awqGPTQ {
                // AWQ's searches against GPTQ's min-max grid (what the scaled weights end up on)
                var a = o.awq
                a.times = o.times
                a.groupSize = s.groupSize
                a.fingerprintExtra += "|awq+gptq packed \(o.layout.rawValue) \(s) z\(s.zeroFloor)"
                let Q: AWQ.PseudoQuantize = { W, rows, cols in try IntegerQuant.rtn(W, rows: rows, cols: cols, scheme: s, quantizer: .gptq).dequantized() }
                let sc = try AWQThenGPTQ.scale(model, options: a, output: dir, Q: { _, _ in Q }, progress: progress)
                for (name, values) in sc.vectors.joined() { replaced[name] = values }
                if a.judgeScales {
                    // a layer GPTQ does better on unscaled keeps the source's norms and biases
                    g.unscaled = AWQThenGPTQ.judge(model, importance: nil, dropped: { l in
                        for (name, _) in sc.vectors[l] { replaced[name] = nil }
                    }, decisions: decisions)
                }
                model = sc.model
                report.awqLayers = sc.reports
                g.fingerprintExtra += "|after awq \(a.groupSize) duo\(a.duoScaling) id\(a.identityCandidate) clip\(a.clip)"
                    + a.searchLoss.fingerprint
            }
            g.gptq.grid = .minmax(bits: s.bits, sym: s.sym)
            g.gptq.groupSize = s.groupSize
            g.gptq.zeroFloor = s.zeroFloor
            g.fingerprintExtra += "|packed \(o.layout.rawValue) \(s) z\(s.zeroFloor)"
            let rep = try GPTQPipeline.run(model, options: g, progress: progress) { l, lin, r in
                let (rows, cols) = lin.shape(c)
                try linears.add(lin.module(layer: l), GPTQ.integerLinear(r, rows: rows, cols: cols, scheme: s))
            }
            report.linears = rep
            report.awqLayers = decisions.apply(report.awqLayers)
            prov.damp = g.gptq.damp; prov.actOrder = g.gptq.actOrder; prov.staticGroups = g.gptq.staticGroups; prov.trueSequential = g.trueSequential
            if g.gptaq { prov.gptaqAlpha = g.gptq.gptaqAlpha }
        case .awq:
            let model = try LoadedModel.load(source)
            var a = o.awq
            a.times = o.times
            a.groupSize = s.groupSize
            a.fingerprintExtra += "|packed \(o.layout.rawValue) \(s) z\(s.zeroFloor)"
            let Q: AWQ.PseudoQuantize = { W, rows, cols in try IntegerQuant.rtn(W, rows: rows, cols: cols, scheme: s, quantizer: .awq).dequantized() }
            report.awqLayers = try AWQPipeline.run(model, options: a, Q: { _, _ in Q }, progress: progress) { l, L, _ in
                for lin in LlamaLinear.allCases {
                    let (rows, cols) = lin.shape(c)
                    try linears.add(lin.module(layer: l), try IntegerQuant.rtn(L[lin], rows: rows, cols: cols, scheme: s, quantizer: .awq))
                }
                for (name, values) in L.vectors(layer: l) { replaced[name] = values }
            }
        }
        report.checkpoint = try o.times.time("write") {
            try PackedCheckpoint.write(dir: dir, source: ck, layout: o.layout, scheme: s, linears: linears, replaced: replaced,
                                       provenance: prov, gptqV2: o.gptqV2, progress: progress)
        }
        ResumeState.finish(output: dir)
        if o.method == .awqGPTQ { AWQThenGPTQ.finish(output: dir) }
        report.seconds = Date().timeIntervalSince(t0)
        return report
    }
}
