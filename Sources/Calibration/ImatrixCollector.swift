import Checkpoints
import Foundation
import Llama
import ModelFormats
import TensorCore

/// `imatrix`: Σx² per input column of every linear layer over calibration text, with llama-imatrix's conventions
/// (text tokenized once with BOS, chunks of n_ctx with BOS first, every token of a chunk counted, sums in f32 in
/// row order), written in llama.cpp's GGUF imatrix format or the legacy .dat.
public enum ImatrixCollector {
    public struct Options {
        public var ctx = 512
        public var chunks: Int?
        public var processOutput = false
        public var legacyFormat = false
        /// Keep the sums after every chunk in OUTPUT.state/ (`statePath` = OUTPUT); with `resume` continue from them.
        public var statePath: String? = nil
        public var resume = false
        /// Chunks per layer-by-layer pass (each layer is made f32 once per pass; the state is saved after each pass).
        public var chunksPerPass = 8
        public init() {}
    }

    /// GGUF weight names fed by each captured input, sorted.
    static func targets(_ layer: Int, _ input: LlamaInput) -> [String] {
        if input == .output { return ["output.weight"] }
        return input.linears.map { $0.ggufName(layer: layer) }.sorted()
    }

    public struct Result {
        public var sums: [String: [Float]] = [:]
        public var counts: [String: Int] = [:]
        public var chunks = 0
        public var chunkSize = 0
        public init() {}
    }

    public static func collect(model: LoadedModel, text: String, options o: Options, progress: ProgressCallback? = nil) throws -> Result {
        let tokens = model.tokenizer.encode(text, addSpecial: true, parseSpecial: false)
        guard tokens.count >= 2 * o.ctx else {
            throw QKError("the calibration text tokenizes to \(tokens.count) tokens; at least \(2 * o.ctx) are needed for --ctx \(o.ctx)")
        }
        let n = min(tokens.count / o.ctx, o.chunks ?? Int.max)
        var r = Result()
        r.chunkSize = o.ctx
        // Σx² of one captured input into the sums of every weight it feeds
        func accumulate(_ layer: Int, _ input: LlamaInput, _ x: UnsafeBufferPointer<Float>, _ width: Int) {
            let rows = x.count / width
            for t in targets(layer, input) {
                var acc = r.sums.removeValue(forKey: t) ?? [Float](repeating: 0, count: width)
                acc.withUnsafeMutableBufferPointer { a in
                    for row in 0..<rows {
                        let xr = x.baseAddress! + row * width
                        for j in 0..<width { a[j] += xr[j] * xr[j] }
                    }
                }
                r.sums[t] = acc
                r.counts[t, default: 0] += rows
            }
        }
        let bos: Int32? = model.tokenizer.addBos ? model.tokenizer.vocabulary.bos.map(Int32.init) : nil
        let state = try o.statePath.map {
            try ResumeState(output: $0, fingerprint: "imatrix|\(model.path)|ctx\(o.ctx)|n\(n)|out\(o.processOutput)|tokens \(ResumeState.digest([tokens]))", resume: o.resume)
        }
        let first = state?.done ?? 0
        if first > 0, let state {
            // sums and counts after the chunks an earlier run finished
            let saved = try state.load("chunks")
            for (k, v) in saved.floats { r.sums[k] = v }
            for (k, v) in saved.ints { r.counts[k] = Int(v.first ?? 0) }
            r.chunks = first
        }
        // layer by layer over batches of chunks: each layer made f32 once per batch; every tensor's sums still
        // accumulate chunk by chunk in order (the same f32 sums as chunk by chunk through the whole model)
        let fwd = model.forward
        let cache = LlamaForward.KVCache(config: fwd.w.config, capacity: o.ctx)
        let perPass = min(max(1, o.chunksPerPass), LlamaForward.sequencesPerPass(tokens: o.ctx, hidden: fwd.w.config.hiddenSize))
        for b0 in stride(from: first, to: n, by: perPass) {
            let b1 = min(n, b0 + perPass)
            progress?("imatrix chunks \(b0 + 1)-\(b1)", b0, n)
            let chunks = (b0..<b1).map { c -> [Int32] in
                var chunk = Array(tokens[(c * o.ctx)..<((c + 1) * o.ctx)])
                if let bos { chunk[0] = bos }
                return chunk
            }
            let pass = try LayerwisePass(fwd, sequences: chunks, cache: cache)
            for l in 0..<fwd.w.config.numLayers {
                pass.run(try fwd.w.layer(l), capturing: Set(LlamaInput.layerStages), advance: true) { _, input, x, width in
                    accumulate(l, input, x, width)
                }
            }
            // a head tied to the embeddings has no output.weight: llama-imatrix records no entry for it either
            if o.processOutput && !fwd.w.config.tieWordEmbeddings {
                fwd.captureLinearInput = { _, input, x, width in accumulate(-1, input, x, width) }
                for x in pass.residuals { _ = fwd.head(x, T: o.ctx, logitRows: 0..<o.ctx) }
                fwd.captureLinearInput = nil
            }
            r.chunks = b1
            if let state {
                let keys = r.sums.keys.sorted()
                try state.save("chunks", floats: keys.map { ($0, r.sums[$0]!) }, ints: keys.map { ($0, [Int32(clamping: r.counts[$0] ?? 0)]) })
                try state.markDone(b1)
            }
        }
        progress?("imatrix", n, n)
        for (k, v) in r.sums where !v.allSatisfy(\.isFinite) { throw QKError("non-finite values detected in \(k)") }
        return r
    }

