import Foundation
import TensorCore

/// One tensor of a safetensors file: dtype, HF shape, and its bytes' absolute range in the file.
public struct SafetensorsTensor: Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let range: Range<Int>
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A memory-mapped safetensors file, validated on open:
/// header length inside the file and under a cap, UTF-8 JSON object, known dtypes, non-negative shapes,
/// offsets inside the data area, byte length = element count × dtype size, no overlaps.
public final class SafetensorsFile: @unchecked Sendable {
    public static let maxHeaderBytes = 100 << 20

    public let path: String
    public let file: MappedFile
    public let metadata: [String: String]
    /// Tensors sorted by name (the order llama.cpp's converter reads them in).
    public let tensors: [SafetensorsTensor]
    private let byName: [String: Int]

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        var r = ByteReader(file.bytes, file: path)
        if file.size < 8 { throw QKError(file: path, "truncated: \(file.size) bytes, a safetensors file starts with an 8-byte header length") }
        let n64 = try r.u64("header length")
        guard n64 <= UInt64(Self.maxHeaderBytes) else {
            throw QKError(file: path, "header length \(n64) is larger than the \(Self.maxHeaderBytes)-byte cap")
        }
        let n = Int(n64)
        guard n <= r.remaining else {
            throw QKError(file: path, "header length \(n) runs past the end of the file (\(file.size) bytes)")
        }
        let dataStart = 8 + n
        let dataSize = file.size - dataStart
        let headerBytes = try r.raw(n, "header")
        let header: JSONValue
        do { header = try JSONParser.parse(headerBytes, file: path) } catch let e as QKError {
            throw QKError("\(e.message) (safetensors header)")
        }
        guard let entries = header.object else { throw QKError(file: path, "header is not a JSON object") }

        var meta: [String: String] = [:]
        var list: [SafetensorsTensor] = []
        for (name, v) in entries {
            if name == "__metadata__" {
                guard let o = v.object else { throw QKError(file: path, "__metadata__ is not an object") }
                for (k, mv) in o {
                    guard let s = mv.string else { throw QKError(file: path, "__metadata__[\(k)] is not a string") }
                    meta[k] = s
                }
                continue
            }
            guard let dt = v["dtype"]?.string else { throw QKError(file: path, "tensor \(name): missing dtype") }
            guard let dtype = DType(rawValue: dt) else { throw QKError(file: path, "tensor \(name): unknown dtype \(dt)") }
            guard let shapeArr = v["shape"]?.array else { throw QKError(file: path, "tensor \(name): missing shape") }
            var shape: [Int] = []
            for d in shapeArr {
                guard let x = d.int, x >= 0 else { throw QKError(file: path, "tensor \(name): bad dimension \(d.serialized(indent: 0)) in shape") }
                shape.append(x)
            }
            guard let offs = v["data_offsets"]?.array, offs.count == 2, let b = offs[0].int, let e = offs[1].int else {
                throw QKError(file: path, "tensor \(name): data_offsets must be [begin, end]")
            }
            guard b >= 0, e >= b, e <= dataSize else {
                throw QKError(file: path, "tensor \(name): data_offsets [\(b), \(e)] lie outside the data area (\(dataSize) bytes)")
            }
            let count = try Checked.product(shape, "\(path): tensor \(name)")
            let bytes = try Checked.mul(count, dtype.size, "\(path): tensor \(name)")
            guard bytes == e - b else {
                throw QKError(file: path, "tensor \(name): \(shape) × \(dtype.rawValue) needs \(bytes) bytes but data_offsets span \(e - b)")
            }
            list.append(SafetensorsTensor(name: name, dtype: dtype, shape: shape, range: (dataStart + b)..<(dataStart + e)))
        }
        // No overlaps.
        let byStart = list.filter { !$0.range.isEmpty }.sorted { $0.range.lowerBound < $1.range.lowerBound }
        for k in byStart.indices.dropFirst() where byStart[k].range.lowerBound < byStart[k - 1].range.upperBound {
            throw QKError(file: path, "tensors \(byStart[k - 1].name) and \(byStart[k].name) overlap")
        }
        list.sort { $0.name < $1.name }
        tensors = list
        metadata = meta
        var idx: [String: Int] = [:]
        for (k, t) in list.enumerated() { idx[t.name] = k }
        byName = idx
    }

    public func tensor(_ name: String) -> SafetensorsTensor? { byName[name].map { tensors[$0] } }

    public func bytes(of t: SafetensorsTensor) -> UnsafeRawBufferPointer { file.slice(t.range) }
}

/// Writes a safetensors file: tensors in the given order, header JSON padded with spaces to 8 bytes.
public struct SafetensorsWriter {
    public struct Entry {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        public init(name: String, dtype: DType, shape: [Int]) { self.name = name; self.dtype = dtype; self.shape = shape }
        public var byteCount: Int { shape.reduce(1, *) * dtype.size }
    }

    /// The header bytes (length prefix included) for these tensors.
    public static func header(_ entries: [Entry], metadata: [(String, String)] = [("format", "pt")]) -> [UInt8] {
        var kv: [(String, JSONValue)] = []
        if !metadata.isEmpty { kv.append(("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) }))) }
        var off = 0
        for e in entries {
            kv.append((e.name, .object([
                ("dtype", .string(e.dtype.rawValue)),
                ("shape", .array(e.shape.map { .int(Int64($0)) })),
                ("data_offsets", .array([.int(Int64(off)), .int(Int64(off + e.byteCount))])),
            ])))
            off += e.byteCount
        }
        var json = Array(JSONValue.object(kv).serialized(indent: 0).utf8)
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var w = ByteWriter(capacity: 8 + json.count)
        w.u64(UInt64(json.count))
        w.raw(json)
        return w.bytes
    }

    /// Streams a file: `produce(index)` returns each tensor's bytes in order.
    public static func write(path: String, entries: [Entry], metadata: [(String, String)] = [("format", "pt")],
                             produce: (Int) throws -> [UInt8]) throws {
        let out = try OutputFile(path: path)
        try out.write(header(entries, metadata: metadata))
        for (k, e) in entries.enumerated() {
            let b = try produce(k)
            guard b.count == e.byteCount else { throw QKError(file: path, "tensor \(e.name): produced \(b.count) bytes, expected \(e.byteCount)") }
            try out.write(b)
        }
        try out.commit()
    }
}
