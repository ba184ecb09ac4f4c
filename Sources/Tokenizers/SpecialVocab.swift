import Foundation
import ModelFormats
import TensorCore

/// Special token ids, add_*_token flags and the chat template of an HF tokenizer directory, found the way
/// gguf-py's `SpecialVocab` finds them (tokenizer.json post-processor, tokenizer_config.json, config.json),
/// so that the GGUF keys come out with the same values in the same order.
public struct SpecialVocab {
    public private(set) var merges: [String] = []
    public private(set) var specialIds: [(String, Int)] = []
    public private(set) var addSpecial: [(String, Bool)] = []
    public private(set) var chatTemplate: String?
    public private(set) var namedChatTemplates: [(String, String)] = []
    public private(set) var normalizerLowercase: Bool?
    public private(set) var normalizerStripAccents: Bool?
    public private(set) var warnings: [String] = []

    var types: [String] = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"]
    let nVocab: Int?

    public init(dir: String, loadMerges: Bool, nVocab: Int?) throws {
        self.nVocab = nVocab
        let d = URL(fileURLWithPath: dir)
        func load(_ name: String) throws -> JSONValue? {
            let p = d.appendingPathComponent(name).path
            guard FileManager.default.fileExists(atPath: p) else { return nil }
            return try JSONParser.parse(file: p)
        }
        let tokenizer = try load("tokenizer.json")
        var tc = try load("tokenizer_config.json")?.object.map { OrderedJSON($0) }
        var addedTokens: [JSONValue] = []
        if let tokenizer {
            if loadMerges, let m = tokenizer["model"]?["merges"]?.array, !m.isEmpty {
                merges = try Self.mergeStrings(m, file: d.appendingPathComponent("tokenizer.json").path)
            }
            if let n = tokenizer["normalizer"], n.object != nil { parseNormalizer(n) }
            addedTokens = tokenizer["added_tokens"]?.array ?? []

            var specialBos = tc?["bos_token"], specialCls = tc?["cls_token"]
            var specialEos = tc?["eos_token"], specialSep = tc?["sep_token"]
            if !truthy(specialBos), truthy(specialCls), tc.map(\.truthy) == true { tc?["bos_token"] = specialCls; specialBos = specialCls }
            if !truthy(specialEos), truthy(specialSep), tc.map(\.truthy) == true { tc?["eos_token"] = specialSep; specialEos = specialSep }
            if let pp = tokenizer["post_processor"], truthy(pp) {
                let processors = pp["processors"]?.array ?? [pp]
                for proc in processors {
                    let ptype = proc["type"]?.string
                    if ptype == "ByteLevel" {
                        setDefaultAdd("bos", false)
                        setDefaultAdd("eos", false)
                    } else if ptype == "RobertaProcessing" {
                        setAdd("bos", true); setAdd("eos", true); setAdd("sep", true)
                        if !truthy(specialCls), tc.map(\.truthy) == true {
                            specialCls = proc["cls"]?.array?.first ?? specialBos
                            tc?["cls_token"] = specialCls
                        }
                        if !truthy(specialSep), tc.map(\.truthy) == true {
                            specialSep = proc["sep"]?.array?.first ?? specialEos
                            tc?["sep_token"] = specialSep
                        }
                    } else if ptype == "TemplateProcessing" {
                        let single = proc["single"]?.array ?? []
                        var pair = proc["pair"]?.array ?? []
                        var specialFirst: JSONValue?
                        var specialLast: JSONValue?
                        if single.count > 1 {
                            if let f = single[0]["SpecialToken"]?["id"], truthy(f) {
                                specialFirst = f
                                if tc.map(\.truthy) != true {
                                    specialBos = f
                                } else if f != specialBos && f != specialCls {
                                    if !truthy(specialBos) { tc?["bos_token"] = f; specialBos = f }
                                    if !truthy(specialCls) { tc?["cls_token"] = f; specialCls = f }
                                }
                                setAdd("bos", f == specialBos || f == specialCls)
                                if f != specialBos && f != specialCls { warnings.append("Unknown leading special token in TemplateProcessing<single>") }
                            }
                            if let l = single[single.count - 1]["SpecialToken"]?["id"], truthy(l) {
                                specialLast = l
                                if tc.map(\.truthy) != true {
                                    specialEos = l
                                } else if l != specialEos {
                                    if !types.contains("eot") {
                                        types.append("eot"); tc?["eot_token"] = specialEos
                                    } else if !types.contains("eom") {
                                        types.append("eom"); tc?["eom_token"] = specialEos
                                    }
                                    tc?["eos_token"] = l; specialEos = l
                                }
                                setAdd("eos", l == specialEos)
                            }
                        }
                        if !pair.isEmpty {
                            let seqStart = specialFirst != nil && pair[0]["SpecialToken"]?["id"] == specialFirst ? 1 : 0
                            let dropLast = specialLast != nil && pair[pair.count - 1]["SpecialToken"]?["id"] == specialLast
                            let end = dropLast ? pair.count - 1 : pair.count
                            pair = seqStart < end ? Array(pair[seqStart..<end]) : []
                            if !pair.isEmpty {
                                let a = pair[0]["Sequence"]?["id"]?.string
                                let b = pair[pair.count - 1]["Sequence"]?["id"]?.string
                                if a == "A", b == "B", pair.count > 2 {
                                    let mid = Array(pair[1..<(pair.count - 1)])
                                    var addSep = false
                                    if let e = mid[0]["SpecialToken"]?["id"], truthy(e) {
                                        if (e == specialSep || e == specialEos) && specialLast == nil { addSep = true }
                                        if e != specialSep && e != specialEos { warnings.append("Unknown separator token \(e.serialized(indent: 0)) in TemplateProcessing<pair>") }
                                    }
                                    if mid.count == 2, let e = mid[1]["SpecialToken"]?["id"], truthy(e) {
                                        if e == specialSep || e == specialEos { addSep = true }
                                    }
                                    setAdd("sep", addSep)
                                    if addSep, !truthy(specialSep), tc.map(\.truthy) == true { tc?["sep_token"] = specialEos }
                                }
                            }
                        }
                    }
                }
            }
        }
        guard let tc, tc.truthy else { try loadConfigIds(d); return }

        // Chat template: tokenizer_config.json, else chat_template.jinja / chat_template.json.
        var alt: String?
        let jinja = d.appendingPathComponent("chat_template.jinja").path
        let ctJSON = d.appendingPathComponent("chat_template.json").path
        if FileManager.default.fileExists(atPath: jinja) {
            alt = try String(contentsOfFile: jinja, encoding: .utf8)
        } else if FileManager.default.fileExists(atPath: ctJSON) {
            alt = try JSONParser.parse(file: ctJSON)["chat_template"]?.string
        }
        switch tc["chat_template"] {
        case let .string(s)?: chatTemplate = s
        case let .array(list)?:
            for choice in list {
                let name = String((choice["name"]?.string ?? "").map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "_" })
                guard !name.isEmpty, let t = choice["template"]?.string else { continue }
                if name == "default" { chatTemplate = t } else { namedChatTemplates.append((name, t)) }
            }
        case nil: chatTemplate = alt
        default: warnings.append("Bad type for chat_template field - ignoring")
        }

