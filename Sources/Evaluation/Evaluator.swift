import Checkpoints
import Foundation
import Llama
import ModelFormats
import TensorCore

/// `eval`: the reference and each candidate on the same tokens; PPL, Δppl, KLD, top-1 agreement, size.
public enum Evaluator {
    public struct Row {
        public let name: String
        public let result: EvalResult
        public let fileBytes: Int
        public let bitsPerWeight: Double
    }

    public struct Report {
        public let protocolName: String
        public let ctx: Int
        public let chunks: Int
        public let tokens: Int
        public let reference: Row
        public let candidates: [Row]
        public let blasCore: String
        public let seconds: Double
        /// How quantized rows met the activations (`ActivationRounding`).
        public var activations = ActivationRounding.exact
    }

    /// The layers keep the file's blocks, each layer made per chunk from them: `exact` makes 256 rows f32 at a time
    /// for its products (an f32 copy of each layer cost more memory and the time of writing it). Under `llama`
    /// rounding the head is held as stored too, for the integer kernels (with `exact` it stays f32: a tied head's
    /// stored copy would sit beside the f32 embeddings).
    static func use(_ activations: ActivationRounding, _ m: LoadedModel) throws {
        m.forward.w.activationRounding = activations
        m.forward.w.storedLinears = true
        if activations == .llama { try m.forward.w.holdStoredHead() }
    }

    public static func run(reference: String, candidates: [String], textFile: String, ctx: Int, chunks: Int?,
                           protocol p: Perplexity.EvalProtocol, kldBaseOut: String? = nil,
                           activations: ActivationRounding = .exact, progress: ProgressCallback? = nil) throws -> Report {
        let t0 = Date()
        let text = try String(contentsOfFile: textFile, encoding: .utf8)
        let ref = try LoadedModel.load(reference)
        let cands = try candidates.map { try LoadedModel.load($0) }
        for m in [ref] + cands { try use(activations, m) }
        for c in cands where c.forward.w.config.vocabSize != ref.forward.w.config.vocabSize {
            throw QKError(file: c.path, "vocabulary size \(c.forward.w.config.vocabSize) differs from the reference's \(ref.forward.w.config.vocabSize)")
        }
        let tokens = ref.tokenizer.encode(text, addSpecial: p == .llamaCpp, parseSpecial: false)
        let bos: Int32? = ref.tokenizer.addBos ? ref.tokenizer.vocabulary.bos.map(Int32.init) : nil
        var writer: KLDBase.Writer? = nil
        if let kldBaseOut {
            guard p == .llamaCpp else { throw QKError("--kld-base-out is llama-perplexity's file: use the llama.cpp protocol") }
            let ch = try Perplexity.chunking(tokens: tokens.count, ctx: ctx, chunks: chunks, protocol: p)
            writer = try KLDBase.Writer(path: kldBaseOut, ctx: ctx, vocab: ref.forward.w.config.vocabSize, chunks: ch.starts.count,
                                        tokens: tokens[0..<(ch.starts.count * ctx)])
        }
        let (r, cs) = try Perplexity.evaluate(reference: .model(ref.forward), candidates: zip(candidates, cands).map { ($0, $1.forward) },
                                              tokens: tokens, bos: bos, ctx: ctx, chunks: chunks, protocol: p, baseOut: writer,
                                              progress: { progress?("eval chunk", $0, $1) })
        try writer?.commit()
        let rows = zip(cs, cands).map { Row(name: $1.path, result: $0, fileBytes: $1.fileBytes, bitsPerWeight: $1.bitsPerWeight) }
        var report = Report(protocolName: p.rawValue, ctx: ctx, chunks: r.chunkPPL.count, tokens: tokens.count,
                            reference: Row(name: reference, result: r, fileBytes: ref.fileBytes,
                                           bitsPerWeight: ref.bitsPerWeight),
                            candidates: rows, blasCore: BLAS.coreName, seconds: Date().timeIntervalSince(t0))
        report.activations = activations
        return report
    }

