/// The regex splits of llama.cpp's / HF's byte-level BPE pre-tokenizers, as hand-written scanners over Unicode
/// scalars (the regexes are fixed, so a scanner is exact and much faster than a regex engine):
///
/// - gpt2:  `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// - llama3 (`llama-bpe`): `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// - qwen2: llama3's with single digits (`\p{N}` for `\p{N}{1,3}`).
/// - smollm: every digit alone (`\p{N}`), then gpt2 on the rest.
public enum PreTokenizer: String, Sendable {
    case gpt2, llama3, qwen2, smollm

    /// The `tokenizer.ggml.pre` names llama.cpp (llama-vocab.cpp) gives each of these splits, where it treats the name
    /// exactly as the split alone (no extra flags quantkit lacks, such as add_sep). Not here on purpose: "default"
    /// (llama.cpp splits it with four regexes in turn, not gpt2's one), dbrx/smaug-bpe (llama3's split without
    /// ignore_merges), tekken and the rest.
    public static let names: [PreTokenizer: [String]] = [
        .gpt2: ["gpt2", "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
                "modern-bert", "mpt", "olmo", "jais", "trillion", "granite-docling"],
        .llama3: ["llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"],
        .qwen2: ["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "stablelm2", "hunyuan", "solar-open"],
        .smollm: ["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b", "mellum2"],
    ]

    private static let byName: [String: PreTokenizer] = {
        var d: [String: PreTokenizer] = [:]
        for (rule, list) in names {
            for n in list { d[n] = rule }
        }
        return d
    }()

    public init?(pre: String) {
        guard let rule = Self.byName[pre] else { return nil }
        self = rule
    }

    /// llama.cpp's llama3 group turns BOS on when the vocabulary does not say `add_bos_token` (a Llama-3 GGUF
    /// without that key still starts with <|begin_of_text|>); every other byte-level BPE name leaves it off.
    public var addsBosByDefault: Bool { self == .llama3 }

    /// llama.cpp's llama3 group takes a whole pre-token from the vocabulary before merging (`ignore_merges`).
    var ignoresMerges: Bool { self == .llama3 }

    // ASCII answers directly (letters A–Z a–z, digits 0–9, whitespace \t \n \v \f \r and space are the only
    // ASCII members of these Unicode classes; TokenizerFastPathTests checks all 128), the rest from Unicode's tables.

    @inline(__always) static func isLetter(_ u: Unicode.Scalar) -> Bool {
        let v = u.value
        if v < 0x80 { return (v | 0x20) &- 0x61 < 26 }
        return isLetterUnicode(u)
    }

    @inline(__always) static func isNumber(_ u: Unicode.Scalar) -> Bool {
        let v = u.value
        if v < 0x80 { return v &- 0x30 < 10 }
        return isNumberUnicode(u)
    }

    @inline(__always) static func isSpace(_ u: Unicode.Scalar) -> Bool {
        let v = u.value
        if v < 0x80 { return v == 0x20 || v &- 0x09 < 5 }
        return isSpaceUnicode(u)
    }

    static func isLetterUnicode(_ u: Unicode.Scalar) -> Bool {
        switch u.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumberUnicode(_ u: Unicode.Scalar) -> Bool {
        switch u.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    static func isSpaceUnicode(_ u: Unicode.Scalar) -> Bool { u.properties.isWhitespace }

    /// Splits `text` into pre-tokens.
    public func split(_ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        var out: [String] = []
        visit(s) { a, b in
            var v = String.UnicodeScalarView()
            v.append(contentsOf: s[a..<b])
            out.append(String(v))
        }
        return out
    }

    /// Calls `emit(a, b)` for each pre-token `s[a..<b]`, in order.
    func visit(_ s: [Unicode.Scalar], _ emit: (Int, Int) -> Void) {
        switch self {
        case .gpt2: Self.scanGPT2(s, 0, s.count, emit)
        case .llama3: Self.scanLlama3(s, digits: 3, emit)
        case .qwen2: Self.scanLlama3(s, digits: 1, emit)
        case .smollm:
            var start = 0
            for i in 0..<s.count where Self.isNumber(s[i]) {
                if start < i { Self.scanGPT2(s, start, i, emit) }
                emit(i, i + 1)
                start = i + 1
            }
            if start < s.count { Self.scanGPT2(s, start, s.count, emit) }
        }
    }

    static func contraction(_ s: [Unicode.Scalar], _ i: Int, _ end: Int, caseInsensitive: Bool) -> Int {
        guard s[i] == "'", i + 1 < end else { return 0 }
        func c(_ k: Int) -> Character? { k < end ? Character(caseInsensitive ? Unicode.Scalar(String(s[k]).lowercased()) ?? s[k] : s[k]) : nil }
        switch c(i + 1) {
        case "s", "t", "m", "d": return 2
        case "r": return c(i + 2) == "e" ? 3 : 0
        case "v": return c(i + 2) == "e" ? 3 : 0
        case "l": return c(i + 2) == "l" ? 3 : 0
        default: return 0
        }
    }

    static func scanGPT2(_ s: [Unicode.Scalar], _ from: Int, _ end: Int, _ emit: (Int, Int) -> Void) {
        var i = from
        while i < end {
            let n = contraction(s, i, end, caseInsensitive: false)
            if n > 0 { emit(i, i + n); i += n; continue }
            let j = s[i] == " " && i + 1 < end ? i + 1 : i
            if isLetter(s[j]) {
                var k = j
                while k < end && isLetter(s[k]) { k += 1 }
                emit(i, k); i = k; continue
            }
            if isNumber(s[j]) {
                var k = j
                while k < end && isNumber(s[k]) { k += 1 }
                emit(i, k); i = k; continue
            }
            if !isSpace(s[j]) {
                var k = j
                while k < end && !isSpace(s[k]) && !isLetter(s[k]) && !isNumber(s[k]) { k += 1 }
                emit(i, k); i = k; continue
            }
            // whitespace run: \s+(?!\S) keeps the last space for the next token when a non-space follows
            var k = i
            while k < end && isSpace(s[k]) { k += 1 }
            if k < end && k - i >= 2 { k -= 1 }
            emit(i, k); i = k
        }
    }

    /// llama3's split; `digits` numbers at most per pre-token (3 for llama3, 1 for qwen2).
    static func scanLlama3(_ s: [Unicode.Scalar], digits: Int, _ emit: (Int, Int) -> Void) {
        let end = s.count
        var i = 0
        func isCRLF(_ u: Unicode.Scalar) -> Bool { u == "\r" || u == "\n" }
        while i < end {
            let n = contraction(s, i, end, caseInsensitive: true)
            if n > 0 { emit(i, i + n); i += n; continue }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if isLetter(s[i]) || (!isCRLF(s[i]) && !isLetter(s[i]) && !isNumber(s[i]) && i + 1 < end && isLetter(s[i + 1])) {
                var k = isLetter(s[i]) ? i : i + 1
                while k < end && isLetter(s[k]) { k += 1 }
                emit(i, k); i = k; continue
            }
            // \p{N}{1,digits}
            if isNumber(s[i]) {
                var k = i
                while k < end && k - i < digits && isNumber(s[k]) { k += 1 }
                emit(i, k); i = k; continue
            }
            // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
            let j = s[i] == " " && i + 1 < end ? i + 1 : i
            if !isSpace(s[j]) && !isLetter(s[j]) && !isNumber(s[j]) {
                var k = j
                while k < end && !isSpace(s[k]) && !isLetter(s[k]) && !isNumber(s[k]) { k += 1 }
                while k < end && isCRLF(s[k]) { k += 1 }
                emit(i, k); i = k; continue
            }
            // \s*[\r\n]+ : the longest whitespace prefix that ends in a newline run
            var k = i
            while k < end && isSpace(s[k]) { k += 1 }
            var lastNL = -1
            for m in i..<k where isCRLF(s[m]) { lastNL = m }
            if lastNL >= 0 {
                emit(i, lastNL + 1); i = lastNL + 1; continue
            }
            if k < end && k - i >= 2 { k -= 1 }
            emit(i, k); i = k
        }
    }
}
