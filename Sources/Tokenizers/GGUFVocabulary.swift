import Foundation
import ModelFormats
import TensorCore

/// The tokenizer stored in a GGUF file's `tokenizer.*` metadata.
public struct GGUFVocabulary: Sendable {
    public var model: String
    public var pre: String?
    public var tokens: [String]
    public var scores: [Float]?
    public var types: [Int32]
    public var merges: [String]?
    public var bos: Int?, eos: Int?, unk: Int?, pad: Int?, sep: Int?, eot: Int?
    public var addBos: Bool?, addEos: Bool?, addSpacePrefix: Bool?
    public var chatTemplate: String?

    public init(_ g: GGUFFile) throws {
        try self.init(lookup: { g[$0] }, file: g.path)
    }

    /// From `tokenizer.*` keys as the converter writes them (e.g. TokenizerMetadata.fromHF for an HF directory).
    public init(metadata: [(String, GGUFValue)], file: String = "tokenizer") throws {
        var d: [String: GGUFValue] = [:]
        for (k, v) in metadata { d[k] = v }
        try self.init(lookup: { d[$0] }, file: file)
    }

    init(lookup: @escaping (String) -> GGUFValue?, file: String) throws {
        struct Keys {
            let path: String
            let fetch: (String) -> GGUFValue?
            subscript(k: String) -> GGUFValue? { fetch(k) }
        }
        let g = Keys(path: file, fetch: lookup)
        guard let m = g["tokenizer.ggml.model"]?.string else { throw QKError(file: g.path, "no tokenizer.ggml.model: the file carries no vocabulary") }
        model = m
        pre = g["tokenizer.ggml.pre"]?.string
        guard let t = g["tokenizer.ggml.tokens"]?.strings, !t.isEmpty else { throw QKError(file: g.path, "tokenizer.ggml.tokens is missing or not a string array") }
        tokens = t
        scores = g["tokenizer.ggml.scores"]?.array?.compactMap { $0.double.map(Float.init) }
        types = g["tokenizer.ggml.token_type"]?.array?.compactMap { $0.int.map { Int32($0) } } ?? [Int32](repeating: 1, count: t.count)
        guard types.count == t.count else { throw QKError(file: g.path, "tokenizer.ggml.token_type has \(types.count) entries for \(t.count) tokens") }
        if let s = scores, s.count != t.count { throw QKError(file: g.path, "tokenizer.ggml.scores has \(s.count) entries for \(t.count) tokens") }
        merges = g["tokenizer.ggml.merges"]?.strings
        func id(_ k: String) throws -> Int? {
            guard let v = g["tokenizer.ggml.\(k)"]?.int else { return nil }
            guard v >= 0, v < t.count else { throw QKError(file: g.path, "tokenizer.ggml.\(k) = \(v) is not a token id (\(t.count) tokens)") }
            return v
        }
        bos = try id("bos_token_id"); eos = try id("eos_token_id"); unk = try id("unknown_token_id")
        pad = try id("padding_token_id"); sep = try id("seperator_token_id"); eot = try id("eot_token_id")
        addBos = g["tokenizer.ggml.add_bos_token"]?.bool
        addEos = g["tokenizer.ggml.add_eos_token"]?.bool
        addSpacePrefix = g["tokenizer.ggml.add_space_prefix"]?.bool
        chatTemplate = g["tokenizer.chat_template"]?.string
    }

    /// The byte-level BPE split `tokenizer.ggml.pre` names (llama.cpp's names, PreTokenizer.names).
    public func preTokenizer() throws -> PreTokenizer {
        guard let name = pre else {
            throw QKError("the byte-level BPE vocabulary has no tokenizer.ggml.pre (llama.cpp would fall back to its 'default' " +
                          "split, which quantkit does not have); convert the model again with a pre-tokenizer name")
        }
        guard let rule = PreTokenizer(pre: name) else {
            throw QKError("pre-tokenizer \(name) is not supported (gpt2, llama-bpe, qwen2, smollm and the names llama.cpp " +
                          "treats as them are)")
        }
        return rule
    }

    /// Whether encoding starts with BOS, by llama.cpp's rule: `add_bos_token` when the file says it, else on for
    /// SentencePiece vocabularies and for byte-level BPE of the llama3 group (llama-bpe), off for other BPE.
    public var addsBos: Bool {
        if let b = addBos { return b }
        if model == "llama" { return true }
        return model == "gpt2" && (try? preTokenizer())?.addsBosByDefault == true
    }
}

