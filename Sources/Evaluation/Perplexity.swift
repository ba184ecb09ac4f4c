import Foundation
import Llama
import TensorCore

/// Scores of one candidate against the reference, llama.cpp's perplexity protocol.
public struct EvalResult {
    public var name: String
    public var nll: [Double] = []          // per scored token
    public var kld: [Double] = []          // per scored token, KL(P_ref ‖ P_cand); empty for the reference
    /// Per scored token, the entropy of the model's next-token distribution (nats); filled when there are candidates.
    public var entropy: [Double] = []
    public var sameTop1 = 0
    public var chunkPPL: [Double] = []

    public var count: Int { nll.count }
    public var ppl: Double { exp(nll.reduce(0, +) / Double(max(1, nll.count))) }
    /// llama.cpp: sqrt((E[nll²] − E[nll]²)/(n−1)) · PPL.
    public var pplError: Double {
        let n = Double(nll.count)
        guard n > 1 else { return 0 }
        let m = nll.reduce(0, +) / n, m2 = nll.reduce(0) { $0 + $1 * $1 } / n
        return (max(0, m2 - m * m) / (n - 1)).squareRoot() * ppl
    }
    public var kldMean: Double { kld.isEmpty ? 0 : kld.reduce(0, +) / Double(kld.count) }
    public var kldError: Double {
        let n = Double(kld.count)
        guard n > 1 else { return 0 }
        let m = kldMean, m2 = kld.reduce(0) { $0 + $1 * $1 } / n
        return (max(0, m2 - m * m) / (n - 1)).squareRoot()
    }
    public func kldQuantile(_ q: Double) -> Double {
        guard !kld.isEmpty else { return 0 }
        let s = kld.sorted()
        return s[min(s.count - 1, Int((q * Double(s.count - 1)).rounded()))]
    }
    public var sameTop1Percent: Double { kld.isEmpty ? 100 : 100 * Double(sameTop1) / Double(kld.count) }
    public var meanEntropy: Double { entropy.isEmpty ? 0 : entropy.reduce(0, +) / Double(entropy.count) }
}

public enum Perplexity {
    /// llama.cpp's protocol: non-overlapping chunks of `ctx` tokens (the text tokenized once, BOS first in each
    /// chunk when the vocabulary adds BOS), the second half of each chunk scored.
    /// `paper`: windows of `ctx` tokens, every prediction scored, no BOS per window.
    public enum EvalProtocol: String, CaseIterable, Sendable { case llamaCpp = "llama.cpp", paper }

    public struct Chunking {
        public let starts: [Int]
        public let ctx: Int
        public let first: Int   // first logit row scored
    }

    public static func chunking(tokens: Int, ctx: Int, chunks: Int?, protocol p: EvalProtocol) throws -> Chunking {
        guard ctx >= 8 else { throw QKError("--ctx \(ctx) is too small") }
        let n = tokens / ctx
        guard n >= (p == .llamaCpp ? 2 : 1) else {
            throw QKError("the text has \(tokens) tokens; at least \(p == .llamaCpp ? 2 * ctx : ctx) are needed for --ctx \(ctx)")
        }
        let count = min(n, chunks ?? n)
        return Chunking(starts: (0..<count).map { $0 * ctx }, ctx: ctx, first: p == .llamaCpp ? ctx / 2 : 0)
    }

    /// log Σᵢ exp(row[i]) in double, as llama-perplexity computes it: the exponentials of row − max in f32 (into
    /// `e` [n]), summed in double.
    static func logSumExp(_ row: UnsafePointer<Float>, _ n: Int, scratch e: UnsafeMutablePointer<Float>) -> Double {
        let m = Reductions.max(row, n)
        for i in 0..<n { e[i] = FastExp.exp(row[i] - m) }
        return log(Reductions.sumInDouble(e, n)) + Double(m)
    }

    /// log-softmax of one row into `out` [n], in double (`e` [n] is scratch).
    static func logSoftmax(_ row: UnsafePointer<Float>, _ n: Int, into out: UnsafeMutablePointer<Double>, scratch e: UnsafeMutablePointer<Float>) {
        let ls = logSumExp(row, n, scratch: e)
        for i in 0..<n { out[i] = Double(row[i]) - ls }
    }

    /// The reference of an evaluation: a model run on every chunk, or a KL-divergence base file's log-probabilities.
    public enum Reference {
        case model(LlamaForward)
        case base(KLDBase)
    }

