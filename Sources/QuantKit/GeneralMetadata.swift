import Foundation
import ModelFormats

/// `general.*` naming metadata derived from a model directory's name, the way gguf-py's `Metadata`
/// heuristics derive it (name, basename, size label, finetune, version), plus the parameter-count label.
public struct GeneralMetadata: Equatable {
    public var name: String?
    public var organization: String?
    public var basename: String?
    public var finetune: String?
    public var version: String?
    public var sizeLabel: String?

    /// gguf-py's `model_weight_count_rounded_notation` (min 2 significant digits).
    public static func sizeLabel(parameters n: Int) -> String {
        let x = Double(n)
        let (scaled, suffix): (Double, String)
        if x > 1e12 { (scaled, suffix) = (x * 1e-12, "T") }
        else if x > 1e9 { (scaled, suffix) = (x * 1e-9, "B") }
        else if x > 1e6 { (scaled, suffix) = (x * 1e-6, "M") }
        else { (scaled, suffix) = (x * 1e-3, "K") }
        let rounded = String(Int(scaled.rounded(.toNearestOrEven)))
        let digits = rounded.drop(while: { $0 == "0" }).count
        let fix = max(2 - digits, 0)
        return String(format: "%.\(fix)f", scaled) + suffix
    }

    static func full(_ pattern: String, _ s: String) -> Bool {
        guard let re = try? NSRegularExpression(pattern: "^(?:\(pattern))$", options: [.caseInsensitive]) else { return false }
        return re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }

    /// Python's `str.title()`.
    static func pyTitle(_ w: String) -> String {
        var out = ""
        var prevCased = false
        for c in w {
            if c.isLetter {
                out += prevCased ? c.lowercased() : c.uppercased()
                prevCased = true
            } else {
                out.append(c)
                prevCased = false
            }
        }
        return out
    }

    /// gguf-py's `id_to_title`.
    static func idToTitle(_ s: String) -> String {
        s.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "-", with: " ")
            .split(separator: " ").map { w -> String in
                let w = String(w)
                let isLower = w.contains(where: { $0.isLetter }) && w == w.lowercased()
                if isLower && !full("v\\d+(?:\\.\\d+)*|\\d.*", w) { return pyTitle(w) }
                return w
            }.joined(separator: " ")
    }

    /// gguf-py's `get_model_id_components` on a directory name or `org/name` id.
    public static func fromModelId(_ modelId: String, totalParams: Int) -> GeneralMetadata {
        var m = GeneralMetadata()
        if modelId.contains(" ") { m.name = modelId; return m }
        var org: String?
        var full = modelId
        if let slash = modelId.firstIndex(of: "/") {
            org = String(modelId[..<slash])
            full = String(modelId[modelId.index(after: slash)...])
        }
        if let o = org, o.hasPrefix(".") || o.isEmpty { org = nil }
        var parts = full.split(separator: "-").map(String.init)
        var types = [Set<String>](repeating: [], count: parts.count)
        for (i, part) in parts.enumerated() {
            if Self.full("(v|iter)?\\d+([.]\\d+)*", part) {
                types[i].insert("version")
            } else if Self.full("i?q\\d(_\\w)*|b?fp?(16|32)", part) {
                types[i].insert("type"); parts[i] = part.uppercased()
            } else if i > 0, Self.full("(([A]|\\d+[x])?\\d+([._]\\d+)?[KMBT][\\d]?|small|mini|medium|large|x?xl)", part) {
                var p = part.replacingOccurrences(of: "_", with: ".")
                if let last = p.last, last.isNumber, p.count >= 2 {
                    let chars = Array(p)
                    p = String(chars[..<(chars.count - 2)]) + "." + String(chars[chars.count - 1]) + String(chars[chars.count - 2])
                }
                let chars = Array(p)
                if chars.count > 1, chars[chars.count - 2].isNumber, "kmbt".contains(chars[chars.count - 1]) {
                    p = String(chars.dropLast()) + chars[chars.count - 1].uppercased()
                }
                if totalParams != 0, let unitIdx = " KMBT".firstIndex(of: p.last ?? " "), let v = Double(p.dropLast()) {
                    let label = v * pow(1000, Double(" KMBT".distance(from: " KMBT".startIndex, to: unitIdx)))
                    if totalParams > 0 && abs(label - Double(totalParams)) > Double(7 * totalParams / 8) {
                        types[i].insert("finetune")
                        p = String(p.dropLast()) + (p.last.map { String($0).lowercased() } ?? "")
                    }
                }
                if types[i].isEmpty { types[i].insert("size_label") }
                parts[i] = p
            } else if i > 0, Self.full("chat|instruct|vision|lora", part) {
                types[i].insert("finetune")
            }
        }
        let hasNumericSize = zip(parts, types).contains { $1.contains("size_label") && $0.contains(where: \.isNumber) }
        if hasNumericSize {
            for i in parts.indices where types[i].contains("size_label") && parts[i].allSatisfy(\.isLetter) {
                types[i].remove("size_label")
            }
        }
        var atStart = true
        for i in parts.indices {
            if atStart && ((types[i].isEmpty && (parts[i].first?.isLetter ?? false)) || types[i].contains("version")) {
                types[i].insert("basename")
            } else {
                atStart = false
                if types[i].isEmpty { types[i].insert("finetune") }
            }
        }
        for i in parts.indices.reversed() {
            if types[i].contains("basename") && types[i].count > 1 { types[i].remove("basename") } else { break }
        }
        func join(_ t: String, excluding: String? = nil) -> String? {
            var seen: [String] = []
            for i in parts.indices where types[i].contains(t) && !(excluding.map { types[i].contains($0) } ?? false) {
                if t == "size_label" && seen.contains(parts[i]) { continue }
                seen.append(parts[i])
            }
            return seen.isEmpty ? nil : seen.joined(separator: "-")
        }
        var basename = join("basename")
        let size = join("size_label"), finetune = join("finetune"), version = join("version", excluding: "basename")
        if size == nil && finetune == nil && version == nil { basename = nil }
        m.name = idToTitle(full)
        m.organization = org.map(idToTitle)
        m.basename = basename
        m.finetune = finetune
        m.version = version
        m.sizeLabel = size
        return m
    }

    /// The keys in the order gguf-py's `set_gguf_meta_model` writes them.
    public func keys() -> [(String, GGUFValue)] {
        var kv: [(String, GGUFValue)] = []
        if let v = name { kv.append(("general.name", .string(v))) }
        if let v = version { kv.append(("general.version", .string(v))) }
        if let v = organization { kv.append(("general.organization", .string(v))) }
        if let v = finetune { kv.append(("general.finetune", .string(v))) }
        if let v = basename { kv.append(("general.basename", .string(v))) }
        if let v = sizeLabel { kv.append(("general.size_label", .string(v))) }
        return kv
    }
}
