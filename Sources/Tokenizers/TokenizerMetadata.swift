import Foundation
import ModelFormats
import TensorCore

/// GGUF token types.
public enum GGUFTokenType: Int32, Sendable { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }

/// Builds the `tokenizer.*` GGUF metadata of an HF checkpoint directory the way llama.cpp's converter does
/// for Llama models: SentencePiece (`tokenizer.model` → model "llama") or byte-level BPE
/// (`tokenizer.json` → model "gpt2" with merges and a pre-tokenizer name).
public enum TokenizerMetadata {
    public static func fromHF(dir: String, vocabSize: Int, preOverride: String? = nil) throws -> [(String, GGUFValue)] {
        let d = URL(fileURLWithPath: dir)
        var kv: [(String, GGUFValue)] = []
        let tcPath = d.appendingPathComponent("tokenizer_config.json").path
        let tc = FileManager.default.fileExists(atPath: tcPath) ? try JSONParser.parse(file: tcPath) : nil
        if let b = tc?["add_prefix_space"]?.bool { kv.append(("tokenizer.ggml.add_space_prefix", .bool(b))) }

        let spm = d.appendingPathComponent("tokenizer.model").path
        let tj = d.appendingPathComponent("tokenizer.json").path
        if FileManager.default.fileExists(atPath: spm) {
            kv += try sentencePiece(dir: dir, modelPath: spm, vocabSize: vocabSize, tokenizerConfig: tc)
        } else if FileManager.default.fileExists(atPath: tj) {
            let j = try JSONParser.parse(file: tj)
            if let spm = try llamaHF(dir: dir, tokenizerJSON: j, path: tj, tokenizerConfig: tc) {
                kv += spm
            } else {
                kv += try byteLevelBPE(dir: dir, tokenizerJSON: tj, vocabSize: vocabSize, tokenizerConfig: tc, preOverride: preOverride)
            }
        } else {
            throw QKError(file: dir, "no tokenizer.model or tokenizer.json: cannot write the vocabulary")
        }
        // llama.cpp's LlamaModel.set_vocab: "granite small models" rule, which also catches SmolLM2.
        if vocabSize == 49152 {
            if let k = kv.firstIndex(where: { $0.0 == "tokenizer.ggml.add_bos_token" }) { kv[k].1 = .bool(false) }
            else { kv.append(("tokenizer.ggml.add_bos_token", .bool(false))) }
        }
        return kv
    }

