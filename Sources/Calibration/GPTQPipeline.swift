import Checkpoints
import Foundation
import Llama
import ModelFormats
import Quantization
import TensorCore

/// Calibrated quantization, layer by layer through our own forward pass: the calibration windows are embedded,
/// then for each decoder layer the inputs of its linears are captured (stage by stage with --true-sequential:
/// q/k/v, then o, then gate/up, then down, each stage re-run with the previous stages quantized), H = 2XᵀX/n is
/// accumulated with sgemm (f32, as the reference tools), every linear is quantized with GPTQ, and the quantized
/// layer produces the next layer's inputs (`LayerwiseCalibration`). Memory: one set of activations (samples × seq-len ×
/// hidden), one layer's f32 weights and results, and what the caller keeps of each finished linear (packed).
public enum GPTQPipeline {
    public struct Options {
        public var data = CalibrationSet()
        public var gptq = GPTQOptions()
        /// Per linear (layer, linear): the grid it is quantized onto, or nil to keep it as it is (a linear the plan
        /// stores as F16/BF16/F32). Without it every linear takes `gptq.grid`. Describe it in `fingerprintExtra`.
        public var grids: ((Int, LlamaLinear) -> GPTQGrid?)? = nil
        public var trueSequential = true
        /// GPTAQ (GPTQModel's `gptaq`): each linear's target is its output on the full-precision model's inputs, carried
        /// in a second set of residual streams through the unquantized layers (`gptq.gptaqAlpha` of the correction).
        public var gptaq = false
        /// Per-linear column importance for the weighted ggml block search (by HF weight name), e.g. from an imatrix;
        /// nil → diag(H).
        public var importance: ((String) -> [Float]?)? = nil
        /// Keep per-layer state in OUTPUT.state/ (`statePath` = OUTPUT), and with `resume` continue from it.
        public var statePath: String? = nil
        public var resume = false
        /// Anything else the result depends on (e.g. the imatrix file), for the resume fingerprint.
        public var fingerprintExtra = ""
        /// Receives the wall time of each phase ("gptq capture", "gptq hessian", "gptq solve", …) when given.
        public var times: PhaseTimes? = nil
        /// AWQ then GPTQ: the layers without AWQ's scales, to judge the scales by (`Unscaled`); nil runs GPTQ on the
        /// model's layers alone.
        public var unscaled: Unscaled? = nil
        public init() {}
    }

    /// The block-level judge of AWQ's scales under GPTQ: each layer is quantized twice, from its scaled and its
    /// unscaled weights, each from the same incoming streams, and the one whose output streams are closer to the target
    /// (the full-precision model's streams with GPTAQ, else the unquantized layer's output on the same inputs) is
    /// kept. The linears' own output errors cannot judge it (GPTQ minimizes them either way; AWQ's gain is in what
    /// the softmax and SwiGLU after them make of the error).
    public struct Unscaled {
        /// Layer l before AWQ's scales were folded in.
        public var layer: (Int) throws -> LlamaWeights.Layer
        /// The block search's column importance for the unscaled linears (by HF weight name), as `Options.importance`.
        public var importance: ((String) -> [Float]?)?
        /// Told once per layer (also when restored from the resume state) whether AWQ's scales were kept.
        public var decided: (Int, Bool) -> Void
        public init(layer: @escaping (Int) throws -> LlamaWeights.Layer, importance: ((String) -> [Float]?)?,
                    decided: @escaping (Int, Bool) -> Void) {
            self.layer = layer
            self.importance = importance
            self.decided = decided
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
            return try GGMLCodec.roundTrip(t, W, rowLength: cols)
        case let .block(t):
            // as llama-quantize writes the type (with the imatrix when one is given)
            return try GGMLCodec.roundTrip(t, W, rowLength: cols, imatrix: o.importance)
        }
    }