    /// Runs the reference and every candidate on the same chunks; `baseOut` receives the reference's scored logits.
    public static func evaluate(reference: Reference, candidates: [(String, LlamaForward)], tokens: [Int32], bos: Int32?,
                                ctx: Int, chunks: Int?, protocol p: EvalProtocol, baseOut: KLDBase.Writer? = nil,
                                progress: ((Int, Int) -> Void)? = nil) throws -> (EvalResult, [EvalResult]) {
        let ch = try chunking(tokens: tokens.count, ctx: ctx, chunks: chunks, protocol: p)
        var model: LlamaForward? = nil, base: KLDBase? = nil
        switch reference {
        case let .model(m): model = m
        case let .base(b): base = b
        }
        let V = model?.w.config.vocabSize ?? base?.vocab ?? 0
        var ref = EvalResult(name: "reference")
        var cands = candidates.map { EvalResult(name: $0.0) }
        let rows = ch.first..<(ctx - 1)
        // one KV cache and one logits buffer per model, reused by every chunk
        let refCache = model.map { LlamaForward.KVCache(config: $0.w.config, capacity: ctx) }
        let candCaches = candidates.map { LlamaForward.KVCache(config: $0.1.w.config, capacity: ctx) }
        var rl: [Float] = [], cl = [[Float]](repeating: [], count: candidates.count)  // [rows × V] each
        // each model runs layer by layer over a batch of chunks (a layer made f32 once per batch, not per chunk),
        // then the chunks are scored one by one from their final residual streams: the same logits as chunk by chunk
        let hidden = ((model.map { [$0] } ?? []) + candidates.map(\.1)).map(\.w.config.hiddenSize).max() ?? 1
        let perPass = LlamaForward.sequencesPerPass(tokens: ctx, hidden: hidden)
        for b0 in stride(from: 0, to: ch.starts.count, by: perPass) {
            let batch = b0..<min(ch.starts.count, b0 + perPass)
            progress?(b0, ch.starts.count)
            let chunks = batch.map { ci -> [Int32] in
                var chunk = Array(tokens[ch.starts[ci]..<(ch.starts[ci] + ctx)])
                if p == .llamaCpp, let bos { chunk[0] = bos }
                return chunk
            }
            let refX = try model.map { try $0.finalHidden(chunks, cache: refCache!) }
            let candX = try candidates.indices.map { try candidates[$0].1.finalHidden(chunks, cache: candCaches[$0]) }
            for (j, chunk) in chunks.enumerated() {
                progress?(batch.lowerBound + j, ch.starts.count)
                if let model, let refX {
                    model.head(refX[j], T: ctx, logitRows: rows, into: &rl)
                } else if let base {
                    base.logProbs(chunk: batch.lowerBound + j, into: &rl)
                }
                try baseOut?.append(logits: rl)
                for k in candidates.indices {
                    candidates[k].1.head(candX[k][j], T: ctx, logitRows: rows, into: &cl[k])
                }
                let nr = rows.count, nc = candidates.count
                let (refNLL, cNLL, cKLD, cSame, refH, cH) = score(chunk, rows: rows, reference: rl, candidates: cl, vocab: V,
                                                                  fromBase: base != nil)
                let chunkNLL = refNLL
                var chunkC = [[Double]](repeating: [], count: nc)
                for k in 0..<nc {
                    chunkC[k] = (0..<nr).map { cNLL[$0 * nc + k] }
                    cands[k].kld += (0..<nr).map { cKLD[$0 * nc + k] }
                    cands[k].sameTop1 += (0..<nr).filter { cSame[$0 * nc + k] }.count
                    cands[k].entropy += (0..<nr).map { cH[$0 * nc + k] }
                }
                if nc > 0 { ref.entropy += refH }
                ref.nll += chunkNLL
                ref.chunkPPL.append(exp(chunkNLL.reduce(0, +) / Double(chunkNLL.count)))
                for k in cands.indices {
                    cands[k].nll += chunkC[k]
                    cands[k].chunkPPL.append(exp(chunkC[k].reduce(0, +) / Double(chunkC[k].count)))
                }
            }
        }
        progress?(ch.starts.count, ch.starts.count)
        return (ref, cands)
    }

