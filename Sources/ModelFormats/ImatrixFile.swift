import Foundation
import TensorCore

/// An importance matrix: per weight tensor, Σx² per input column and the number of activation rows seen,
/// in llama.cpp's GGUF format (`<name>.in_sum2`, `<name>.counts`, `imatrix.*` keys) or the legacy `.dat`.
public struct ImatrixFile {
    public struct Entry: Equatable {
        public var sums: [Float]
        public var counts: [Int]  // per matrix (1 for dense weights); legacy: [ncall]
    }

    public var entries: [String: Entry] = [:]
    public var datasets: [String] = []
    public var chunkCount = 0
    public var chunkSize = 0
    public var isLegacy = false
    public var hasMetadata = false

    public init() {}

    public static func load(path: String) throws -> ImatrixFile {
        let m = try MappedFile(path: path)
        if m.size >= 4, m.bytes.loadUnaligned(as: UInt32.self) == GGUF.magic {
            return try loadGGUF(try GGUFFile(path: path))
        }
        return try loadLegacy(m.bytes, file: path)
    }

    static func loadGGUF(_ g: GGUFFile) throws -> ImatrixFile {
        var f = ImatrixFile()
        guard !g.tensors.isEmpty else { throw QKError(file: g.path, "no data in imatrix file") }
        f.datasets = g["imatrix.datasets"]?.strings ?? []
        f.hasMetadata = g["imatrix.datasets"] != nil && g["imatrix.chunk_count"] != nil && g["imatrix.chunk_size"] != nil
        f.chunkCount = g["imatrix.chunk_count"]?.int ?? 0
        f.chunkSize = g["imatrix.chunk_size"]?.int ?? 0
        var sums: [String: GGUFTensorInfo] = [:], counts: [String: GGUFTensorInfo] = [:]
        for t in g.tensors {
            if t.name.hasSuffix(".in_sum2") { sums[String(t.name.dropLast(8))] = t }
            else if t.name.hasSuffix(".counts") { counts[String(t.name.dropLast(7))] = t }
        }
        for name in Set(sums.keys).union(counts.keys).sorted() {
            guard let s = sums[name], let c = counts[name] else { throw QKError(file: g.path, "mismatched sums and counts for \(name)") }
            guard s.type == .f32, c.type == .f32 else { throw QKError(file: g.path, "sums and counts for \(name) must be F32") }
            let sv = try floats(g, s), cv = try floats(g, c)
            guard !cv.isEmpty, sv.count % cv.count == 0 else { throw QKError(file: g.path, "\(name): \(sv.count) sums do not split into \(cv.count) matrices") }
            if let bad = cv.first(where: { !$0.isFinite || $0 < 0 || $0 > 1e15 }) { throw QKError(file: g.path, "\(name): count \(bad) is not a token count") }
            f.entries[name] = Entry(sums: sv, counts: cv.map { Int($0.rounded(.toNearestOrAwayFromZero)) })
        }
        return f
    }

    static func floats(_ g: GGUFFile, _ t: GGUFTensorInfo) throws -> [Float] {
        let b = g.bytes(of: t)
        return (0..<t.elementCount).map { Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
    }

    static func loadLegacy(_ bytes: UnsafeRawBufferPointer, file: String) throws -> ImatrixFile {
        var r = ByteReader(bytes, file: file)
        var f = ImatrixFile()
        f.isLegacy = true
        let n = Int(try r.i32("entry count"))
        guard n >= 1, n <= r.remaining / 12 else { throw QKError(file: file, "not an imatrix file (entry count \(n))") }
        for i in 0..<n {
            let len = Int(try r.i32("name length of entry \(i + 1)"))
            guard len >= 0, len <= 4096 else { throw QKError(file: file, "entry \(i + 1): bad name length \(len)") }
            let name = try r.utf8(len, "name of entry \(i + 1)")
            let ncall = Int(try r.i32("ncall of \(name)"))
            let nval = Int(try r.i32("value count of \(name)"))
            guard nval >= 1, nval <= r.remaining / 4 else { throw QKError(file: file, "entry \(name): bad value count \(nval)") }
            let raw = try r.raw(4 * nval, "values of \(name)")
            let v = (0..<nval).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            f.entries[name] = Entry(sums: v, counts: [ncall])
        }
        if r.remaining >= 4 {
            f.chunkCount = Int(try r.i32("chunk count"))
            if r.remaining >= 4 {
                let len = Int(try r.i32("dataset length"))
                if len > 0, len <= r.remaining { f.datasets = [try r.utf8(len, "dataset name")] }
            }
        }
        return f
    }

    /// The per-column weights llama-quantize uses: Σx²/count (GGUF; all 1 when a count is 0) or value/ncall (legacy).
    public func weights(_ name: String) -> [Float]? {
        guard let e = entries[name] else { return nil }
        var out = [Float](repeating: 0, count: e.sums.count)
        if !isLegacy {
            let ne0 = e.sums.count / e.counts.count
            for (j, c) in e.counts.enumerated() {
                let count = Float(c)
                for i in 0..<ne0 { out[j * ne0 + i] = count > 0 ? e.sums[j * ne0 + i] / count : 1 }
            }
        } else {
            let ncall = e.counts.first ?? 0
            for i in out.indices { out[i] = ncall > 0 ? e.sums[i] / Float(ncall) : e.sums[i] }
        }
        return out
    }
}