    /// Candidates against a KL-divergence base file (llama-perplexity's `--save-all-logits`, or `eval --kld-base-out`):
    /// its tokens and chunking, its reference log-probabilities; no reference model or text. `chunks` limits the count.
    public static func run(kldBase path: String, candidates: [String], chunks: Int?,
                           activations: ActivationRounding = .exact, progress: ProgressCallback? = nil) throws -> Report {
        let t0 = Date()
        let base = try KLDBase(path: path)
        let cands = try candidates.map { try LoadedModel.load($0) }
        for m in cands { try use(activations, m) }
        guard let first = cands.first else { throw QKError("--kld-base needs at least one candidate model") }
        for c in cands where c.forward.w.config.vocabSize != base.vocab {
            throw QKError(file: c.path, "vocabulary size \(c.forward.w.config.vocabSize) differs from the base file's \(base.vocab)")
        }
        // as llama-perplexity: BOS in place of each chunk's first token when the evaluated model's vocabulary adds it
        let bos: Int32? = first.tokenizer.addBos ? first.tokenizer.vocabulary.bos.map(Int32.init) : nil
        let (r, cs) = try Perplexity.evaluate(reference: .base(base), candidates: zip(candidates, cands).map { ($0, $1.forward) },
                                              tokens: base.tokens, bos: bos, ctx: base.ctx, chunks: chunks, protocol: .llamaCpp,
                                              progress: { progress?("eval chunk", $0, $1) })
        let rows = zip(cs, cands).map { Row(name: $1.path, result: $0, fileBytes: $1.fileBytes, bitsPerWeight: $1.bitsPerWeight) }
        var report = Report(protocolName: Perplexity.EvalProtocol.llamaCpp.rawValue, ctx: base.ctx,
                            chunks: r.chunkPPL.count, tokens: base.tokens.count,
                            reference: Row(name: path, result: r, fileBytes: base.file.size, bitsPerWeight: 0),
                            candidates: rows, blasCore: BLAS.coreName, seconds: Date().timeIntervalSince(t0))
        report.activations = activations
        return report
    }

    public static func table(_ r: Report) -> String {
        var s = "protocol \(r.protocolName), ctx \(r.ctx), \(r.chunks) chunks, \(r.reference.result.count) scored tokens; "
            + "activations \(r.activations.rawValue); OpenBLAS core \(r.blasCore)\n"
        s += String(format: "reference %@: PPL %.4f ± %.5f  (%.2f bpw, %ld bytes)\n", r.reference.name, r.reference.result.ppl, r.reference.result.pplError,
                    r.reference.bitsPerWeight, r.reference.fileBytes)
        // the name column fits the longest name up to 64 characters; a longer one keeps its end, after "…"
        let width = min(64, r.candidates.map(\.name.count).reduce(44, max))
        func cell(_ name: String) -> String {
            let fitted = name.count <= width ? name : "…" + name.suffix(width - 1)
            return fitted.padding(toLength: width, withPad: " ", startingAt: 0)
        }
        let header = "   PPL ± err         Δppl     ratio    KLD mean ± err       median     p99       max      top-1 %   bpw    bytes\n"
        s += cell("candidate") + header
        for c in r.candidates {
            let e = c.result
            let d = e.ppl - r.reference.result.ppl
            s += cell(c.name)
            s += String(format: "  %8.4f ± %.4f  %+8.4f  %.5f  %.6f ± %.6f  %.6f  %.5f  %.4f  %6.2f  %5.2f  %ld\n", e.ppl, e.pplError, d, e.ppl / r.reference.result.ppl,
                        e.kldMean, e.kldError, e.kldQuantile(0.5), e.kldQuantile(0.99), e.kld.max() ?? 0, e.sameTop1Percent, c.bitsPerWeight, c.fileBytes)
        }
        guard !r.candidates.isEmpty else { return s }
        // where each Δppl comes from: the tokens grouped by the reference's probability of the correct one
        let groups = NLLShiftBin.bins(reference: r.reference.result.nll, candidate: r.reference.result.nll)
        s += "NLL change (candidate − reference, mean nats per token; in brackets the part of ln PPL ratio), "
        s += "tokens grouped by the reference's p(correct token):\n"
        func line(_ name: String, _ cells: [String]) -> String {
            let l = cell(name) + cells.map { "  " + $0.padding(toLength: 26, withPad: " ", startingAt: 0) }.joined()
            return String(l.reversed().drop { $0 == " " }.reversed()) + "\n"
        }
        // and the mean entropy of the next-token distributions: errors that flatten them lift the unlikely tokens
        let hRef = r.reference.result.meanEntropy
        s += line("candidate", groups.map { g in
            String(format: "[%.2g, %.2g%@: %ld tokens", g.lower, g.upper, g.upper == 1 ? "]" : ")", g.tokens)
        } + [String(format: "entropy (reference %.4f)", hRef)])
        for c in r.candidates {
            let shifts = NLLShiftBin.bins(reference: r.reference.result.nll, candidate: c.result.nll)
            s += line(c.name, shifts.map { String(format: "%+.4f (%+.4f)", $0.meanShift, $0.lnPPLRatioPart) }
                      + [String(format: "%.4f (%+.4f)", c.result.meanEntropy, c.result.meanEntropy - hRef)])
        }
        return s
    }

