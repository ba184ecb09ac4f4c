import Calibration
import Foundation
import TensorCore
import Tokenizers

/// The calibration windows of GPTQ and AWQ: `samples` windows of `seqLen` tokens, seeded. Without a mix the files
/// are read as one text; with a mix (one weight per file, e.g. 7:3 language:code) each file gives its share of the
/// windows, sampled from its own tokens.
public enum CalibrationWindows {
    public static func make(tokenizer: Tokenizer, files: [String], textField: String, mix: [Double]?, samples: Int, seqLen: Int, seed: UInt64) throws -> [[Int32]] {
        guard !files.isEmpty else { throw QKError("calibration needs text (--calibration FILE)") }
        guard let mix else {
            var text = ""
            for f in files { text += try Corpus.read(f, textField: textField) + "\n\n" }
            return try Corpus.sample(tokenizer.encode(text, addSpecial: false, parseSpecial: false), count: samples, length: seqLen, seed: seed)
        }
        guard mix.count == files.count else { throw QKError("--mix has \(mix.count) weights for \(files.count) --calibration files") }
        let counts = try Corpus.mixCounts(total: samples, weights: mix)
        var out: [[Int32]] = []
        for (k, f) in files.enumerated() where counts[k] > 0 {
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