/// Writes HF tokenizer files for a GGUF vocabulary: tokenizer.json (byte-level BPE) or tokenizer.model
/// (SentencePiece), plus tokenizer_config.json and special_tokens_map.json.
public enum HFTokenizerWriter {
    public static func write(_ v: GGUFVocabulary, to dir: String, contextLength: Int) throws {
        let d = URL(fileURLWithPath: dir)
        switch v.model {
        case "gpt2":
            let tj = try byteLevelTokenizerJSON(v)
            try writeFileAtomically(d.appendingPathComponent("tokenizer.json").path, Array(tj.serialized(indent: 2).utf8))
        case "llama":
            try writeFileAtomically(d.appendingPathComponent("tokenizer.model").path, sentencePieceModel(v))
        default:
            throw QKError("tokenizer model \(v.model) cannot be exported (gpt2 and llama can)")
        }
        try writeFileAtomically(d.appendingPathComponent("tokenizer_config.json").path,
                                Array(tokenizerConfig(v, contextLength: contextLength).serialized(indent: 2).utf8))
        var stm: [(String, JSONValue)] = []
        for (k, id) in [("bos_token", v.bos), ("eos_token", v.eos), ("pad_token", v.pad), ("unk_token", v.unk)] {
            if let id { stm.append((k, .string(v.tokens[id]))) }
        }
        try writeFileAtomically(d.appendingPathComponent("special_tokens_map.json").path, Array(JSONValue.object(stm).serialized(indent: 2).utf8))
    }

    static func isHole(_ v: GGUFVocabulary, _ i: Int) -> Bool { v.types[i] == 5 && v.tokens[i] == "[PAD\(i)]" }