    public static func json(_ r: Report) -> JSONValue {
        func row(_ c: Row, ref: Bool) -> JSONValue {
            var kv: [(String, JSONValue)] = [("path", .string(c.name)), ("ppl", .double(c.result.ppl)), ("ppl_error", .double(c.result.pplError)),
                                            ("file_bytes", .int(Int64(c.fileBytes))), ("bits_per_weight", .double(c.bitsPerWeight)),
                                            ("chunk_ppl", .array(c.result.chunkPPL.map { .double($0) }))]
            if !c.result.entropy.isEmpty { kv.append(("mean_entropy", .double(c.result.meanEntropy))) }
            if !ref {
                kv += [("delta_ppl", .double(c.result.ppl - r.reference.result.ppl)), ("ppl_ratio", .double(c.result.ppl / r.reference.result.ppl)),
                       ("kld_mean", .double(c.result.kldMean)), ("kld_error", .double(c.result.kldError)),
                       ("kld_median", .double(c.result.kldQuantile(0.5))), ("kld_p99", .double(c.result.kldQuantile(0.99))),
                       ("kld_max", .double(c.result.kld.max() ?? 0)), ("same_top1_percent", .double(c.result.sameTop1Percent))]
                let groups = NLLShiftBin.bins(reference: r.reference.result.nll, candidate: c.result.nll).map { g -> JSONValue in
                    .object([("p_from", .double(g.lower)), ("p_to", .double(g.upper)), ("tokens", .int(Int64(g.tokens))),
                             ("mean_nll_shift", .double(g.meanShift)), ("ln_ppl_ratio_part", .double(g.lnPPLRatioPart))])
                }
                kv.append(("nll_shift_by_reference_p", .array(groups)))
            }
            return .object(kv)
        }
        return .object([("protocol", .string(r.protocolName)), ("ctx", .int(Int64(r.ctx))), ("chunks", .int(Int64(r.chunks))),
                        ("tokens", .int(Int64(r.tokens))), ("scored_tokens", .int(Int64(r.reference.result.count))),
                        ("activations", .string(r.activations.rawValue)), ("blas_core", .string(r.blasCore)),
                        ("seconds", .double(r.seconds)),
                        ("reference", row(r.reference, ref: true)), ("candidates", .array(r.candidates.map { row($0, ref: false) }))])
    }
}
