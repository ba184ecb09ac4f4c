import Foundation
import TensorCore

/// A JSON document as a value. Objects keep their key order (writers here emit keys in a fixed order),
/// integers stay integers and booleans stay booleans, which config files and GGUF value types depend on.
public indirect enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.double(x), .double(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case let .object(kv) = self { return kv.first(where: { $0.0 == key })?.1 }
        return nil
    }

    public var string: String? { if case let .string(s) = self { return s }; return nil }
    public var bool: Bool? { if case let .bool(b) = self { return b }; return nil }
    public var array: [JSONValue]? { if case let .array(a) = self { return a }; return nil }
    public var object: [(String, JSONValue)]? { if case let .object(o) = self { return o }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }

    /// An integer value (a double only if it is integral).
    public var int: Int? {
        switch self {
        case let .int(i): return Int(exactly: i)
        case let .double(d): return d.rounded() == d && abs(d) < 9e15 ? Int(d) : nil
        default: return nil
        }
    }

    public var double: Double? {
        switch self {
        case let .int(i): return Double(i)
        case let .double(d): return d
        default: return nil
        }
    }
}

// MARK: - Parsing

public enum JSONParser {
    /// Parses a JSON text. `file` names the source in errors.
    public static func parse(_ data: UnsafeRawBufferPointer, file: String) throws -> JSONValue {
        var p = Parser(bytes: data.bindMemory(to: UInt8.self), file: file)
        p.skipWS()
        let v = try p.value(depth: 0)
        p.skipWS()
        if p.i != p.bytes.count { throw p.err("unexpected data after the JSON value") }
        return v
    }

    public static func parse(_ data: Data, file: String) throws -> JSONValue {
        try data.withUnsafeBytes { try parse($0, file: file) }
    }

    public static func parse(file path: String) throws -> JSONValue {
        let m = try MappedFile(path: path)
        return try parse(m.bytes, file: path)
    }

    struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        let file: String
        var i = 0

        func err(_ what: String) -> QKError { QKError(file: file, "invalid JSON at byte \(i): \(what)") }

