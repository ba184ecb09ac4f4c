/// Little-endian byte sink into a growable array.
public struct ByteWriter {
    public var bytes: [UInt8] = []

    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    public var count: Int { bytes.count }

    @inlinable public mutating func put<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { put(v) }
    public mutating func u32(_ v: UInt32) { put(v) }
    public mutating func u64(_ v: UInt64) { put(v) }
    public mutating func i32(_ v: Int32) { put(v) }
    public mutating func i64(_ v: Int64) { put(v) }
    public mutating func f32(_ v: Float) { put(v.bitPattern) }
    public mutating func f64(_ v: Double) { put(v.bitPattern) }
    public mutating func raw(_ b: UnsafeRawBufferPointer) { bytes.append(contentsOf: b) }
    public mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }
    public mutating func zeros(_ n: Int) { if n > 0 { bytes.append(contentsOf: repeatElement(0, count: n)) } }
    public mutating func pad(to alignment: Int) { zeros(padTo(bytes.count, alignment) - bytes.count) }
}
