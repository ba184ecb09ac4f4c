import TensorCore

/// Sequences carried through the model one decoder layer at a time: every sequence goes through layer l before layer
/// l+1 is made, so each layer's f32 weights exist once per pass (a model streamed from its file holds one layer).
/// Evaluation and imatrix only advance; calibration captures a layer's inputs, changes the layer, then advances
/// with the changed layer.
public final class LayerwisePass {
    public let forward: LlamaForward
    /// The residual stream of each sequence entering `layer`: [T_s × hidden].
    public private(set) var residuals: [[Float]]
    /// The layer the residual streams enter next.
    public private(set) var layer: Int
    let cache: LlamaForward.KVCache
    /// Per sequence, what stage-by-stage runs of the current layer (`runStage`) have computed so far.
    private var staged: [Staged]?

    struct Staged {
        /// softmax(q·kᵀ/√d)·v [T × heads·headDim], with q, k, v as they were at the attention stage's run.
        var attention: [Float]?
        /// x + attention·Woᵀ [T × hidden], with o as it was at the ffnNormed stage's run.
        var residual: [Float]?
        /// silu(h·Wgateᵀ) ⊙ (h·Wupᵀ) [T × intermediate], with gate and up as they were at the mlpHidden stage's run.
        var hidden: [Float]?
    }

    /// Embeds `sequences` (each from position 0); the pass stands before layer 0.
    public convenience init(_ forward: LlamaForward, sequences: [[Int32]], cache: LlamaForward.KVCache? = nil) throws {
        let X = try sequences.map { try forward.embed($0) }
        self.init(forward, residuals: X, layer: 0, cache: cache)
    }

    /// Continues from residual streams saved before `layer` (a resumed calibration).
    public init(_ forward: LlamaForward, residuals: [[Float]], layer: Int, cache: LlamaForward.KVCache? = nil) {
        self.forward = forward
        self.residuals = residuals
        self.layer = layer
        let H = forward.w.config.hiddenSize
        let longest = residuals.map { $0.count / max(1, H) }.max() ?? 1
        self.cache = cache ?? LlamaForward.KVCache(config: forward.w.config, capacity: max(1, longest))
    }

    /// Takes over `other`'s residual streams and position (a pass run beside this one from the same streams, e.g.
    /// with other weights for the layer).
    public func adopt(_ other: LayerwisePass) {
        precondition(other.residuals.count == residuals.count, "adopt: a pass over other sequences")
        residuals = other.residuals
        layer = other.layer
        staged = nil
    }

    /// Tokens of sequence s.
    func length(_ s: Int) -> Int { residuals[s].count / forward.w.config.hiddenSize }

    /// Runs `layer` with weights `L` over every sequence in order and hands `body` each captured input in `inputs`:
    /// (sequence, input, x [T × width], width). With `advance` the residual streams move past the layer; without, they
    /// are left as they were and each sequence stops right after the last input wanted. With `sequences` (only without
    /// `advance`), only those.
    public func run(_ L: LlamaWeights.Layer, capturing inputs: Set<LlamaInput>, advance: Bool, sequences: Range<Int>? = nil,
                    _ body: (Int, LlamaInput, UnsafeBufferPointer<Float>, Int) -> Void) {
        precondition(sequences == nil || !advance, "run: a layer advances every sequence")
        let l = layer
        let fwd = forward
        staged = nil
        let saved = fwd.captureLinearInput
        defer { fwd.captureLinearInput = saved }
        withoutActuallyEscaping(body) { body in
            var s = 0
            fwd.captureLinearInput = inputs.isEmpty ? nil : { _, input, x, width in
                if inputs.contains(input) { body(s, input, x, width) }
            }
            let last = advance ? nil : inputs.max()
            for k in sequences ?? residuals.indices {
                s = k
                cache.reset()
                if advance {
                    fwd.runLayer(l, L, x: &residuals[k], T: length(k), P: 0, cache: cache)
                } else {
                    var x = residuals[k]
                    fwd.runLayer(l, L, x: &x, T: length(k), P: 0, cache: cache, stopAfter: last)
                }
            }
            fwd.captureLinearInput = nil
        }
        if advance {
            cache.release(layer: l)
            layer += 1
        }
    }

