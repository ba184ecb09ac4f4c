import Foundation
import ModelFormats
import TensorCore

/// A tokenizer built from a GGUF vocabulary (or an HF directory, through the same GGUF keys), with llama.cpp's
/// rules: special tokens split out of the text first (control and unknown tokens only when `parseSpecial`),
/// BOS/EOS by `add_bos_token`/`add_eos_token`, SentencePiece's space prefix after specials.
public final class Tokenizer {
    public let vocabulary: GGUFVocabulary
    let bpe: ByteLevelBPE?
    let spm: SentencePieceBPE?
    let specials: SpecialTokenSplitter
    public let addBos: Bool
    public let addEos: Bool
    let addSpacePrefix: Bool

    public init(_ v: GGUFVocabulary) throws {
        vocabulary = v
        switch v.model {
        case "gpt2":
            guard let merges = v.merges else { throw QKError("byte-level BPE vocabulary without merges") }
            let pre = try v.preTokenizer()
            bpe = ByteLevelBPE(tokens: v.tokens, merges: merges, pre: pre)
            spm = nil
            addBos = v.addsBos
            addSpacePrefix = false
        case "llama":
            spm = SentencePieceBPE(tokens: v.tokens, scores: v.scores ?? [Float](repeating: 0, count: v.tokens.count),
                                   types: v.types, unk: Int32(v.unk ?? 0))
            bpe = nil
            addBos = v.addsBos
            addSpacePrefix = v.addSpacePrefix ?? true
        default:
            throw QKError("tokenizer model \(v.model) is not supported (gpt2 and llama are)")
        }
        addEos = v.addEos ?? false
        // control (3) and unknown (2) tokens are split out only when asked; user-defined ones (4) always
        var sp: [SpecialTokenSplitter.Special] = []
        for (i, t) in v.tokens.enumerated() where [2, 3, 4].contains(v.types[i]) && !t.isEmpty {
            sp.append(.init(text: Array(t.utf8), id: Int32(i), controlOrUnknown: v.types[i] != 4))
        }
        specials = SpecialTokenSplitter(sp)
    }

    static let spaceMark: [UInt8] = [0xE2, 0x96, 0x81]
    /// The word / segment caches of both BPE kinds: at most this many entries, each at most this many bytes (words
    /// repeat; a long run of text seldom does), so a cache stays under about 10 MB.
    static let cacheEntries = 100_000
    static let cachedLength = 64

    public convenience init(gguf path: String) throws { try self.init(GGUFVocabulary(GGUFFile(path: path))) }

    /// Token ids of `text`. `addSpecial` adds BOS/EOS as the vocabulary says; `parseSpecial` turns control-token
    /// text (e.g. `<|im_start|>`) into its id.
    public func encode(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = true) -> [Int32] {
        var out: [Int32] = []
        if addSpecial && addBos, let b = vocabulary.bos { out.append(Int32(b)) }
        var prevSpecial = true
        let bytes = Array(text.utf8)
        for f in specials.split(bytes, parseSpecial: parseSpecial) {
            switch f {
            case let .token(id):
                out.append(id)
                prevSpecial = true
            case let .text(r):
                if r.isEmpty { continue }
                if let bpe {
                    bpe.encode(bytes[r], into: &out)
                } else if let spm {
                    // spaces become ▁ (E2 96 81), with one in front after a special (or at the start) if asked
                    var esc: [UInt8] = []
                    esc.reserveCapacity(r.count + r.count / 2 + 3)
                    if addSpacePrefix && prevSpecial { esc.append(contentsOf: Self.spaceMark) }
                    for b in bytes[r] {
                        if b == 0x20 { esc.append(contentsOf: Self.spaceMark) } else { esc.append(b) }
                    }
                    spm.encode(esc, into: &out)
                }
                prevSpecial = false
            }
        }
        if addSpecial && addEos, let e = vocabulary.eos { out.append(Int32(e)) }
        return out
    }

    /// Text of token ids (special tokens rendered as their text unless `skipSpecial`).
    public func decode(_ ids: [Int32], skipSpecial: Bool = false) -> String {
        var bytes: [UInt8] = []
        for (k, id) in ids.enumerated() {
            guard id >= 0, Int(id) < vocabulary.tokens.count else { continue }
            let piece = vocabulary.tokens[Int(id)]
            let type = vocabulary.types[Int(id)]
            if type == 3 || type == 2 { if !skipSpecial { bytes += Array(piece.utf8) }; continue }
            if bpe != nil {
                bytes += type == 4 ? Array(piece.utf8) : ByteLevel.decode(piece)
            } else {
                if type == 6, piece.count == 6, let b = UInt8(piece.dropFirst(3).prefix(2), radix: 16) { bytes.append(b); continue }
                // ▁ (E2 96 81) back to a space; the first token's leading space dropped
                let u = Array(piece.utf8)
                var p: [UInt8] = []
                p.reserveCapacity(u.count)
                var i = 0
                while i < u.count {
                    if i + 2 < u.count && u[i] == 0xE2 && u[i + 1] == 0x96 && u[i + 2] == 0x81 {
                        p.append(0x20)
                        i += 3
                    } else {
                        p.append(u[i])
                        i += 1
                    }
                }
                bytes += k == 0 && addSpacePrefix && p.first == 0x20 ? p.dropFirst() : p[...]
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
