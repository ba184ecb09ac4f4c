import Checkpoints
import Foundation
import ModelFormats
import TensorCore

/// What `inspect` reports about a GGUF file, a safetensors file or an HF checkpoint directory.
public struct InspectReport {
    public struct Tensor {
        public let name: String
        public let shape: [Int]
        public let type: String
        public let bytes: Int
        public var elements: Int { shape.reduce(1, *) }
    }

    public let path: String
    public let format: String
    public let fileBytes: Int
    public let metadata: [(String, String, JSONValue)]  // key, type name, value (arrays summarized)
    public let tensors: [Tensor]
    /// A packed checkpoint (GPTQ, AWQ, compressed-tensors): the weights its linears stand for and the bytes that hold
    /// them and everything else (packing metadata such as g_idx left out), as `eval` counts them. Its int32 words are
    /// not parameters.
    public var packed: (description: String, params: Int, bytes: Int)? = nil

    public var totalElements: Int { packed?.params ?? tensors.reduce(0) { $0 + $1.elements } }
    public var totalBytes: Int { packed?.bytes ?? tensors.reduce(0) { $0 + $1.bytes } }
    public var bitsPerWeight: Double { totalElements > 0 ? Double(totalBytes * 8) / Double(totalElements) : 0 }

    public func text() -> String {
        var out = "\(path): \(format), \(fileBytes) bytes\n"
        if !metadata.isEmpty {
            out += "metadata (\(metadata.count)):\n"
            for (k, t, v) in metadata {
                let s: String = v.string.map { s in
                    let one = s.replacingOccurrences(of: "\n", with: "\\n")
                    return one.count > 80 ? "\"\(one.prefix(77))...\"" : "\"\(one)\""
                } ?? v.serialized(indent: 0)
                out += "  \(k) [\(t)] = \(s)\n"
            }
        }
        out += "tensors (\(tensors.count)):\n"
        let w = max(4, tensors.map(\.name.count).max() ?? 4)
        for t in tensors {
            out += "  " + t.name.padding(toLength: w, withPad: " ", startingAt: 0)
                + "  " + "[\(t.shape.map(String.init).joined(separator: ", "))]".padding(toLength: 14, withPad: " ", startingAt: 0)
                + "  " + t.type.padding(toLength: 6, withPad: " ", startingAt: 0) + "  \(t.bytes)\n"
        }
        if let packed { out += "packed: \(packed.description); parameters count each packed linear's unpacked weights\n" }
        out += String(format: "total: %ld parameters, %ld bytes of tensor data, %.4f bits per weight", totalElements, totalBytes, bitsPerWeight)
        return out
    }

    public func json() -> JSONValue {
        .object([
            ("path", .string(path)), ("format", .string(format)), ("file_bytes", .int(Int64(fileBytes))),
            ("metadata", .array(metadata.map { .object([("key", .string($0.0)), ("type", .string($0.1)), ("value", $0.2)]) })),
            ("tensors", .array(tensors.map {
                .object([("name", .string($0.name)), ("shape", .array($0.shape.map { .int(Int64($0)) })), ("type", .string($0.type)), ("bytes", .int(Int64($0.bytes)))])
            })),
            ("packed", packed.map { .string($0.description) } ?? .null),
            ("total_parameters", .int(Int64(totalElements))), ("total_bytes", .int(Int64(totalBytes))),
            ("bits_per_weight", .double(bitsPerWeight)),
        ])
    }
}

public enum Inspector {
    public static func inspect(_ path: String) throws -> InspectReport {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw QKError(file: path, "no such file or directory") }
        if !isDir.boolValue {
            let m = try MappedFile(path: path)
            if path.lowercased().hasSuffix(".gguf") || (m.size >= 4 && m.bytes.loadUnaligned(as: UInt32.self) == GGUF.magic) {
                return try gguf(path)
            }
        }
        return try safetensors(path)
    }

    static func jsonOf(_ v: GGUFValue) -> JSONValue {
        switch v {
        case let .string(s): return .string(s)
        case let .bool(b): return .bool(b)
        case let .float32(f): return .double(Double(f))
        case let .float64(f): return .double(f)
        case let .array(_, a):
            let head = a.prefix(8).map(jsonOf)
            return a.count > 8 ? .object([("count", .int(Int64(a.count))), ("first", .array(head))]) : .array(head)
        default: return .int(Int64(v.int ?? 0))
        }
    }

    static func gguf(_ path: String) throws -> InspectReport {
        let g = try GGUFFile(path: path)
        let md = g.metadata.map { ($0.key, $0.value.typeName, jsonOf($0.value)) }
        let ts = g.tensors.map { InspectReport.Tensor(name: $0.name, shape: $0.ne, type: $0.type.name, bytes: $0.byteCount) }
        return InspectReport(path: path, format: "GGUF v\(g.version)", fileBytes: g.file.size, metadata: md, tensors: ts)
    }

    static func safetensors(_ path: String) throws -> InspectReport {
        let ck = try SafetensorsCheckpoint.open(path)
        var md: [(String, String, JSONValue)] = []
        for f in ck.files { for (k, v) in f.metadata.sorted(by: { $0.key < $1.key }) { md.append((k, "STRING", .string(v))) } }
        let ts = ck.names.compactMap { n in ck.info(n).map { InspectReport.Tensor(name: n, shape: $0.shape, type: $0.dtype.rawValue, bytes: $0.range.count) } }
        let size = ck.files.reduce(0) { $0 + $1.file.size }
        var r = InspectReport(path: path, format: ck.files.count > 1 ? "safetensors (\(ck.files.count) shards)" : "safetensors",
                              fileBytes: size, metadata: md, tensors: ts)
        var isDir: ObjCBool = false
        FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        let config = (isDir.boolValue ? path : (path as NSString).deletingLastPathComponent) + "/config.json"
        if FileManager.default.fileExists(atPath: config), let p = try PackedReader(configPath: config, weights: ck) {
            let (params, bytes) = try p.sizes()
            let kind = "\(p.layout.rawValue)\(p.v1 ? " (v1)" : "") int\(p.bits), group \(p.groupSize), \(p.sym ? "sym" : "asym")"
            r.packed = (kind, params, bytes)
        }
        return r
    }
}
