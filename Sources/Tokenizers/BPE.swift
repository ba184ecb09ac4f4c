/// Byte-level BPE (GPT-2 family): pre-tokenize, map bytes to printable characters, then merge adjacent symbols
/// by merge rank (lowest first, leftmost on ties) until no known pair is left.
final class ByteLevelBPE {
    let tokenToId: [String: Int32]
    let ranks: [String: Int]  // "a b" → rank
    let pre: PreTokenizer
    let ignoreMerges: Bool
    private var cache: [String: [Int32]] = [:]

    init(tokens: [String], merges: [String], pre: PreTokenizer) {
        var t: [String: Int32] = [:]
        t.reserveCapacity(tokens.count)
        for (i, s) in tokens.enumerated() where t[s] == nil { t[s] = Int32(i) }
        tokenToId = t
        var r: [String: Int] = [:]
        r.reserveCapacity(merges.count)
        for (i, m) in merges.enumerated() where r[m] == nil { r[m] = i }
        ranks = r
        self.pre = pre
        ignoreMerges = pre.ignoresMerges
    }

    func encode(_ text: String, into out: inout [Int32]) {
        for word in pre.split(text) {
            let w = ByteLevel.encode(Array(word.utf8))
            if let c = cache[w] { out += c; continue }
            let ids = encodeWord(w)
            if cache.count < 100_000 { cache[w] = ids }
            out += ids
        }
    }

    func encodeWord(_ w: String) -> [Int32] {
        if ignoreMerges, let id = tokenToId[w] { return [id] }
        var sym = w.map { String($0) }
        while sym.count > 1 {
            var best = Int.max, at = -1
            for k in 0..<(sym.count - 1) {
                if let r = ranks[sym[k] + " " + sym[k + 1]], r < best { best = r; at = k }
            }
            if at < 0 { break }
            // merge every occurrence of this pair, left to right (same result as one at a time by rank)
            let a = sym[at], b = sym[at + 1]
            var merged: [String] = []
            merged.reserveCapacity(sym.count)
            var k = 0
            while k < sym.count {
                if k + 1 < sym.count && sym[k] == a && sym[k + 1] == b { merged.append(a + b); k += 2 } else { merged.append(sym[k]); k += 1 }
            }
            sym = merged
        }
        var ids: [Int32] = []
        for s in sym {
            if let id = tokenToId[s] { ids.append(id); continue }
            for ch in s { if let id = tokenToId[String(ch)] { ids.append(id) } }
        }
        return ids
    }
}