    /// Runs GPTQ over the model in `m`, layer by layer. Each finished linear's result goes to `consume` (layer,
    /// linear, result) as soon as its layer is done, so a caller that packs it keeps one layer's f32 results at a time.
    /// Returns the per-linear reports.
    public static func run(_ m: LoadedModel, options o: Options, progress: ProgressCallback? = nil,
                           consume: @escaping (Int, LlamaLinear, GPTQ.Result) throws -> Void) throws -> [LinearReport] {
        let windows = try o.data.windows(m.tokenizer)
        let method = Layers(options: o, config: m.forward.w.config, source: m.path, consume: consume)
        try LayerwiseCalibration.run(m.forward, windows: windows, method: method, statePath: o.statePath, resume: o.resume, progress: progress)
        return method.report
    }

    /// GPTQ as a layer-wise method: per stage, H = 2XᵀX/n of the stage's captured inputs (from the layer as
    /// quantized so far), then GPTQ on the stage's linears.
    final class Layers: LayerwiseMethod {
        let o: Options
        let c: LlamaConfig
        let source: String
        let consume: (Int, LlamaLinear, GPTQ.Result) throws -> Void
        /// The current layer's results, by linear (`Q` is empty in a result restored from the resume state).
        var results: [LlamaLinear: GPTQ.Result] = [:]
        var report: [LinearReport] = []

        init(options: Options, config: LlamaConfig, source: String, consume: @escaping (Int, LlamaLinear, GPTQ.Result) throws -> Void) {
            o = options
            c = config
            self.source = source
            self.consume = consume
        }

        var label: String { "gptq" }
        var times: PhaseTimes? { o.times }
        var advancesFirst: Bool { false }

        var fingerprint: String {
            let g = o.gptq
            return "gptq|\(source)|\(g.grid)|g\(g.groupSize)|act\(g.actOrder)|static\(g.staticGroups)|damp\(g.damp)|b\(g.blockSize)" +
                "|w\(g.weightedBlockScales)|upd\(g.updatedGroupParams)|seq\(o.trueSequential)|n\(o.data.samples)x\(o.data.seqLen)|seed\(o.data.seed)|\(o.fingerprintExtra)" +
                (o.gptaq ? "|gptaq\(g.gptaqAlpha)" : "") + (o.unscaled != nil ? "|judged" : "")
        }

        /// Captured rows [count × width] gathered until a product adds them to a sum: ssyrk or sgemm over one
        /// 512-token window runs at half its rate over eight. A batch is full at up to 4096 rows (64 MiB at most).
        struct RowBatch {
            var width = 0
            var values: [Float] = []

            init() {}

            init(width: Int) {
                self.width = width
                values.reserveCapacity(Self.capacity(width: width) * width)
            }

            static func capacity(width: Int) -> Int { max(512, min(4096, (64 << 20) / (4 * max(1, width)))) }

            var count: Int { width > 0 ? values.count / width : 0 }
            var isFull: Bool { count >= Self.capacity(width: width) }
        }

        /// XᵀX of a stage's captured inputs, summed over the windows (the lower triangle until `hessian`) a batch at a
        /// time.
        struct Gram {
            var sum: [Float] = []
            var rows = 0
            /// Captured rows not yet in `sum`.
            var pending = RowBatch()
            /// Wall seconds spent adding rows to the sum (inside the capture's callbacks too).
            var seconds = 0.0

            var width: Int { pending.width }

            mutating func add(_ x: UnsafeBufferPointer<Float>, width w: Int) {
                if sum.isEmpty {
                    sum = [Float](repeating: 0, count: w * w)
                    pending = RowBatch(width: w)
                }
                pending.values.append(contentsOf: x)
                rows += x.count / w
                if pending.isFull { flush() }
            }

            /// Adds the pending rows to the sum.
            mutating func flush() {
                guard pending.count > 0 else { return }
                let t0 = PhaseTimes.now()
                defer { seconds += PhaseTimes.now() - t0 }
                let (n, w) = (pending.count, width)
                pending.values.withUnsafeBufferPointer { p in
                    sum.withUnsafeMutableBufferPointer { c in
                        BLAS.gramLowerParallel(n: w, k: n, x: p.baseAddress!, ldx: w, c: c.baseAddress!, ldc: w)
                    }
                }
                pending.values.removeAll(keepingCapacity: true)
            }

