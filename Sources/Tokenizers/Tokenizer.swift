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
    /// Special-token texts, longest first, with whether they are control/unknown (parsed only when asked).
    let specials: [(text: [UInt8], id: Int32, controlOrUnknown: Bool)]
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
        var sp: [(text: [UInt8], id: Int32, controlOrUnknown: Bool)] = []
        for (i, t) in v.tokens.enumerated() where [2, 3, 4].contains(v.types[i]) && !t.isEmpty {
            sp.append((Array(t.utf8), Int32(i), v.types[i] != 4))
        }
        sp.sort { $0.text.count > $1.text.count }
        specials = sp
    }

    public convenience init(gguf path: String) throws { try self.init(GGUFVocabulary(GGUFFile(path: path))) }

    enum Fragment { case text([UInt8]), token(Int32) }

    func partition(_ bytes: [UInt8], parseSpecial: Bool) -> [Fragment] {
        var frags: [Fragment] = [.text(bytes)]
        for sp in specials where parseSpecial || !sp.controlOrUnknown {
            var next: [Fragment] = []
            for f in frags {
                guard case let .text(t) = f, t.count >= sp.text.count else { next.append(f); continue }
                var start = 0, i = 0
                while i + sp.text.count <= t.count {
                    if t[i] == sp.text[0] && Array(t[i..<(i + sp.text.count)]) == sp.text {
                        if i > start { next.append(.text(Array(t[start..<i]))) }
                        next.append(.token(sp.id))
                        i += sp.text.count
                        start = i
                    } else { i += 1 }
                }
                if start < t.count { next.append(.text(Array(t[start...]))) }
            }
            frags = next
        }
        return frags
    }

    /// Token ids of `text`. `addSpecial` adds BOS/EOS as the vocabulary says; `parseSpecial` turns control-token
    /// text (e.g. `<|im_start|>`) into its id.
    public func encode(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = true) -> [Int32] {
        var out: [Int32] = []
        if addSpecial && addBos, let b = vocabulary.bos { out.append(Int32(b)) }
        var prevSpecial = true
        for f in partition(Array(text.utf8), parseSpecial: parseSpecial) {
            switch f {
            case let .token(id):
                out.append(id)
                prevSpecial = true
            case let .text(t):
                if t.isEmpty { continue }
                if let bpe {
                    bpe.encode(String(decoding: t, as: UTF8.self), into: &out)
                } else if let spm {
                    var s: [UInt8] = addSpacePrefix && prevSpecial ? [0x20] : []
                    s += t
                    var esc: [UInt8] = []
                    esc.reserveCapacity(s.count + 8)
                    for b in s { if b == 0x20 { esc += [0xE2, 0x96, 0x81] } else { esc.append(b) } }
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
                var p = Array(piece.replacingOccurrences(of: "\u{2581}", with: " ").utf8)
                if k == 0 && addSpacePrefix && p.first == 0x20 { p.removeFirst() }
                bytes += p
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