    /// Moves the residual streams past `layer` with weights `L`: from what stage-by-stage runs left, when they reached
    /// the MLP (then only down_proj runs), else the whole layer.
    public func advance(_ L: LlamaWeights.Layer) {
        guard let st = staged, st.allSatisfy({ $0.residual != nil && $0.hidden != nil }) else {
            run(L, capturing: [], advance: true) { _, _, _, _ in }
            return
        }
        let c = forward.w.config
        for k in residuals.indices {
            var x = st[k].residual!                         // [T, H]
            let T = length(k)
            st[k].hidden!.withUnsafeBufferPointer { g in
                x.withUnsafeMutableBufferPointer { xs in
                    LlamaForward.linear(g.baseAddress!, rows: T, W: L[.down], inDim: c.intermediateSize, outDim: c.hiddenSize,
                                        into: xs.baseAddress!, accumulate: true)
                }
            }
            residuals[k] = x
        }
        staged = nil
        cache.release(layer: layer)
        layer += 1
    }

    /// True-sequential calibration: hands `body` (sequence, x [T × width], width) the input of `stage` for every
    /// sequence, computed from what the run for the stage before left — so call it for the stages in order, changing
    /// the layer between runs only in the linears the stage just run feeds. Each linear then runs once per sequence,
    /// with the weights it has when its input is next needed, and `advance` finishes from the MLP's values: the same
    /// values as running the layer from its start for every stage (runLayer's steps, in its order). With `sequences`,
    /// only those (each range's stages still in order: a caller may go through the sequences a range at a time).
    public func runStage(_ L: LlamaWeights.Layer, _ stage: LlamaInput, sequences: Range<Int>? = nil,
                         _ body: (Int, UnsafeBufferPointer<Float>, Int) -> Void) {
        let fwd = forward
        let c = fwd.w.config
        let H = c.hiddenSize
        let qd = c.numHeads * c.headDim
        let F = c.intermediateSize
        let eps = Float(c.rmsNormEps)
        let l = layer
        if staged == nil { staged = Array(repeating: Staged(), count: residuals.count) }
        let s = cache.scratch
        for k in sequences ?? residuals.indices {
            if stage == .attnNormed { staged![k] = Staged() }
            let T = length(k)
            let h = s.get(.normed, count: T * H)           // [T, H]
            func norm(_ x: [Float], _ g: LlamaNorm) {
                x.withUnsafeBufferPointer { LlamaForward.normRows($0.baseAddress!, L[g], h, rows: T, n: H, eps: eps) }
            }
            func attention() -> [Float] {
                if let a = staged![k].attention { return a }
                cache.reset()
                let att = s.get(.attention, count: T * qd)  // [T, nq·hd]
                norm(residuals[k], .attn)
                fwd.attentionCore(l, L, normed: h, T: T, P: 0, cache: cache, into: att)
                return Array(UnsafeBufferPointer(start: att, count: T * qd))
            }
            func residual() -> [Float] {
                if let r = staged![k].residual { return r }
                var x = residuals[k]
                let att = attention()
                att.withUnsafeBufferPointer { a in
                    x.withUnsafeMutableBufferPointer { xs in
                        LlamaForward.linear(a.baseAddress!, rows: T, W: L[.o], inDim: qd, outDim: H, into: xs.baseAddress!, accumulate: true)
                    }
                }
                return x
            }
            switch stage {
            case .attnNormed:
                norm(residuals[k], .attn)
                body(k, UnsafeBufferPointer(start: h, count: T * H), H)
            case .attention:
                staged![k].attention = nil
                let att = attention()
                staged![k].attention = att
                att.withUnsafeBufferPointer { body(k, $0, qd) }
            case .ffnNormed:
                staged![k].residual = nil
                let x = residual()
                staged![k] = Staged(attention: nil, residual: x, hidden: nil)
                norm(x, .ffn)
                body(k, UnsafeBufferPointer(start: h, count: T * H), H)
            case .mlpHidden:
                let x = residual()
                norm(x, .ffn)
                let g = s.get(.gate, count: T * F)         // [T, F]
                fwd.mlpHidden(L, normed: h, T: T, into: g, scratch: s)
                staged![k] = Staged(attention: nil, residual: x, hidden: Array(UnsafeBufferPointer(start: g, count: T * F)))
                body(k, UnsafeBufferPointer(start: g, count: T * F), F)
            case .output:
                preconditionFailure("runStage: the head's input is not a layer stage")
            }
        }
    }
}
