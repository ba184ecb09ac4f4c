import Checkpoints
import Foundation
import Llama
import TensorCore
import Tokenizers

/// The calibration data of GPTQ and AWQ: `samples` windows of `seqLen` tokens from the `calibration` files, seeded.
/// Without a mix the files are read as one text; with a mix (one weight per file, e.g. 7:3 language:code) each file
/// gives its share of the windows, sampled from its own tokens.
public struct CalibrationSet: Sendable {
    public var calibration: [String] = []
    /// JSON field holding the text in .jsonl files.
    public var textField = "text"
    /// Share of the windows per calibration file (e.g. [7, 3]); nil reads the files as one text.
    public var mix: [Double]? = nil
    public var samples = 128
    public var seqLen = 512
    public var seed: UInt64 = 0
    /// Start each window with BOS when the vocabulary adds it (see `windows`).
    public var bos = true
    public init() {}

    /// The windows, each `seqLen` tokens. When the vocabulary adds BOS (Llama 1/2, TinyLlama, Llama 3), a window is BOS
    /// and `seqLen` − 1 tokens of text, as every sequence the model sees at inference starts (and as llama-perplexity's
    /// and llama-imatrix's chunks do): the first positions' activations, often far larger than the rest, are then in
    /// the statistics calibration fits to.
    public func windows(_ tokenizer: Tokenizer) throws -> [[Int32]] {
        guard !calibration.isEmpty else { throw QKError("calibration needs text (--calibration FILE)") }
        let bos = self.bos && tokenizer.addBos ? tokenizer.vocabulary.bos.map { Int32($0) } : nil
        let length = bos == nil ? seqLen : seqLen - 1
        guard length > 0 else { throw QKError("--seq-len \(seqLen) leaves no room for text after BOS") }
        func withBOS(_ w: [[Int32]]) -> [[Int32]] { bos.map { b in w.map { [b] + $0 } } ?? w }
        guard let mix else {
            var text = ""
            for f in calibration { text += try Corpus.read(f, textField: textField) + "\n\n" }
            return withBOS(try Corpus.sample(tokenizer.encode(text, addSpecial: false, parseSpecial: false), count: samples, length: length, seed: seed))
        }
        guard mix.count == calibration.count else { throw QKError("--mix has \(mix.count) weights for \(calibration.count) --calibration files") }
        let counts = try Corpus.mixCounts(total: samples, weights: mix)
        var out: [[Int32]] = []
        for (k, f) in calibration.enumerated() where counts[k] > 0 {
            let toks = tokenizer.encode(try Corpus.read(f, textField: textField), addSpecial: false, parseSpecial: false)
            do {
                out += withBOS(try Corpus.sample(toks, count: counts[k], length: length, seed: seed &+ UInt64(k)))
            } catch {
                throw QKError(file: f, "\(error)")
            }
        }
        return out
    }
}