    /// Scores one chunk's `rows` (each predicting the next token of `chunk`) from logits [rows × V] of the reference
    /// and each candidate: the reference's NLL per row, and per row and candidate (index r·nc + k) its NLL, its KL
    /// divergence from the reference and whether their top tokens agree; with candidates, the entropies of the
    /// reference's rows and of each candidate's (r·nc + k).
    /// `fromBase`: `rl` holds a KL-divergence base file's log-probabilities, used as stored (not renormalized), and, as
    /// llama-perplexity reads such a file, tokens at or below log-probability −16 (stored as its floor) are left out of
    /// the KL divergence.
    static func score(_ chunk: [Int32], rows: Range<Int>, reference rl: [Float], candidates cl: [[Float]], vocab V: Int, fromBase: Bool = false)
        -> (refNLL: [Double], nll: [Double], kld: [Double], sameTop: [Bool], refEntropy: [Double], entropy: [Double]) {
        let nr = rows.count, nc = cl.count
        // rows are independent: score them in parallel into per-row slots (order kept)
        var refNLL = [Double](repeating: 0, count: nr)
        var cNLL = [Double](repeating: 0, count: nr * nc), cKLD = [Double](repeating: 0, count: nr * nc)
        var cSame = [Bool](repeating: false, count: nr * nc)
        var refH = [Double](repeating: 0, count: nc == 0 ? 0 : nr), cH = [Double](repeating: 0, count: nr * nc)
        refNLL.withUnsafeMutableBufferPointer { rn in cNLL.withUnsafeMutableBufferPointer { cn in
        cKLD.withUnsafeMutableBufferPointer { ck in cSame.withUnsafeMutableBufferPointer { cs in
        refH.withUnsafeMutableBufferPointer { rh in cH.withUnsafeMutableBufferPointer { ch in
            nonisolated(unsafe) let (rnp, cnp, ckp, csp) = (rn.baseAddress!, cn.baseAddress!, ck.baseAddress!, cs.baseAddress!)
            nonisolated(unsafe) let (rhp, chp) = (rh.baseAddress, ch.baseAddress)
            Parallel.forRanges(nr) { range in
                // [V] each, when there are candidates: log-probabilities of the reference and of a candidate, and
                // the reference's probabilities (shared by every candidate's KL divergence)
                var lpRef = [Double](repeating: 0, count: nc == 0 ? 0 : V), lpC = lpRef, pRef = lpRef
                var e = [Float](repeating: 0, count: V)                                   // exponentials [V]
                for r in range {
                    let target = Int(chunk[rows.lowerBound + r + 1])
                    if fromBase {
                        rnp[r] = -Double(rl[r * V + target])
                        if nc == 0 { continue }
                        for i in 0..<V { lpRef[i] = Double(rl[r * V + i]) }
                    } else if nc == 0 {  // the reference alone: only its target's log-probability is needed
                        rnp[r] = rl.withUnsafeBufferPointer { lp in logSumExp(lp.baseAddress! + r * V, V, scratch: &e) - Double(lp[r * V + target]) }
                        continue
                    } else {
                        rl.withUnsafeBufferPointer { logSoftmax($0.baseAddress! + r * V, V, into: &lpRef, scratch: &e) }
                        rnp[r] = -lpRef[target]
                    }
                    var refTop = 0
                    for i in 1..<V where lpRef[i] > lpRef[refTop] { refTop = i }
                    var hRef: Double = 0
                    for i in 0..<V {
                        pRef[i] = fromBase && lpRef[i] <= -16 ? 0 : exp(lpRef[i])
                        hRef -= pRef[i] * lpRef[i]
                    }
                    rhp![r] = hRef
                    for (k, l) in cl.enumerated() {
                        // e: the candidate row's exponentials (of logit − max), whose sum normalizes them
                        l.withUnsafeBufferPointer { logSoftmax($0.baseAddress! + r * V, V, into: &lpC, scratch: &e) }
                        var kl: Double = 0, top = 0, eLp: Double = 0, eSum: Double = 0
                        for i in 0..<V {
                            kl += pRef[i] * (lpRef[i] - lpC[i])
                            eLp += Double(e[i]) * lpC[i]
                            eSum += Double(e[i])
                            if lpC[i] > lpC[top] { top = i }
                        }
                        cnp[r * nc + k] = -lpC[target]
                        ckp[r * nc + k] = max(0, kl)
                        csp[r * nc + k] = top == refTop
                        chp![r * nc + k] = -eLp / eSum
                    }
                }
            }
        } } } } } }
        return (refNLL, cNLL, cKLD, cSame, refH, cH)
    }
}
