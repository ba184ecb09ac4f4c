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
    public init() {}

    public func windows(_ tokenizer: Tokenizer) throws -> [[Int32]] {
        guard !calibration.isEmpty else { throw QKError("calibration needs text (--calibration FILE)") }
        guard let mix else {
            var text = ""
            for f in calibration { text += try Corpus.read(f, textField: textField) + "\n\n" }
            return try Corpus.sample(tokenizer.encode(text, addSpecial: false, parseSpecial: false), count: samples, length: seqLen, seed: seed)
        }
        guard mix.count == calibration.count else { throw QKError("--mix has \(mix.count) weights for \(calibration.count) --calibration files") }
        let counts = try Corpus.mixCounts(total: samples, weights: mix)
        var out: [[Int32]] = []
        for (k, f) in calibration.enumerated() where counts[k] > 0 {
            let toks = tokenizer.encode(try Corpus.read(f, textField: textField), addSpecial: false, parseSpecial: false)
            do {
                out += try Corpus.sample(toks, count: counts[k], length: seqLen, seed: seed &+ UInt64(k))
            } catch {
                throw QKError(file: f, "\(error)")
            }
        }
        return out
    }
}
