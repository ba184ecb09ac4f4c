import TensorCore

/// One tensor of a GGUF file. `ne` is ggml's dimension order (innermost first): an HF `[out, in]`
/// matrix has `ne = [in, out]`. `offset` counts from the start of the data section.
public struct GGUFTensorInfo: Sendable {
    public let name: String
    public let ne: [Int]
    public let type: GGMLType
    public let offset: Int

    public init(name: String, ne: [Int], type: GGMLType, offset: Int = 0) {
        self.name = name; self.ne = ne; self.type = type; self.offset = offset
    }

    public var elementCount: Int { ne.reduce(1, *) }
    public var byteCount: Int { elementCount / type.blockSize * type.typeSize }
    /// Row length (ne[0]) and number of rows.
    public var rowLength: Int { ne.first ?? 1 }
    public var rowCount: Int { ne.dropFirst().reduce(1, *) }
    /// The HF-order shape (`ne` reversed).
    public var shape: [Int] { ne.reversed() }
}

public enum GGUF {
    public static let magic: UInt32 = 0x4655_4747  // "GGUF"
    public static let defaultAlignment = 32
    public static let maxNameBytes = 63
    public static let maxDims = 4
    public static let maxArrayDepth = 8
}

/// A memory-mapped GGUF file (v3; v2 also read), validated as llama.cpp's gguf.cpp validates it.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let file: MappedFile
    public let version: UInt32
    /// Metadata in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Absolute offset of the data section.
    public let dataOffset: Int
    private let kvIndex: [String: Int]
    private let tensorIndex: [String: Int]

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        var r = ByteReader(file.bytes, file: path)
        let m = try r.u32("magic")
        guard m == GGUF.magic else {
            throw QKError(file: path, "not a GGUF file (magic 0x\(String(m, radix: 16)), expected 0x46554747 \"GGUF\")")
        }
        version = try r.u32("version")
        if version == 1 { throw QKError(file: path, "GGUF v1 is no longer supported") }
        guard version == 2 || version == 3 else { throw QKError(file: path, "unsupported GGUF version \(version)") }
        let nTensors64 = try r.u64("tensor count")
        let nKV64 = try r.u64("metadata count")
        // Each KV needs at least 8+1+4+1 bytes, each tensor info at least 8+1+4+8+4+8.
        guard nKV64 <= UInt64(r.remaining / 13) else { throw QKError(file: path, "metadata count \(nKV64) is impossible for a \(file.size)-byte file") }
        guard nTensors64 <= UInt64(r.remaining / 33) else { throw QKError(file: path, "tensor count \(nTensors64) is impossible for a \(file.size)-byte file") }

        var kv: [(key: String, value: GGUFValue)] = []
        var kvIdx: [String: Int] = [:]
        for k in 0..<Int(nKV64) {
            let key = try Self.readString(&r, "metadata key \(k)")
            if key.isEmpty { throw QKError(file: path, "metadata key \(k) is empty") }
            if kvIdx[key] != nil { throw QKError(file: path, "duplicate metadata key \(key)") }
            let tRaw = try r.u32("type of \(key)")
            guard let t = GGUFValueType(rawValue: tRaw) else { throw QKError(file: path, "metadata \(key): bad value type \(tRaw)") }
            let v = try Self.readValue(&r, t, key: key, depth: 0)
            kvIdx[key] = kv.count
            kv.append((key, v))
        }
        metadata = kv
        kvIndex = kvIdx

        var align = GGUF.defaultAlignment
        if let a = kvIdx["general.alignment"].map({ kv[$0].value }) {
            guard case let .uint32(av) = a, av > 0, av & (av - 1) == 0 else {
                throw QKError(file: path, "general.alignment must be a UINT32 power of 2, found \(a.typeName) \(a.summary())")
            }
            align = Int(av)
        }
        alignment = align

        var infos: [GGUFTensorInfo] = []
        var tIdx: [String: Int] = [:]
        for k in 0..<Int(nTensors64) {
            let name = try Self.readString(&r, "tensor name \(k)")
            if name.utf8.count > GGUF.maxNameBytes { throw QKError(file: path, "tensor name \(name.prefix(40))... is \(name.utf8.count) bytes (at most \(GGUF.maxNameBytes))") }
            if name.isEmpty { throw QKError(file: path, "tensor \(k) has an empty name") }
            if tIdx[name] != nil { throw QKError(file: path, "duplicate tensor name \(name)") }
            let nd = try r.u32("n_dims of \(name)")
            guard nd >= 1 && nd <= UInt32(GGUF.maxDims) else { throw QKError(file: path, "tensor \(name): \(nd) dimensions (1 to \(GGUF.maxDims) allowed)") }
            var ne: [Int] = []
            for _ in 0..<Int(nd) {
                let d = try r.i64("dimension of \(name)")
                guard d >= 0 else { throw QKError(file: path, "tensor \(name): negative dimension \(d)") }
                ne.append(Int(d))
            }
            let tid = try r.u32("type of \(name)")
            let type = try GGMLType.from(id: tid, file: path, tensor: name)
            let off64 = try r.u64("offset of \(name)")
            let count = try Checked.product(ne, "\(path): tensor \(name)")
            guard ne[0] % type.blockSize == 0 else {
                throw QKError(file: path, "tensor \(name): row length \(ne[0]) is not a multiple of \(type.name)'s block size \(type.blockSize)")
            }
            guard off64 <= UInt64(Int.max) else { throw QKError(file: path, "tensor \(name): offset \(off64) overflows") }
            let info = GGUFTensorInfo(name: name, ne: ne, type: type, offset: Int(off64))
            _ = try Checked.mul(count / type.blockSize, type.typeSize, "\(path): tensor \(name)")
            tIdx[name] = infos.count
            infos.append(info)
        }
        // Offsets must follow the layout rule: each tensor starts where the previous one's padded bytes end.
        var expected = 0
        for t in infos {
            guard t.offset == expected else {
                throw QKError(file: path, "tensor \(t.name): offset \(t.offset), expected \(expected) (tensor data must be laid out in order, each padded to \(align) bytes)")
            }
            expected = try Checked.add(expected, padTo(t.byteCount, align), "\(path): tensor data size")
        }
        let dataStart = padTo(r.offset, align)
        dataOffset = dataStart
        // The last tensor's padding may be missing in some writers; the data itself must be there.
        if let last = infos.last {
            let end = try Checked.add(dataStart, try Checked.add(last.offset, last.byteCount, path), path)
            guard end <= file.size else {
                throw QKError(file: path, "truncated: tensor data ends at byte \(end) but the file has \(file.size) bytes")
            }
        }
        tensors = infos
        tensorIndex = tIdx
    }

    static func readString(_ r: inout ByteReader, _ what: String) throws -> String {
        let n = try r.u64("length of \(what)")
        guard n <= UInt64(r.remaining) else {
            throw QKError(file: r.file, "\(what): string length \(n) runs past the end of the file")
        }
        return try r.utf8(Int(n), what)
    }

    static func readValue(_ r: inout ByteReader, _ t: GGUFValueType, key: String, depth: Int) throws -> GGUFValue {
        switch t {
        case .uint8: return .uint8(try r.u8(key))
        case .int8: return .int8(try r.i8(key))
        case .uint16: return .uint16(try r.u16(key))
        case .int16: return .int16(try r.i16(key))
        case .uint32: return .uint32(try r.u32(key))
        case .int32: return .int32(try r.i32(key))
        case .float32: return .float32(try r.f32(key))
        case .bool:
            let b = try r.u8(key)
            guard b <= 1 else { throw QKError(file: r.file, "metadata \(key): bool byte \(b) is not 0 or 1") }
            return .bool(b == 1)
        case .string: return .string(try readString(&r, "metadata \(key)"))
        case .uint64: return .uint64(try r.u64(key))
        case .int64: return .int64(try r.i64(key))
        case .float64: return .float64(try r.f64(key))
        case .array:
            guard depth < GGUF.maxArrayDepth else { throw QKError(file: r.file, "metadata \(key): arrays nested deeper than \(GGUF.maxArrayDepth)") }
            let etRaw = try r.u32("element type of \(key)")
            guard let et = GGUFValueType(rawValue: etRaw) else { throw QKError(file: r.file, "metadata \(key): bad array element type \(etRaw)") }
            let n = try r.u64("length of \(key)")
            let minSize: UInt64
            switch et {
            case .uint8, .int8, .bool: minSize = 1
            case .uint16, .int16: minSize = 2
            case .uint32, .int32, .float32: minSize = 4
            case .uint64, .int64, .float64, .string: minSize = 8
            case .array: minSize = 12
            }
            guard n <= UInt64(r.remaining) / minSize else {
                throw QKError(file: r.file, "metadata \(key): array of \(n) elements cannot fit in the \(r.remaining) bytes left")
            }
            var a: [GGUFValue] = []
            a.reserveCapacity(Int(n))
            for _ in 0..<Int(n) { a.append(try readValue(&r, et, key: key, depth: depth + 1)) }
            return .array(et, a)
        }
    }

    public subscript(key: String) -> GGUFValue? { kvIndex[key].map { metadata[$0].value } }

    public func tensor(_ name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }

    public func bytes(of t: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        file.slice((dataOffset + t.offset)..<(dataOffset + t.offset + t.byteCount))
    }

    /// Lets the kernel drop the pages of a tensor already consumed.
    public func release(_ t: GGUFTensorInfo) {
        file.release((dataOffset + t.offset)..<(dataOffset + t.offset + t.byteCount))
    }

    /// A required integer key, with an error naming the file when missing or of the wrong kind.
    public func requireInt(_ key: String) throws -> Int {
        guard let v = self[key] else { throw QKError(file: path, "missing metadata key \(key)") }
        guard let i = v.int else { throw QKError(file: path, "metadata \(key) is \(v.typeName), expected an integer") }
        return i
    }
}
