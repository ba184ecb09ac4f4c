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

    /// Tokens of sequence s.
    func length(_ s: Int) -> Int { residuals[s].count / forward.w.config.hiddenSize }

    /// Runs `layer` with weights `L` over every sequence in order and hands `body` each captured input in `inputs`:
    /// (sequence, input, x [T × width], width). With `advance` the residual streams move past the layer; without, they
    /// are left as they were and each sequence stops right after the last input wanted.
    public func run(_ L: LlamaWeights.Layer, capturing inputs: Set<LlamaInput>, advance: Bool,
                    _ body: (Int, LlamaInput, UnsafeBufferPointer<Float>, Int) -> Void) {
        let l = layer
        let fwd = forward
        let saved = fwd.captureLinearInput
        defer { fwd.captureLinearInput = saved }
        withoutActuallyEscaping(body) { body in
            var s = 0
            fwd.captureLinearInput = inputs.isEmpty ? nil : { _, input, x, width in
                if inputs.contains(input) { body(s, input, x, width) }
            }
            let last = advance ? nil : inputs.max()
            for k in residuals.indices {
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

    /// Moves the residual streams past `layer` with weights `L`.
    public func advance(_ L: LlamaWeights.Layer) {
        run(L, capturing: [], advance: true) { _, _, _, _ in }
    }
}