        for typ in types {
            if case let .bool(b)? = tc["add_\(typ)_token"], !addSpecial.contains(where: { $0.0 == typ }) {
                addSpecial.append((typ, b))
            }
            let content: String
            switch tc["\(typ)_token"] {
            case let .string(s)?: content = s
            case let .object(o)?:
                guard let c = o.first(where: { $0.0 == "content" })?.1.string else { continue }
                content = c
            default: continue
            }
            let id = addedTokens.first(where: { $0["content"]?.string == content })?["id"]?.int
            try setSpecial(typ, id)
        }
        try loadConfigIds(d)
    }

    mutating func loadConfigIds(_ d: URL) throws {
        let p = d.appendingPathComponent("config.json").path
        guard FileManager.default.fileExists(atPath: p) else { return }
        let config = try JSONParser.parse(file: p)
        for typ in types {
            var v = config["\(typ)_token_id"]
            if v == nil || v?.isNull == true { v = config["text_config"]?["\(typ)_token_id"] }
            if case let .int(i)? = v { try setSpecial(typ, Int(i)) }
        }
    }

    mutating func setSpecial(_ typ: String, _ id: Int?) throws {
        guard let id else { return }
        if id < 0 { throw QKError("invalid value for special token type \(typ): \(id)") }
        if nVocab == nil || id < nVocab! {
            if specialIds.contains(where: { $0.0 == typ }) { return }
            specialIds.append((typ, id))
        } else {
            warnings.append("Special token type \(typ), id \(id) out of range, must be under \(nVocab!) - skipping")
        }
    }

    mutating func setAdd(_ typ: String, _ v: Bool) {
        if let k = addSpecial.firstIndex(where: { $0.0 == typ }) { addSpecial[k].1 = v } else { addSpecial.append((typ, v)) }
    }

    mutating func setDefaultAdd(_ typ: String, _ v: Bool) {
        if !addSpecial.contains(where: { $0.0 == typ }) { addSpecial.append((typ, v)) }
    }

    mutating func parseNormalizer(_ n: JSONValue) {
        switch n["type"]?.string {
        case "Lowercase": normalizerLowercase = true
        case "StripAccents": normalizerStripAccents = true
        case "BertNormalizer":
            if let b = n["lowercase"]?.bool { normalizerLowercase = b }
            if let b = n["strip_accents"]?.bool { normalizerStripAccents = b }
        case "Sequence": for m in n["normalizers"]?.array ?? [] { parseNormalizer(m) }
        default: break
        }
    }

    /// Merges as "a b" strings; the pair form has literal spaces mapped to U+0120 first.
    public static func mergeStrings(_ m: [JSONValue], file: String) throws -> [String] {
        if m.first?.string != nil {
            return try m.map { guard let s = $0.string else { throw QKError(file: file, "mixed merge formats") }; return s }
        }
        return try m.map { pair in
            guard let p = pair.array, p.count == 2, let a = p[0].string, let b = p[1].string else {
                throw QKError(file: file, "unknown tokenizer merges format")
            }
            let enc = { (s: String) in String(s.map { $0 == " " ? Character("\u{0120}") : $0 }) }
            return enc(a) + " " + enc(b)
        }
    }

    /// The GGUF keys, in the order gguf-py's `add_to_gguf` writes them.
    public func metadata() -> [(String, GGUFValue)] {
        var kv: [(String, GGUFValue)] = []
        if !merges.isEmpty { kv.append(("tokenizer.ggml.merges", .array(.string, merges.map { .string($0) }))) }
        let idKeys = ["bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id", "sep": "seperator_token_id",
                      "pad": "padding_token_id", "mask": "mask_token_id", "eot": "eot_token_id", "eom": "eom_token_id"]
        for (typ, id) in specialIds {
            if let k = idKeys[typ] { kv.append(("tokenizer.ggml.\(k)", .uint32(UInt32(id)))) }
        }
        for (typ, v) in addSpecial where ["bos", "eos", "sep"].contains(typ) {
            kv.append(("tokenizer.ggml.add_\(typ)_token", .bool(v)))
        }
        for (name, t) in namedChatTemplates { kv.append(("tokenizer.chat_template.\(name)", .string(t))) }
        if !namedChatTemplates.isEmpty {
            kv.append(("tokenizer.chat_templates", .array(.string, namedChatTemplates.map { .string($0.0) })))
        }
        if let t = chatTemplate { kv.append(("tokenizer.chat_template", .string(t))) }
        if let b = normalizerLowercase { kv.append(("tokenizer.ggml.normalizer.lowercase", .bool(b))) }
        if let b = normalizerStripAccents { kv.append(("tokenizer.ggml.normalizer.strip_accents", .bool(b))) }
        return kv
    }
}

/// Python truthiness of an optional JSON value.
func truthy(_ v: JSONValue?) -> Bool {
    switch v {
    case nil, .null?: return false
    case let .bool(b)?: return b
    case let .int(i)?: return i != 0
    case let .double(d)?: return d != 0
    case let .string(s)?: return !s.isEmpty
    case let .array(a)?: return !a.isEmpty
    case let .object(o)?: return !o.isEmpty
    }
}

/// A mutable, order-keeping JSON object (for the tokenizer_config edits SpecialVocab makes).
struct OrderedJSON {
    var kv: [(String, JSONValue)]
    init(_ kv: [(String, JSONValue)]) { self.kv = kv }
    var truthy: Bool { !kv.isEmpty }
    subscript(key: String) -> JSONValue? {
        get { kv.first(where: { $0.0 == key })?.1 }
        set {
            if let k = kv.firstIndex(where: { $0.0 == key }) {
                if let newValue { kv[k].1 = newValue } else { kv.remove(at: k) }
            } else if let newValue { kv.append((key, newValue)) }
        }
    }
}
