import Foundation

/// Vocabulary pieces by their UTF-8 bytes → token id, looked up from a byte range without allocating: all pieces in
/// one buffer, an open-addressing table of ids (linear probing, load ≤ 0.5). Bytes, not Strings: Swift's String
/// equality is canonical equivalence ("e\u{301}" == "é"), which a tokenizer must not apply. The first id of a
/// repeated piece wins.
struct PieceTable {
    private let bytes: [UInt8]
    private let offsets: [Int]  // piece i is bytes[offsets[i]..<offsets[i + 1]]
    private let slots: [Int32]  // -1: empty
    private let mask: Int

    init(_ pieces: [[UInt8]]) {
        var b: [UInt8] = []
        var o = [0]
        o.reserveCapacity(pieces.count + 1)
        for p in pieces {
            b += p
            o.append(b.count)
        }
        bytes = b
        offsets = o
        var n = 16
        while n < 2 * pieces.count { n *= 2 }
        mask = n - 1
        var s = [Int32](repeating: -1, count: n)
        b.withUnsafeBufferPointer { all in
            let base = all.baseAddress ?? Self.nowhere
            for (i, p) in pieces.enumerated() {
                var h = Self.hash(base + o[i], p.count) & (n - 1)
                while s[h] >= 0 {
                    let j = Int(s[h])
                    if o[j + 1] - o[j] == p.count && p.elementsEqual(all[o[j]..<o[j + 1]]) { break }
                    h = (h + 1) & (n - 1)
                }
                if s[h] < 0 { s[h] = Int32(i) }
            }
        }
        slots = s
    }

    init(_ pieces: [String]) { self.init(pieces.map { Array($0.utf8) }) }

    /// A pointer for empty ranges (never read).
    static let nowhere = UnsafePointer<UInt8>(bitPattern: 1)!

    /// FNV-1a over the bytes, folded.
    @inline(__always) static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for k in 0..<n {
            h = (h ^ UInt64(p[k])) &* 0x100_0000_01b3
        }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    /// The id of the piece spelled by `n` bytes at `p`.
    @inline(__always) func id(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int32? {
        var h = Self.hash(p, n) & mask
        return bytes.withUnsafeBufferPointer { all in
            slots.withUnsafeBufferPointer { slots in
                offsets.withUnsafeBufferPointer { offsets in
                    let base = all.baseAddress ?? Self.nowhere
                    while true {
                        let j = Int(slots[h])
                        if j < 0 { return nil }
                        let a = offsets[j]
                        if offsets[j + 1] - a == n && (n == 0 || memcmp(base + a, p, n) == 0) { return Int32(j) }
                        h = (h + 1) & mask
                    }
                }
            }
        }
    }

    func id(_ piece: [UInt8]) -> Int32? {
        piece.withUnsafeBufferPointer { id($0.baseAddress ?? Self.nowhere, $0.count) }
    }

    func id(_ piece: String) -> Int32? { id(Array(piece.utf8)) }
}