    static func looksSpecial(_ t: String) -> Bool {
        if ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].contains(t) { return true }
        if t.hasPrefix("<|") && t.hasSuffix("|>") { return true }
        if t.hasPrefix("<｜") && t.hasSuffix("｜>") { return true }
        return t.hasPrefix("<unused") && t.hasSuffix(">")
    }

    static func sentencePiece(dir: String, modelPath: String, vocabSize: Int, tokenizerConfig tc: JSONValue?) throws -> [(String, GGUFValue)] {
        let sp = try SentencePieceModel.load(path: modelPath)
        var tokens = (0..<vocabSize).map { "[PAD\($0)]" }
        var scores = [Float](repeating: -10000, count: vocabSize)
        var types = [GGUFTokenType](repeating: .unused, count: vocabSize)
        for (id, p) in sp.pieces.enumerated() where id < vocabSize {
            tokens[id] = p.piece
            scores[id] = p.score
            switch p.type {
            case .unknown: types[id] = .unknown
            case .control: types[id] = .control
            case .unused: types[id] = .unused
            case .byte: types[id] = .byte
            case .normal, .userDefined: types[id] = .normal
            }
        }
        let addedPath = URL(fileURLWithPath: dir).appendingPathComponent("added_tokens.json").path
        if FileManager.default.fileExists(atPath: addedPath), let o = try JSONParser.parse(file: addedPath).object {
            for (text, v) in o {
                guard let id = v.int, id >= 0, id < vocabSize else { continue }
                tokens[id] = text; scores[id] = -1000; types[id] = .userDefined
            }
        }
        for (key, data) in tc?["added_tokens_decoder"]?.object ?? [] {
            guard let id = Int(key), id >= 0, id < vocabSize, var text = data["content"]?.string else { continue }
            if data["special"]?.bool == true || looksSpecial(text) {
                types[id] = .control
            } else {
                text = text.replacingOccurrences(of: "\u{2581}", with: " ")
                types[id] = .userDefined
            }
            scores[id] = -1000
            tokens[id] = text
        }
        var kv: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string("llama")),
            ("tokenizer.ggml.pre", .string("default")),
            ("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) })),
            ("tokenizer.ggml.scores", .array(.float32, scores.map { .float32($0) })),
            ("tokenizer.ggml.token_type", .array(.int32, types.map { .int32($0.rawValue) })),
        ]
        kv += try SpecialVocab(dir: dir, loadMerges: false, nVocab: vocabSize).metadata()
        return kv
    }

    /// A SentencePiece-style BPE tokenizer.json (byte fallback, Sequence decoder) without tokenizer.model: the
    /// converter's LlamaHfVocab path — model "llama", every score −1000, `<0xNN>` pieces BYTE, special tokens CONTROL,
    /// added tokens past the base vocabulary appended. Returns nil when the file is not of that kind.
    static func llamaHF(dir: String, tokenizerJSON j: JSONValue, path: String, tokenizerConfig tc: JSONValue?) throws -> [(String, GGUFValue)]? {
        guard let model = j["model"], model["type"]?.string == "BPE", model["byte_fallback"]?.bool == true,
              j["decoder"]?["type"]?.string == "Sequence", let vocab = model["vocab"]?.object else { return nil }
        var reverse: [Int: String] = [:]
        for (tok, v) in vocab { if let id = v.int { reverse[id] = tok } }
        let base = vocab.count
        var added: [(Int, String, Bool)] = []
        for a in j["added_tokens"]?.array ?? [] {
            guard let id = a["id"]?.int, let c = a["content"]?.string else { continue }
            added.append((id, c, a["special"]?.bool ?? false))
        }
        // HF's all_special_ids: the tokens tokenizer_config names (bos, eos, unk, pad, ...) and additional_special_tokens
        var specialTexts = Set<String>()
        for k in ["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"] {
            if let s = tc?[k]?.string { specialTexts.insert(s) } else if let s = tc?[k]?["content"]?.string { specialTexts.insert(s) }
        }
        for a in tc?["additional_special_tokens"]?.array ?? [] { if let s = a.string ?? a["content"]?.string { specialTexts.insert(s) } }
        let byteRE = try NSRegularExpression(pattern: "^<0x[0-9A-Fa-f]{2}>$")
        var tokens: [String] = [], types: [GGUFTokenType] = []
        for id in 0..<base {  // (added tokens inside the base vocabulary stay where they are)
            guard let t = reverse[id] else { throw QKError(file: path, "vocabulary has no token with id \(id)") }
            tokens.append(t)
            if byteRE.firstMatch(in: t, range: NSRange(t.startIndex..., in: t)) != nil { types.append(.byte) }
            else { types.append(specialTexts.contains(t) ? .control : .normal) }
        }
        for (id, text, _) in added.sorted(by: { $0.0 < $1.0 }) where id >= base {
            tokens.append(text)
            types.append(specialTexts.contains(text) ? .control : .userDefined)
        }
        var kv: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string("llama")),
            ("tokenizer.ggml.pre", .string("default")),
            ("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) })),
            ("tokenizer.ggml.scores", .array(.float32, tokens.map { _ in .float32(-1000) })),
            ("tokenizer.ggml.token_type", .array(.int32, types.map { .int32($0.rawValue) })),
        ]
        kv += try SpecialVocab(dir: dir, loadMerges: false, nVocab: tokens.count).metadata()
        return kv
    }

    static func byteLevelBPE(dir: String, tokenizerJSON path: String, vocabSize: Int, tokenizerConfig tc: JSONValue?, preOverride: String?) throws -> [(String, GGUFValue)] {
        let tj = try JSONParser.parse(file: path)
        guard let model = tj["model"], model["type"]?.string == "BPE", let vocab = model["vocab"]?.object else {
            throw QKError(file: path, "tokenizer.json has no BPE model with a vocab")
        }
        var reverse: [Int: String] = [:]
        for (tok, v) in vocab {
            guard let id = v.int, id >= 0 else { throw QKError(file: path, "vocab entry \(tok) has no valid id") }
            reverse[id] = tok
        }
        var added: [String: (special: Bool, id: Int)] = [:]
        var addedById: [Int: Bool] = [:]
        for a in tj["added_tokens"]?.array ?? [] {
            guard let id = a["id"]?.int, let c = a["content"]?.string else { continue }
            added[c] = (a["special"]?.bool ?? false, id)
            addedById[id] = a["special"]?.bool ?? false
            reverse[id] = c
        }
        if let maxId = reverse.keys.max(), maxId >= vocabSize {
            throw QKError(file: path, "token id \(maxId) is not below vocab_size \(vocabSize) from config.json")
        }
        var tokens: [String] = []
        var types: [GGUFTokenType] = []
        tokens.reserveCapacity(vocabSize)
        for i in 0..<vocabSize {
            guard var t = reverse[i] else {
                tokens.append("[PAD\(i)]"); types.append(.unused); continue
            }
            if added[t] != nil {
                if addedById[i] == true || looksSpecial(t) {
                    types.append(.control)
                } else {
                    t = t.replacingOccurrences(of: "\u{2581}", with: " ")
                    types.append(.userDefined)
                }
            } else {
                types.append(.normal)
            }
            tokens.append(t)
        }
        let pre = try preOverride ?? detectPre(tj, file: path)
        var kv: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string(pre)),
            ("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(.int32, types.map { .int32($0.rawValue) })),
        ]
        let special = try SpecialVocab(dir: dir, loadMerges: true, nVocab: nil)
        if special.merges.isEmpty { throw QKError(file: path, "cannot find tokenizer merges in model file") }
        kv += special.metadata()
        return kv
    }

    /// The llama.cpp pre-tokenizer name for a byte-level BPE tokenizer.json, recognized by the structure of its
    /// pre_tokenizer (llama.cpp hashes a probe tokenization; the families below differ in exactly these parts).
    public static func detectPre(_ tj: JSONValue, file: String) throws -> String {
        let pt = tj["pre_tokenizer"]
        let list: [JSONValue] = pt?["type"]?.string == "Sequence" ? (pt?["pretokenizers"]?.array ?? []) : (pt.map { [$0] } ?? [])
        let kinds = list.compactMap { $0["type"]?.string }
        if kinds == ["ByteLevel"] { return "gpt2" }
        if kinds == ["Digits", "ByteLevel"], list[0]["individual_digits"]?.bool == true { return "smollm" }
        if kinds == ["Split", "ByteLevel"], let re = list[0]["pattern"]?["Regex"]?.string,
           re.contains("\\p{N}{1,3}"), list[1]["use_regex"]?.bool == false {
            return "llama-bpe"
        }
        if kinds == ["Split", "ByteLevel"], let re = list[0]["pattern"]?["Regex"]?.string,
           re.contains("\\p{L}+|\\p{N}| ?"), list[1]["use_regex"]?.bool == false {
            return "qwen2"   // llama3's split with single digits
        }
        throw QKError(file: file, "BPE pre-tokenizer was not recognized (pre_tokenizer: \(kinds.joined(separator: "+"))); " +
                      "pass --pre NAME (e.g. gpt2, llama-bpe, qwen2, smollm)")
    }

    public static let knownPre = ["default", "llama-bpe", "smollm", "gpt2", "gpt-2", "qwen2", "starcoder", "refact", "falcon", "mpt", "olmo"]
}
