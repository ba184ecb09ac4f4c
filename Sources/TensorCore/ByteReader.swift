/// Bounds-checked little-endian reader over a byte buffer. Every read past the end is an error
/// that names the file and the offset.
public struct ByteReader {
    public let bytes: UnsafeRawBufferPointer
    public let file: String
    public private(set) var offset: Int

    public init(_ bytes: UnsafeRawBufferPointer, file: String, offset: Int = 0) {
        self.bytes = bytes
        self.file = file
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }

    public mutating func need(_ n: Int, _ what: String) throws {
        if n < 0 || n > remaining {
            throw QKError(file: file, "truncated: \(what) needs \(n) bytes at offset \(offset), only \(max(0, remaining)) left")
        }
    }

    mutating func load<T: FixedWidthInteger>(_ type: T.Type, _ what: String) throws -> T {
        try need(MemoryLayout<T>.size, what)
        let v = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    public mutating func u8(_ what: String = "u8") throws -> UInt8 { try load(UInt8.self, what) }
    public mutating func i8(_ what: String = "i8") throws -> Int8 { try load(Int8.self, what) }
    public mutating func u16(_ what: String = "u16") throws -> UInt16 { try load(UInt16.self, what) }
    public mutating func i16(_ what: String = "i16") throws -> Int16 { try load(Int16.self, what) }
    public mutating func u32(_ what: String = "u32") throws -> UInt32 { try load(UInt32.self, what) }
    public mutating func i32(_ what: String = "i32") throws -> Int32 { try load(Int32.self, what) }
    public mutating func u64(_ what: String = "u64") throws -> UInt64 { try load(UInt64.self, what) }
    public mutating func i64(_ what: String = "i64") throws -> Int64 { try load(Int64.self, what) }
    public mutating func f32(_ what: String = "f32") throws -> Float { Float(bitPattern: try u32(what)) }
    public mutating func f64(_ what: String = "f64") throws -> Double { Double(bitPattern: try u64(what)) }

    public mutating func raw(_ n: Int, _ what: String) throws -> UnsafeRawBufferPointer {
        try need(n, what)
        let r = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
        offset += n
        return r
    }

    /// UTF-8 text of `n` bytes (invalid sequences are an error: names and keys must be text).
    public mutating func utf8(_ n: Int, _ what: String) throws -> String {
        let r = try raw(n, what)
        guard let s = String(validating: r, as: UTF8.self) else {
            throw QKError(file: file, "\(what) at offset \(offset - n) is not valid UTF-8")
        }
        return s
    }

    public mutating func seek(_ to: Int) throws {
        if to < 0 || to > bytes.count { throw QKError(file: file, "offset \(to) is outside the file (\(bytes.count) bytes)") }
        offset = to
    }
}