            /// H = 2XᵀX / n, GPTQ's Hessian (nil when nothing was captured); the sum is handed over, not copied.
            mutating func hessian() -> [Float]? {
                guard rows > 0 else { return nil }
                flush()
                let w = width
                pending = RowBatch()
                var h = sum
                sum = []
                h.withUnsafeMutableBufferPointer { BLAS.mirrorLower($0.baseAddress!, n: w, ldc: w) }
                let scale = 2 / Float(rows)
                for i in h.indices { h[i] *= scale }
                return h
            }
        }

        /// GPTAQ's asymmetry term 2(X̃ − X)ᵀX/n of a stage: X the captured inputs, X̃ the full-precision model's, summed
        /// over the windows a batch at a time as `Gram`.
        struct Cross {
            var sum: [Float] = []
            var rows = 0
            /// Rows not yet in `sum`: X̃ − X and X.
            var pendingD = RowBatch()
            var pendingX = RowBatch()
            var seconds = 0.0

            var width: Int { pendingX.width }

            mutating func add(fp: [Float], _ x: UnsafeBufferPointer<Float>, width w: Int) {
                if sum.isEmpty {
                    sum = [Float](repeating: 0, count: w * w)
                    pendingD = RowBatch(width: w)
                    pendingX = RowBatch(width: w)
                }
                for i in 0..<x.count { pendingD.values.append(fp[i] - x[i]) }
                pendingX.values.append(contentsOf: x)
                rows += x.count / w
                if pendingX.isFull { flush() }
            }

            /// C += (X̃ − X)ᵀ · X over the pending rows.
            mutating func flush() {
                guard pendingX.count > 0 else { return }
                let t0 = PhaseTimes.now()
                defer { seconds += PhaseTimes.now() - t0 }
                let (n, w) = (pendingX.count, width)
                pendingD.values.withUnsafeBufferPointer { d in
                    pendingX.values.withUnsafeBufferPointer { x in
                        sum.withUnsafeMutableBufferPointer { c in
                            BLAS.gemmTNParallel(m: w, n: w, k: n, a: d.baseAddress!, lda: w, b: x.baseAddress!, ldb: w,
                                                c: c.baseAddress!, ldc: w)
                        }
                    }
                }
                pendingD.values.removeAll(keepingCapacity: true)
                pendingX.values.removeAll(keepingCapacity: true)
            }

            /// 2(X̃ − X)ᵀX / n (nil when nothing was captured).
            mutating func term() -> [Float]? {
                guard rows > 0 else { return nil }
                flush()
                pendingD = RowBatch()
                pendingX = RowBatch()
                var c = sum
                sum = []
                let scale = 2 / Float(rows)
                for i in c.indices { c[i] *= scale }
                return c
            }
        }

        /// GPTAQ's windows 8 at a time: only a batch's full-precision stage inputs are held beside its quantized ones.
        static func fpBatches(_ windows: Int) -> [Range<Int>] {
            stride(from: 0, to: windows, by: 8).map { $0..<min(windows, $0 + 8) }
        }

        /// GPTAQ: the residual streams of the full-precision model, before the layer `process` runs next.
        var fpPass: LayerwisePass? = nil

        var carriesStreams: Bool { o.gptaq }
        var carriedStreams: [[Float]] { fpPass?.residuals ?? [] }
        func resumeCarried(_ streams: [[Float]], layer: Int, forward: LlamaForward) {
            fpPass = LayerwisePass(forward, residuals: streams, layer: layer)
        }

        /// Per layer judged: whether AWQ's scales were kept (`Unscaled`).
        var keptScales: [Int: Bool] = [:]