    static func preTokenizer(_ pre: String?) throws -> JSONValue {
        let byteLevel: (Bool) -> JSONValue = { useRegex in
            .object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(false)), ("trim_offsets", .bool(true)), ("use_regex", .bool(useRegex))])
        }
        guard let name = pre, let rule = PreTokenizer(pre: name) else {
            throw QKError("cannot write a tokenizer.json pre-tokenizer for tokenizer.ggml.pre = \(pre ?? "(none)")")
        }
        switch rule {
        case .gpt2:
            return byteLevel(true)
        case .smollm:
            return .object([("type", .string("Sequence")), ("pretokenizers", .array([
                .object([("type", .string("Digits")), ("individual_digits", .bool(true))]), byteLevel(true)]))])
        case .llama3, .qwen2:
            let digits = rule == .qwen2 ? "" : "{1,3}"
            let re = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}\(digits)| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
            return .object([("type", .string("Sequence")), ("pretokenizers", .array([
                .object([("type", .string("Split")), ("pattern", .object([("Regex", .string(re))])), ("behavior", .string("Isolated")), ("invert", .bool(false))]),
                byteLevel(false)]))])
        }
    }

    static func byteLevelTokenizerJSON(_ v: GGUFVocabulary) throws -> JSONValue {
        guard let merges = v.merges, !merges.isEmpty else { throw QKError("the GGUF vocabulary has no merges; a byte-level BPE tokenizer needs them") }
        var added: [JSONValue] = []
        var vocab: [(String, JSONValue)] = []
        vocab.reserveCapacity(v.tokens.count)
        for (i, t) in v.tokens.enumerated() where !isHole(v, i) {
            vocab.append((t, .int(Int64(i))))
            if v.types[i] == 3 || v.types[i] == 4 {
                added.append(.object([("id", .int(Int64(i))), ("content", .string(t)), ("single_word", .bool(false)),
                                      ("lstrip", .bool(false)), ("rstrip", .bool(false)), ("normalized", .bool(v.types[i] == 4)),
                                      ("special", .bool(v.types[i] == 3))]))
            }
        }
        let post: JSONValue
        if v.addsBos, let b = v.bos {
            let bt = v.tokens[b]
            let seq: (String) -> JSONValue = { .object([("Sequence", .object([("id", .string($0)), ("type_id", .int(0))]))]) }
            let sp: JSONValue = .object([("SpecialToken", .object([("id", .string(bt)), ("type_id", .int(0))]))])
            post = .object([("type", .string("TemplateProcessing")), ("single", .array([sp, seq("A")])), ("pair", .array([sp, seq("A"), sp, seq("B")])),
                            ("special_tokens", .object([(bt, .object([("id", .string(bt)), ("ids", .array([.int(Int64(b))])), ("tokens", .array([.string(bt)]))]))]))])
        } else {
            post = .object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(true)), ("trim_offsets", .bool(false)), ("use_regex", .bool(true))])
        }
        return .object([
            ("version", .string("1.0")), ("truncation", .null), ("padding", .null),
            ("added_tokens", .array(added)),
            ("normalizer", .null),
            ("pre_tokenizer", try preTokenizer(v.pre)),
            ("post_processor", post),
            ("decoder", .object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(true)), ("trim_offsets", .bool(true)), ("use_regex", .bool(true))])),
            ("model", .object([
                ("type", .string("BPE")), ("dropout", .null), ("unk_token", .null), ("continuing_subword_prefix", .null),
                ("end_of_word_suffix", .null), ("fuse_unk", .bool(false)), ("byte_fallback", .bool(false)),
                ("ignore_merges", .bool((try? v.preTokenizer())?.ignoresMerges == true)),
                ("vocab", .object(vocab)), ("merges", .array(merges.map { .string($0) })),
            ])),
        ])
    }

    static func tokenizerConfig(_ v: GGUFVocabulary, contextLength: Int) -> JSONValue {
        var kv: [(String, JSONValue)] = []
        if v.addBos != nil || v.addsBos { kv.append(("add_bos_token", .bool(v.addsBos))) }
        if let b = v.addEos { kv.append(("add_eos_token", .bool(b))) }
        if let b = v.addSpacePrefix { kv.append(("add_prefix_space", .bool(b))) }
        var dec: [(String, JSONValue)] = []
        // SentencePiece pieces carry their own types and scores in tokenizer.model; converters would turn an
        // added_tokens_decoder entry into score -1000, so only user-defined tokens are listed for them.
        for (i, t) in v.tokens.enumerated() where v.types[i] == 4 || (v.types[i] == 3 && v.model != "llama") {
            dec.append((String(i), .object([("content", .string(t)), ("lstrip", .bool(false)), ("normalized", .bool(v.types[i] == 4)),
                                             ("rstrip", .bool(false)), ("single_word", .bool(false)), ("special", .bool(v.types[i] != 4))])))
        }
        kv.append(("added_tokens_decoder", .object(dec)))
        if let b = v.bos { kv.append(("bos_token", .string(v.tokens[b]))) }
        if let t = v.chatTemplate { kv.append(("chat_template", .string(t))) }
        kv.append(("clean_up_tokenization_spaces", .bool(false)))
        if let e = v.eos { kv.append(("eos_token", .string(v.tokens[e]))) }
        kv.append(("model_max_length", .int(Int64(contextLength))))
        if let p = v.pad { kv.append(("pad_token", .string(v.tokens[p]))) }
        kv.append(("tokenizer_class", .string(v.model == "llama" ? "LlamaTokenizer" : "GPT2Tokenizer")))
        if let u = v.unk { kv.append(("unk_token", .string(v.tokens[u]))) }
        return .object(kv)
    }

    /// A SentencePiece ModelProto (BPE) holding the GGUF pieces, scores and types.
    static func sentencePieceModel(_ v: GGUFVocabulary) -> [UInt8] {
        var out = ProtoWriter()
        for (i, t) in v.tokens.enumerated() {
            var p = ProtoWriter()
            p.bytes(1, Array(t.utf8))
            p.fixed32(2, (v.scores?[i] ?? 0).bitPattern)
            let type = (1...6).contains(v.types[i]) ? UInt64(v.types[i]) : 1
            p.varint(3, type)
            out.bytes(1, p.buf)
        }
        var trainer = ProtoWriter()
        trainer.varint(3, 2)  // model_type BPE
        trainer.varint(4, UInt64(v.tokens.count))
        trainer.varint(35, v.types.contains(6) ? 1 : 0)  // byte_fallback
        trainer.varint(40, UInt64(bitPattern: Int64(v.unk ?? 0)))
        trainer.varint(41, UInt64(bitPattern: Int64(v.bos ?? -1)))
        trainer.varint(42, UInt64(bitPattern: Int64(v.eos ?? -1)))
        trainer.varint(43, UInt64(bitPattern: Int64(v.pad ?? -1)))
        out.bytes(2, trainer.buf)
        var norm = ProtoWriter()
        norm.bytes(1, Array("identity".utf8))
        norm.varint(3, (v.addSpacePrefix ?? true) ? 1 : 0)
        norm.varint(4, 0)
        norm.varint(5, 1)
        out.bytes(3, norm.buf)
        return out.buf
    }
}

struct ProtoWriter {
    var buf: [UInt8] = []

    mutating func rawVarint(_ v: UInt64) {
        var v = v
        while v >= 0x80 { buf.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
        buf.append(UInt8(v))
    }

    mutating func varint(_ field: Int, _ v: UInt64) { rawVarint(UInt64(field << 3)); rawVarint(v) }

    mutating func fixed32(_ field: Int, _ v: UInt32) {
        rawVarint(UInt64(field << 3 | 5))
        withUnsafeBytes(of: v.littleEndian) { buf.append(contentsOf: $0) }
    }

    mutating func bytes(_ field: Int, _ b: [UInt8]) {
        rawVarint(UInt64(field << 3 | 2)); rawVarint(UInt64(b.count)); buf.append(contentsOf: b)
    }
}