        mutating func skipWS() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0a || bytes[i] == 0x0d || bytes[i] == 0x09 { i += 1 }
        }

        mutating func value(depth: Int) throws -> JSONValue {
            if depth > 256 { throw err("nesting deeper than 256") }
            guard i < bytes.count else { throw err("unexpected end of input") }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                var kv: [(String, JSONValue)] = []
                skipWS()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(kv) }
                while true {
                    skipWS()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw err("expected a string key") }
                    let k = try string()
                    skipWS()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw err("expected ':'") }
                    i += 1
                    skipWS()
                    kv.append((k, try value(depth: depth + 1)))
                    skipWS()
                    guard i < bytes.count else { throw err("unterminated object") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(kv) }
                    throw err("expected ',' or '}'")
                }
            case UInt8(ascii: "["):
                i += 1
                var a: [JSONValue] = []
                skipWS()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                while true {
                    skipWS()
                    a.append(try value(depth: depth + 1))
                    skipWS()
                    guard i < bytes.count else { throw err("unterminated array") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                    throw err("expected ',' or ']'")
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "N"): try literal("NaN"); return .double(.nan)  // Python's json writes these
            case UInt8(ascii: "I"): try literal("Infinity"); return .double(.infinity)
            default: return try number()
            }
        }

        mutating func literal(_ s: String) throws {
            for c in s.utf8 {
                guard i < bytes.count, bytes[i] == c else { throw err("expected '\(s)'") }
                i += 1
            }
        }

        mutating func number() throws -> JSONValue {
            let start = i
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") {
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "I") { try literal("Infinity"); return .double(-.infinity) }
            }
            var isFloat = false
            while i < bytes.count {
                let c = bytes[i]
                if c >= 0x30 && c <= 0x39 { i += 1; continue }
                if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
                    isFloat = true; i += 1; continue
                }
                break
            }
            if i == start { throw err("unexpected character '\(Character(Unicode.Scalar(bytes[start])))'") }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
            if !isFloat, let v = Int64(text) { return .int(v) }
            guard let d = Double(text) else { throw err("bad number '\(text)'") }
            return .double(d)
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= bytes.count else { throw err("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw err("bad \\u escape")
                }
                v = v * 16 + d
                i += 1
            }
            return v
        }

        mutating func string() throws -> String {
            i += 1  // opening quote
            var out: [UInt8] = []
            var runStart = i
            while true {
                guard i < bytes.count else { throw err("unterminated string") }
                let c = bytes[i]
                if c == UInt8(ascii: "\"") {
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i]))
                    i += 1
                    break
                }
                if c == UInt8(ascii: "\\") {
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i]))
                    i += 1
                    guard i < bytes.count else { throw err("unterminated escape") }
                    let e = bytes[i]
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""): out.append(0x22)
                    case UInt8(ascii: "\\"): out.append(0x5c)
                    case UInt8(ascii: "/"): out.append(0x2f)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0c)
                    case UInt8(ascii: "n"): out.append(0x0a)
                    case UInt8(ascii: "r"): out.append(0x0d)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var cp = try hex4()
                        if cp >= 0xD800 && cp < 0xDC00 {
                            if i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                                i += 2
                                let lo = try hex4()
                                if lo >= 0xDC00 && lo < 0xE000 {
                                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                                } else { cp = 0xFFFD }
                            } else { cp = 0xFFFD }
                        } else if cp >= 0xDC00 && cp < 0xE000 { cp = 0xFFFD }
                        let scalar = Unicode.Scalar(cp) ?? "\u{FFFD}"
                        out.append(contentsOf: Array(String(Character(scalar)).utf8))
                    default: throw err("bad escape '\\\(Character(Unicode.Scalar(e)))'")
                    }
                    runStart = i
                    continue
                }
                if c < 0x20 { throw err("control character in string") }
                i += 1
            }
            guard let s = out.withUnsafeBytes({ String(validating: $0, as: UTF8.self) }) else {
                throw err("string is not valid UTF-8")
            }
            return s
        }
    }
}

// MARK: - Writing

extension JSONValue {
    /// JSON text; `indent` > 0 pretty-prints with that many spaces per level.
    public func serialized(indent: Int = 2) -> String {
        var out = ""
        write(&out, indent: indent, level: 0)
        return out
    }

    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if u.value < 0x20 || u.value == 0x7f {
                    out += String(format: "\\u%04lx", UInt(u.value))
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    public static func formatDouble(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        if d.rounded() == d && abs(d) < 1e16 { return String(format: "%.1f", d) }
        return "\(d)"
    }

    func write(_ out: inout String, indent: Int, level: Int) {
        let nl = indent > 0 ? "\n" : ""
        let pad = { (l: Int) in String(repeating: " ", count: indent * l) }
        switch self {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .int(i): out += String(i)
        case let .double(d): out += JSONValue.formatDouble(d)
        case let .string(s): out += JSONValue.quote(s)
        case let .array(a):
            if a.isEmpty { out += "[]"; return }
            out += "[" + nl
            for (k, v) in a.enumerated() {
                out += pad(level + 1)
                v.write(&out, indent: indent, level: level + 1)
                out += (k + 1 < a.count ? "," : "") + nl
            }
            out += pad(level) + "]"
        case let .object(kv):
            if kv.isEmpty { out += "{}"; return }
            out += "{" + nl
            for (k, (key, v)) in kv.enumerated() {
                out += pad(level + 1) + JSONValue.quote(key) + (indent > 0 ? ": " : ":")
                v.write(&out, indent: indent, level: level + 1)
                out += (k + 1 < kv.count ? "," : "") + nl
            }
            out += pad(level) + "}"
        }
    }
}