        func process(_ l: Int, _ L: inout LlamaWeights.Layer, pass: LayerwisePass) throws {
            // GPTAQ: the layer unquantized, for the full-precision inputs (plain GPTQ keeps no copy: each linear's f32
            // weights go as soon as its result replaces them)
            let fpL: LlamaWeights.Layer? = o.gptaq || o.unscaled != nil ? L : nil
            if o.gptaq && fpPass == nil {
                guard l == 0 else { throw QKError("GPTAQ: no full-precision residual streams before layer \(l)") }
                fpPass = LayerwisePass(pass.forward, residuals: pass.residuals, layer: l)
            }
            guard let u = o.unscaled, let fpL else {
                try calibrate(l, &L, pass: pass, fpL: fpL, importance: o.importance)
                if let fp = fpPass, let fpL { times.time("gptq forward") { fp.advance(fpL) } }
                return
            }
            // AWQ's scales judged: the scaled layer on the pass, the unscaled one on a copy of the incoming streams
            let input = pass.residuals
            let reported = report.count
            let scaledResults = try calibrate(l, &L, pass: pass, fpL: fpL, importance: o.importance)
            times.time("gptq forward") { pass.advance(L) }
            let unscaledL = try u.layer(l)
            var B = unscaledL
            let side = LayerwisePass(pass.forward, residuals: input, layer: l)
            let unscaledResults = try calibrate(l, &B, pass: side, fpL: unscaledL, importance: u.importance)
            times.time("gptq forward") { side.advance(B) }
            let target: [[Float]] = times.time("gptq forward") {
                if let fp = fpPass {
                    // from what the unscaled layer's stage runs left (the same values as the scaled layer's)
                    fp.advance(unscaledL)
                    return fp.residuals
                }
                let t = LayerwisePass(pass.forward, residuals: input, layer: l)
                t.advance(fpL)
                return t.residuals
            }
            let keep = Self.distance(pass.residuals, target) <= Self.distance(side.residuals, target)
            keptScales[l] = keep
            u.decided(l, keep)
            let kept = keep ? scaledResults : unscaledResults
            results = kept.results
            report.removeSubrange(reported...)
            report += kept.report
            if !keep {
                L = B
                pass.adopt(side)
            }
        }

        /// Σ‖a − b‖² over every window's streams.
        static func distance(_ a: [[Float]], _ b: [[Float]]) -> Double {
            var d = 0.0
            for (x, y) in zip(a, b) {
                for i in x.indices {
                    let e = Double(x[i] - y[i])
                    d += e * e
                }
            }
            return d
        }

        /// GPTQ on layer l's linears from `pass`'s streams (`fpL`: the layer unquantized, for GPTAQ's full-precision
        /// inputs). Returns the layer's results and reports (also left in `results` and `report`).
        @discardableResult
        func calibrate(_ l: Int, _ L: inout LlamaWeights.Layer, pass: LayerwisePass, fpL: LlamaWeights.Layer?,
                       importance: ((String) -> [Float]?)?) throws -> (results: [LlamaLinear: GPTQ.Result], report: [LinearReport]) {
            let stages = LlamaInput.layerStages
            let fp = o.gptaq ? fpPass : nil
            let reported = report.count
            results = [:]
            let windows = pass.residuals.count
            if o.trueSequential {
                // stage by stage from the layer as quantized so far, each run continuing from the last: every linear
                // runs once per window
                for stage in stages {
                    var gram = Gram()
                    var cross = Cross()
                    let t0 = PhaseTimes.now()
                    if let fp, let fpL {
                        // GPTAQ: a few windows at a time, each window's full-precision input beside its quantized one
                        for range in Self.fpBatches(windows) {
                            let first = range.lowerBound
                            var fpX = [[Float]](repeating: [], count: range.count)
                            fp.runStage(fpL, stage, sequences: range) { k, x, _ in fpX[k - first] = Array(x) }
                            pass.runStage(L, stage, sequences: range) { k, x, width in
                                gram.add(x, width: width)
                                cross.add(fp: fpX[k - first], x, width: width)
                            }
                        }
                    } else {
                        pass.runStage(L, stage) { _, x, width in gram.add(x, width: width) }
                    }
                    let h = gram.hessian()
                    let c = cross.term()
                    times?.add("gptq capture", PhaseTimes.now() - t0 - gram.seconds - cross.seconds)
                    times?.add("gptq hessian", gram.seconds + cross.seconds)
                    guard let h else { continue }
                    for lin in stage.linears { try quantize(l, lin, &L, H: h, cross: c, importance: importance) }
                }
            } else {
                // every stage's input from one run of the layer as it came in (summed in place: a copy out of the
                // dictionary would duplicate the sum for every window)
                var grams: [LlamaInput: Gram] = [:]
                var crosses: [LlamaInput: Cross] = [:]
                let t0 = PhaseTimes.now()
                if let fp, let fpL {
                    // GPTAQ: a few windows at a time, each window's full-precision inputs beside its quantized ones
                    for range in Self.fpBatches(windows) {
                        let first = range.lowerBound
                        var fpX: [LlamaInput: [[Float]]] = [:]
                        fp.run(fpL, capturing: Set(stages), advance: false, sequences: range) { k, input, x, _ in
                            fpX[input, default: [[Float]](repeating: [], count: range.count)][k - first] = Array(x)
                        }
                        pass.run(L, capturing: Set(stages), advance: false, sequences: range) { k, input, x, width in
                            grams[input, default: Gram()].add(x, width: width)
                            if let f = fpX[input] { crosses[input, default: Cross()].add(fp: f[k - first], x, width: width) }
                        }
                    }
                } else {
                    pass.run(L, capturing: Set(stages), advance: false) { _, input, x, width in
                        grams[input, default: Gram()].add(x, width: width)
                    }
                }
                var hessians: [LlamaInput: [Float]] = [:]
                var terms: [LlamaInput: [Float]] = [:]
                for stage in stages {
                    hessians[stage] = grams[stage]?.hessian()
                    terms[stage] = crosses[stage]?.term()
                }
                let gramSeconds = grams.values.reduce(0) { $0 + $1.seconds } + crosses.values.reduce(0) { $0 + $1.seconds }
                grams = [:]
                crosses = [:]
                times?.add("gptq capture", PhaseTimes.now() - t0 - gramSeconds)
                times?.add("gptq hessian", gramSeconds)
                for stage in stages {
                    guard let h = hessians.removeValue(forKey: stage) else { continue }
                    for lin in stage.linears { try quantize(l, lin, &L, H: h, cross: terms[stage], importance: importance) }
                }
            }
            return (results, Array(report[reported...]))
        }

