import TensorCore

/// GGUF metadata value types (the u32 tag before each value).
public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    public var name: String { String(describing: self).uppercased() }
}

/// A GGUF metadata value. Arrays carry their element type (also when empty) and may nest.
public indirect enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), array(GGUFValueType, [GGUFValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        }
    }

    /// "ARRAY[STRING]" style type name, for reports and comparisons.
    public var typeName: String {
        if case let .array(t, v) = self {
            if t == .array, let first = v.first { return "ARRAY[\(first.typeName)]" }
            return "ARRAY[\(t.name)]"
        }
        return type.name
    }

    public var int: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(v)
        default: return nil
        }
    }

    public var double: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default: return int.map(Double.init)
        }
    }

    public var string: String? { if case let .string(s) = self { return s }; return nil }
    public var bool: Bool? { if case let .bool(b) = self { return b }; return nil }
    public var array: [GGUFValue]? { if case let .array(_, a) = self { return a }; return nil }
    public var strings: [String]? { array?.compactMap(\.string) }

    /// A short human-readable rendering (arrays summarized).
    public func summary(maxItems: Int = 6) -> String {
        switch self {
        case let .string(s):
            let one = s.replacingOccurrences(of: "\n", with: "\\n")
            return one.count > 80 ? "\"\(one.prefix(77))...\"" : "\"\(one)\""
        case let .array(t, a):
            let head = a.prefix(maxItems).map { $0.summary(maxItems: 2) }.joined(separator: ", ")
            return "[\(t.name) × \(a.count)] [\(head)\(a.count > maxItems ? ", ..." : "")]"
        case let .float32(v): return "\(v)"
        case let .float64(v): return "\(v)"
        case let .bool(b): return b ? "true" : "false"
        default: return int.map(String.init) ?? "?"
        }
    }
}