    /// llama.cpp's GGUF imatrix: general.type, imatrix.datasets/chunk_count/chunk_size; per weight
    /// `<name>.in_sum2` [ne0, 1] and `<name>.counts` [1, 1], names sorted.
    public static func writeGGUF(_ r: Result, dataset: String, to path: String) throws {
        let md: [(String, GGUFValue)] = [("general.type", .string("imatrix")), ("imatrix.datasets", .array(.string, [.string(dataset)])),
                                         ("imatrix.chunk_count", .uint32(UInt32(r.chunks))), ("imatrix.chunk_size", .uint32(UInt32(r.chunkSize)))]
        var ts: [(name: String, ne: [Int], type: GGMLType)] = []
        let names = r.sums.keys.sorted()
        for n in names { ts += [(n + ".in_sum2", [r.sums[n]!.count, 1], .f32), (n + ".counts", [1, 1], .f32)] }
        let w = try GGUFWriter(path: path, metadata: md, tensors: ts)
        for n in names {
            try w.writeTensor(r.sums[n]!.withUnsafeBytes { Array($0) })
            try w.writeTensor([Float(r.counts[n] ?? 0)].withUnsafeBytes { Array($0) })
        }
        try w.finish()
    }

    /// The legacy .dat, as llama-imatrix writes it: entries without data left out; values stored as (Σx²/count)·ncall
    /// with ncall = ⌈count / chunk_size⌉ (rounded up, so a partial chunk never stores zeros).
    public static func writeDat(_ r: Result, dataset: String, to path: String) throws {
        var w = ByteWriter()
        let names = r.sums.keys.sorted().filter { (r.counts[$0] ?? 0) > 0 }
        w.i32(Int32(names.count))
        for n in names {
            let count = r.counts[n] ?? 0
            let chunk = max(1, r.chunkSize)
            let ncall = (count + chunk - 1) / chunk
            w.i32(Int32(n.utf8.count)); w.raw(Array(n.utf8))
            w.i32(Int32(ncall)); w.i32(Int32(r.sums[n]!.count))
            for v in r.sums[n]! { w.f32(count > 0 ? v / Float(count) * Float(ncall) : 1) }
        }
        w.i32(Int32(r.chunks))
        w.i32(Int32(dataset.utf8.count)); w.raw(Array(dataset.utf8))
        try writeFileAtomically(path, w.bytes)
    }
}