        func quantize(_ l: Int, _ lin: LlamaLinear, _ L: inout LlamaWeights.Layer, H h: [Float], cross: [Float]?,
                      importance: ((String) -> [Float]?)?) throws {
            let w = L[lin]
            let (rows, width) = lin.shape(c)
            let name = lin.hfName(layer: l)
            var go = o.gptq
            if let grids = o.grids {
                guard let g = grids(l, lin) else { return }  // stored unquantized: nothing to calibrate
                go.grid = g
            }
            if let imp = importance?(name), imp.count == width { go.importance = imp }
            let r = try times.time("gptq solve") { try GPTQ.run(W: w, rows: rows, cols: width, H: h, cross: cross, options: go) }
            L[lin] = r.Q
            results[lin] = r
            try times.time("gptq report") {
                let rtn = try roundToNearest(w, rows: rows, cols: width, options: go)
                report.append(LinearReport(name: name, loss: r.loss, damp: r.dampUsed,
                                           outputMSERTN: OutputError.mse(w, rtn, gram: h, rows: rows, cols: width, gramScale: 0.5),
                                           outputMSE: OutputError.mse(w, r.Q, gram: h, rows: rows, cols: width, gramScale: 0.5)))
            }
        }

        func record(_ l: Int) -> ResumeState.Record {
            var rec = ResumeState.Record()
            if let k = keptScales[l] { rec.metadata.append(("awq.scales.kept", "\(k)")) }
            for linear in LlamaLinear.allCases {
                let name = linear.hfName(layer: l), lin = linear.hf
                guard let r = results[linear], let rep = report.last(where: { $0.name == name }) else {
                    rec.metadata.append((lin + ".kept", "true"))
                    continue
                }
                rec.metadata += [(lin + ".loss", "\(r.loss)"), (lin + ".damp", "\(r.dampUsed)"),
                                 (lin + ".mseRTN", "\(rep.outputMSERTN)"), (lin + ".mse", "\(rep.outputMSE)")]
                if let blocks = r.blocks {
                    rec.bytes.append((lin + ".blocks", blocks))
                    if let p = r.perm { rec.ints.append((lin + ".perm", p.map { Int32($0) })) }
                    continue
                }
                // codes as bytes (every grid's codes fit: 0 … 255 or −128 … 127); Q is not kept (the callers pack
                // codes and group parameters)
                rec.floats += [(lin + ".scale", r.params.flatMap(\.scale)), (lin + ".zero", r.params.flatMap(\.zero))]
                rec.bytes.append((lin + ".codes", r.codes.map { UInt8(truncatingIfNeeded: $0) }))
                rec.ints.append((lin + ".groupIndex", r.groupIndex.map { Int32($0) }))
                rec.metadata.append((lin + ".signedCodes", "\(r.codes.contains { $0 < 0 })"))
                if let p = r.perm { rec.ints.append((lin + ".perm", p.map { Int32($0) })) }
                rec.metadata.append((lin + ".groups", "\(r.params.count)"))
            }
            return rec
        }

