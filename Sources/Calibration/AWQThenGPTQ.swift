import Checkpoints
import Foundation
import Llama
import ModelFormats
import Quantization
import TensorCore

/// Decoder layers held in an unlinked scratch file as f32 (norms, linears, biases), read back one at a time: the
/// AWQ-scaled model GPTQ runs on, in one layer's memory.
public final class SpilledLayers {
    private let fd: Int32
    private let path: String
    private var end = 0
    /// Per layer: (offset, count) of each norm, linear and bias array, in `Layer`'s order.
    private var index: [Int: [(offset: Int, count: Int)]] = [:]

    public init(scratch path: String) throws {
        self.path = path
        fd = PartialFiles.scratchFile(path)
        guard fd >= 0 else { throw QKError(file: path, "cannot create the scratch file for the scaled layers") }
    }

    deinit { close(fd) }

    public func add(_ l: Int, _ L: LlamaWeights.Layer) throws {
        var spans: [(offset: Int, count: Int)] = []
        for a in L.norms + L.linears + L.biases {
            let n = a.count * 4
            let wrote = a.withUnsafeBytes { pwrite(fd, $0.baseAddress, n, off_t(end)) }
            guard wrote == n else { throw QKError(file: path, "cannot write the scaled layer \(l) (disk full?)") }
            spans.append((end, a.count))
            end += n
        }
        index[l] = spans
    }

    public func layer(_ l: Int) throws -> LlamaWeights.Layer {
        guard let spans = index[l] else { throw QKError("scaled layer \(l) was not written") }
        let arrays = try spans.map { s -> [Float] in
            var a = [Float](repeating: 0, count: s.count)
            let got = a.withUnsafeMutableBytes { pread(fd, $0.baseAddress, s.count * 4, off_t(s.offset)) }
            guard got == s.count * 4 else { throw QKError(file: path, "cannot read back the scaled layer \(l)") }
            return a
        }
        let (nn, nl) = (LlamaNorm.allCases.count, LlamaLinear.allCases.count)
        return LlamaWeights.Layer(norms: Array(arrays[0..<nn]), linears: Array(arrays[nn..<(nn + nl)]),
                                  biases: Array(arrays[(nn + nl)...]))
    }
}

/// AWQ then GPTQ (`--method awq+gptq`): AWQ's scale search folds its scales into the norms and linears (the clip search
/// only when asked: GPTQ takes the weights it is given as its target, so a clip's error would go unseen), then GPTQ
/// quantizes the scaled linears with its error feedback — the two fix different errors (AWQ the
/// weights that salient activations multiply, GPTQ the rounding error left over). The scaled layers are spilled to a
/// scratch file beside the output, so memory stays one layer's.
public enum AWQThenGPTQ {
    public struct Scaled {
        /// The AWQ-scaled model (layers read from the spill), for GPTQ.
        public let model: LoadedModel
        public let reports: [AWQPipeline.LayerReport]
        /// Per layer: the scales folded into each input's columns.
        public let scales: [[LlamaInput: [Float]]]
        /// Per layer: the scaled norms and biases by HF name (what the output must store in place of the source's).
        public let vectors: [[(name: String, values: [Float])]]
        let spill: SpilledLayers
    }

    /// Runs AWQ on `m` with pseudo-quantizer `Q` and keeps its state in OUTPUT.awq.state (`output` = OUTPUT).
    public static func scale(_ m: LoadedModel, options o: AWQPipeline.Options, output: String,
                             Q: @escaping (Int, LlamaLinear) -> AWQ.PseudoQuantize, progress: ProgressCallback? = nil) throws -> Scaled {
        let spill = try SpilledLayers(scratch: output + ".awq.partial")
        let n = m.forward.w.config.numLayers
        var scales = [[LlamaInput: [Float]]](repeating: [:], count: n)
        var vectors = [[(name: String, values: [Float])]](repeating: [], count: n)
        var a = o
        if let p = o.statePath { a.statePath = p + ".awq" }
        let reports = try AWQPipeline.run(m, options: a, Q: Q, progress: progress) { l, L, s in
            try spill.add(l, L)
            scales[l] = s
            vectors[l] = L.vectors(layer: l)
        }
        let model = m.replacingLayers { try spill.layer($0) }
        return Scaled(model: model, reports: reports, scales: scales, vectors: vectors, spill: spill)
    }

    /// An importance per HF linear weight name (e.g. from an imatrix of the unscaled model) for the scaled model: each
    /// column divided by the square of its AWQ scale.
    public static func scaledImportance(_ importance: ((String) -> [Float]?)?, _ scaled: Scaled) -> ((String) -> [Float]?)? {
        guard let importance else { return nil }
        return { hf in
            guard let im = importance(hf) else { return nil }
            guard let (l, lin) = LlamaLinear.parse(hfName: hf), l < scaled.scales.count, let s = scaled.scales[l][lin.input], s.count == im.count else {
                return im
            }
            return zip(im, s).map { $0 / ($1 * $1) }
        }
    }

    /// The GPTQ pass's judge of the scales (`GPTQPipeline.Unscaled`): layers of `original` (the model before AWQ), with
    /// `importance` for the unscaled linears. `dropped(l)` is told each layer whose scales GPTQ did better without (the
    /// caller then stores the source's norms and biases for it); `decisions` collects every judgement.
    public static func judge(_ original: LoadedModel, importance: ((String) -> [Float]?)?, dropped: @escaping (Int) -> Void,
                             decisions: Decisions) -> GPTQPipeline.Unscaled {
        GPTQPipeline.Unscaled(layer: { try original.forward.w.layer($0) }, importance: importance) { l, kept in
            decisions.kept[l] = kept
            if !kept { dropped(l) }
        }
    }

    /// Per layer: whether GPTQ kept AWQ's scales.
    public final class Decisions {
        public var kept: [Int: Bool] = [:]
        public init() {}

        /// `reports` with each layer's judgement.
        public func apply(_ reports: [AWQPipeline.LayerReport]) -> [AWQPipeline.LayerReport] {
            reports.map { r in
                var r = r
                r.keptUnderGPTQ = kept[r.layer]
                return r
            }
        }
    }

    /// Removes the AWQ phase's resume state once the whole run is done.
    public static func finish(output: String) {
        ResumeState.finish(output: output + ".awq")
    }
}
