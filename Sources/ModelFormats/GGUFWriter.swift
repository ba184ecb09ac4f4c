import TensorCore

/// Writes GGUF v3: header, metadata, tensor infos with offsets from the layout rule, then tensor data
/// streamed in order, each blob zero-padded to the alignment (the last one too, as gguf-py and ggml do).
public final class GGUFWriter {
    public let path: String
    public let alignment: Int
    public let tensors: [GGUFTensorInfo]
    private let out: OutputFile
    private var next = 0

    /// Validates names, dims and row lengths, then writes everything up to the data section.
    public init(path: String, metadata: [(String, GGUFValue)], tensors: [(name: String, ne: [Int], type: GGMLType)]) throws {
        self.path = path
        var align = GGUF.defaultAlignment
        if let a = metadata.first(where: { $0.0 == "general.alignment" })?.1 {
            guard case let .uint32(v) = a, v > 0, v & (v - 1) == 0 else { throw QKError(file: path, "general.alignment must be a UINT32 power of 2") }
            align = Int(v)
        }
        alignment = align
        var seenKeys = Set<String>()
        for (k, _) in metadata {
            guard !k.isEmpty, seenKeys.insert(k).inserted else { throw QKError(file: path, "duplicate or empty metadata key '\(k)'") }
        }
        var infos: [GGUFTensorInfo] = []
        var off = 0
        var seen = Set<String>()
        for t in tensors {
            guard t.name.utf8.count <= GGUF.maxNameBytes else { throw QKError(file: path, "tensor name \(t.name) is longer than \(GGUF.maxNameBytes) bytes") }
            guard seen.insert(t.name).inserted else { throw QKError(file: path, "duplicate tensor name \(t.name)") }
            guard (1...GGUF.maxDims).contains(t.ne.count) else { throw QKError(file: path, "tensor \(t.name) has \(t.ne.count) dimensions") }
            guard t.ne[0] % t.type.blockSize == 0 else {
                throw QKError(file: path, "tensor \(t.name): row length \(t.ne[0]) is not a multiple of \(t.type.name)'s block size \(t.type.blockSize)")
            }
            let info = GGUFTensorInfo(name: t.name, ne: t.ne, type: t.type, offset: off)
            infos.append(info)
            off += padTo(info.byteCount, align)
        }
        self.tensors = infos

        var w = ByteWriter(capacity: 1 << 20)
        w.u32(GGUF.magic)
        w.u32(3)
        w.u64(UInt64(infos.count))
        w.u64(UInt64(metadata.count))
        for (k, v) in metadata {
            Self.putString(&w, k)
            w.u32(v.type.rawValue)
            Self.putValue(&w, v)
        }
        for t in infos {
            Self.putString(&w, t.name)
            w.u32(UInt32(t.ne.count))
            for d in t.ne { w.u64(UInt64(d)) }
            w.u32(t.type.rawValue)
            w.u64(UInt64(t.offset))
        }
        w.pad(to: align)
        out = try OutputFile(path: path)
        try out.write(w.bytes)
    }

    static func putString(_ w: inout ByteWriter, _ s: String) {
        let u = Array(s.utf8)
        w.u64(UInt64(u.count))
        w.raw(u)
    }

    static func putValue(_ w: inout ByteWriter, _ v: GGUFValue) {
        switch v {
        case let .uint8(x): w.u8(x)
        case let .int8(x): w.u8(UInt8(bitPattern: x))
        case let .uint16(x): w.u16(x)
        case let .int16(x): w.put(x)
        case let .uint32(x): w.u32(x)
        case let .int32(x): w.i32(x)
        case let .float32(x): w.f32(x)
        case let .bool(x): w.u8(x ? 1 : 0)
        case let .string(s): putString(&w, s)
        case let .uint64(x): w.u64(x)
        case let .int64(x): w.i64(x)
        case let .float64(x): w.f64(x)
        case let .array(t, a):
            w.u32(t.rawValue)
            w.u64(UInt64(a.count))
            for e in a { putValue(&w, e) }
        }
    }

    /// Writes the data of the next tensor (in declaration order).
    public func writeTensor(_ bytes: UnsafeRawBufferPointer) throws {
        guard next < tensors.count else { throw QKError(file: path, "more tensor data than tensor infos") }
        let t = tensors[next]
        guard bytes.count == t.byteCount else {
            throw QKError(file: path, "tensor \(t.name): \(bytes.count) bytes of data, expected \(t.byteCount)")
        }
        try out.write(bytes)
        try out.writeZeros(padTo(bytes.count, alignment) - bytes.count)
        next += 1
    }

    public func writeTensor(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try writeTensor($0) } }

    /// Checks every tensor was written, then renames the file into place.
    public func finish() throws {
        guard next == tensors.count else { throw QKError(file: path, "only \(next) of \(tensors.count) tensors were written") }
        try out.commit()
    }

    public func abort() { out.abort() }
}