        func restore(_ l: Int, from s: ResumeState.Saved) throws {
            if let u = o.unscaled {
                guard let k = s.metadata["awq.scales.kept"], k == "true" || k == "false" else {
                    throw QKError("resume state of layer \(l) lacks the AWQ scales' judgement; run without --resume to start over")
                }
                keptScales[l] = k == "true"
                u.decided(l, k == "true")
            }
            for linear in LlamaLinear.allCases {
                let lin = linear.hf
                if s.metadata[lin + ".kept"] == "true" { continue }
                if let blocks = s.bytes[lin + ".blocks"], let loss = s.metadata[lin + ".loss"].flatMap({ Double($0) }),
                   let damp = s.metadata[lin + ".damp"].flatMap({ Float($0) }), let mr = s.metadata[lin + ".mseRTN"].flatMap({ Double($0) }),
                   let mse = s.metadata[lin + ".mse"].flatMap({ Double($0) }) {
                    var r = GPTQ.Result(Q: [], codes: [], params: [], groupIndex: [], perm: s.ints[lin + ".perm"].map { $0.map { Int($0) } },
                                        loss: loss, dampUsed: damp)
                    r.blocks = blocks
                    results[linear] = r
                    report.append(LinearReport(name: linear.hfName(layer: l), loss: loss, damp: damp, outputMSERTN: mr, outputMSE: mse))
                    continue
                }
                guard let sc = s.floats[lin + ".scale"], let ze = s.floats[lin + ".zero"],
                      let bytes = s.bytes[lin + ".codes"], let gi = s.ints[lin + ".groupIndex"], let signed = s.metadata[lin + ".signedCodes"],
                      let G = s.metadata[lin + ".groups"].flatMap({ Int($0) }), G > 0, sc.count % G == 0, ze.count == sc.count,
                      let loss = s.metadata[lin + ".loss"].flatMap({ Double($0) }), let damp = s.metadata[lin + ".damp"].flatMap({ Float($0) }),
                      let mr = s.metadata[lin + ".mseRTN"].flatMap({ Double($0) }), let mse = s.metadata[lin + ".mse"].flatMap({ Double($0) })
                else {
                    throw QKError("resume state of layer \(l) lacks \(lin); run without --resume to start over")
                }
                let rows = sc.count / G
                let params = (0..<G).map { g in
                    GroupParams(scale: Array(sc[(g * rows)..<((g + 1) * rows)]), zero: Array(ze[(g * rows)..<((g + 1) * rows)]))
                }
                let codes = signed == "true" ? bytes.map { Int32(Int8(bitPattern: $0)) } : bytes.map { Int32($0) }
                results[linear] = GPTQ.Result(Q: [], codes: codes, params: params, groupIndex: gi.map { Int($0) },
                                              perm: s.ints[lin + ".perm"].map { $0.map { Int($0) } }, loss: loss, dampUsed: damp)
                report.append(LinearReport(name: linear.hfName(layer: l), loss: loss, damp: damp, outputMSERTN: mr, outputMSE: mse))
            }
        }

        func finish(_ l: Int) throws {
            keptScales[l] = nil
            for lin in LlamaLinear.allCases {
                guard let r = results.removeValue(forKey: lin) else { continue }
                try consume(l, lin, r)
            }
            results = [:]
        }
    }
}
