import Foundation
import TensorCore

/// llama-perplexity's KL-divergence base file (`--save-all-logits` writes it, `--kl-divergence-base` reads it): the
/// reference's log-probabilities computed once, so candidates are compared without running the reference again.
///
/// Layout (little-endian): "_logits_", n_ctx (i32), n_vocab (i32), n_chunk (i32), the chunks' tokens as tokenized
/// (n_chunk × n_ctx i32; BOS is put in place of each chunk's first token only when it runs), then per chunk, for each
/// scored row (rows n_ctx/2 … n_ctx − 2, each predicting the next token) nv = 2·⌈n_vocab/2⌉ + 4 u16: scale (f32) and
/// the smallest log-probability kept (f32), then log p(i) = scale · q(i) + min, with logits more than 16 below the
/// maximum stored as q = 0.
public final class KLDBase {
    public static let magic = Array("_logits_".utf8)
    public let ctx: Int, vocab: Int, chunks: Int
    public let tokens: [Int32]
    let file: MappedFile
    let recordsStart: Int

    /// Values per row record (u16 units).
    static func rowValues(_ vocab: Int) -> Int { 2 * ((vocab + 1) / 2) + 4 }
    /// Scored rows per chunk.
    static func rows(_ ctx: Int) -> Int { ctx - 1 - ctx / 2 }

    public init(path: String) throws {
        file = try MappedFile(path: path)
        let b = file.bytes
        func i32(_ o: Int) -> Int { Int(Int32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: Int32.self))) }
        guard b.count >= 20, Array(b[0..<8]) == Self.magic else {
            throw QKError(file: path, "is not a KL-divergence base file (llama-perplexity --save-all-logits): no _logits_ header")
        }
        ctx = i32(8)
        vocab = i32(12)
        chunks = i32(16)
        guard ctx >= 8, ctx <= 1 << 20, vocab > 0, vocab <= 1 << 22, chunks > 0, chunks <= 1 << 20 else {
            throw QKError(file: path, "header has n_ctx \(ctx), n_vocab \(vocab), n_chunk \(chunks): not a valid KL-divergence base")
        }
        let (n, v, c) = (ctx, vocab, chunks)
        let start = 20 + c * n * 4
        recordsStart = start
        let want = start + c * Self.rows(n) * Self.rowValues(v) * 2
        guard b.count == want else {
            throw QKError(file: path, "is \(b.count) bytes; n_ctx \(n), n_vocab \(v), n_chunk \(c) need \(want)")
        }
        var t = [Int32](repeating: 0, count: c * n)
        t.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: b[20..<start])) }
        t = t.map { Int32(littleEndian: $0) }
        if let bad = t.firstIndex(where: { $0 < 0 || Int($0) >= v }) {
            throw QKError(file: path, "token \(t[bad]) at position \(bad) is outside the vocabulary of \(v)")
        }
        tokens = t
    }

    /// Chunk `c`'s log-probabilities, [rows × vocab], as llama-perplexity reads them.
    public func logProbs(chunk c: Int, into out: inout [Float]) {
        let nv = Self.rowValues(vocab), nr = Self.rows(ctx)
        out = [Float](repeating: 0, count: nr * vocab)
        let b = file.bytes
        out.withUnsafeMutableBufferPointer { o in
            for r in 0..<nr {
                let at = recordsStart + ((c * nr + r) * nv) * 2
                let scale = Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
                let minLog = Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self)))
                for i in 0..<vocab {
                    let q = UInt16(littleEndian: b.loadUnaligned(fromByteOffset: at + 8 + 2 * i, as: UInt16.self))
                    o[r * vocab + i] = scale * Float(q) + minLog
                }
            }
        }
    }

    /// Writes a base file chunk by chunk (the header and tokens first), under OUTPUT.partial until `commit`.
    public final class Writer {
        let out: OutputFile
        let vocab: Int, ctx: Int

        public init(path: String, ctx: Int, vocab: Int, chunks: Int, tokens: ArraySlice<Int32>) throws {
            guard tokens.count == chunks * ctx else { throw QKError("KLD base: \(tokens.count) tokens for \(chunks) chunks of \(ctx)") }
            out = try OutputFile(path: path)
            self.vocab = vocab
            self.ctx = ctx
            try out.write(KLDBase.magic)
            for v in [ctx, vocab, chunks] { try out.write(withUnsafeBytes(of: Int32(v).littleEndian) { Array($0) }) }
            try Array(tokens).withUnsafeBytes { try out.write($0) }
        }

        /// One chunk's scored rows: logits [rows × vocab] (rows n_ctx/2 … n_ctx − 2).
        public func append(logits: [Float]) throws {
            let nr = KLDBase.rows(ctx), nv = KLDBase.rowValues(vocab)
            guard logits.count == nr * vocab else { throw QKError("KLD base: \(logits.count) logits for \(nr) rows of \(vocab)") }
            var rec = [UInt16](repeating: 0, count: nv)
            for r in 0..<nr {
                logits.withUnsafeBufferPointer { Self.encode($0.baseAddress! + r * vocab, vocab, into: &rec) }
                try rec.withUnsafeBytes { try out.write($0) }
            }
        }

        public func commit() throws { try out.commit() }

        /// One row as llama-perplexity stores it: logits below max − 16 clipped, log-probabilities on a u16 grid.
        static func encode(_ logits: UnsafePointer<Float>, _ n: Int, into rec: inout [UInt16]) {
            var maxLogit = logits[0], minLogit = logits[0]
            for i in 1..<n {
                maxLogit = max(maxLogit, logits[i])
                minLogit = min(minLogit, logits[i])
            }
            minLogit = max(minLogit, maxLogit - 16)
            var sumExp = 0.0
            for i in 0..<n { sumExp += Double(expf(logits[i] - maxLogit)) }
            let logSumExp = Float(log(sumExp))
            let minLogProb = minLogit - maxLogit - logSumExp
            let scale = (maxLogit - minLogit) / 65535
            for i in rec.indices { rec[i] = 0 }
            withUnsafeBytes(of: scale.bitPattern.littleEndian) { s in rec.withUnsafeMutableBytes { $0.copyMemory(from: s) } }
            withUnsafeBytes(of: minLogProb.bitPattern.littleEndian) { s in
                rec.withUnsafeMutableBytes { UnsafeMutableRawBufferPointer(rebasing: $0[4..<8]).copyMemory(from: s) }
            }
            guard scale != 0 else { return }
            let inv = 1 / scale
            for i in 0..<n where logits[i] > minLogit {
                rec[4 + i] = UInt16(clamping: Int((inv * (logits[i] - minLogit)).rounded(.toNearestOrEven)))
            }
        }
    }
}
