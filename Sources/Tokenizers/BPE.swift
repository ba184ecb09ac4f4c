/// Byte-level BPE (GPT-2 family) as llama.cpp's `llm_tokenizer_bpe_session` runs it: pre-tokenize, map each byte to
/// its printable character, then merge adjacent symbols by merge rank (lowest first, leftmost on ties) through a
/// heap of candidate pairs over a linked list — O(n log n) in a word's length — and cache each word's ids.
///
/// Symbols are ids: a vocabulary token's id, or (for a merge result or byte character the vocabulary lacks) a
/// "virtual" id past the vocabulary whose text is kept aside; a virtual symbol left at the end is emitted character
/// by character as llama.cpp does.
final class ByteLevelBPE {
    let pieces: PieceTable
    let vocabularySize: Int
    let pre: PreTokenizer
    let ignoreMerges: Bool
    /// (left id << 32 | right id) → its rank and the merged symbol's id.
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    /// byte → the id of its byte-level character.
    private let byteSymbol: [Int32]
    /// Texts of the virtual ids (index id − vocabularySize).
    private let virtualTexts: [[UInt8]]
    private var cache: [[UInt8]: [Int32]] = [:]

    /// The UTF-8 bytes of each byte's byte-level character.
    static let byteLevelUTF8: [[UInt8]] = ByteLevel.byteToScalar.map { Array(String($0).utf8) }

    init(tokens: [String], merges mergeList: [String], pre: PreTokenizer) {
        let table = PieceTable(tokens)
        pieces = table
        vocabularySize = tokens.count
        self.pre = pre
        ignoreMerges = pre.ignoresMerges
        var virtual: [[UInt8]: Int32] = [:]
        var texts: [[UInt8]] = []
        func symbol(_ text: [UInt8]) -> Int32 {
            if let id = table.id(text) { return id }
            if let id = virtual[text] { return id }
            let id = Int32(tokens.count + texts.count)
            virtual[text] = id
            texts.append(text)
            return id
        }
        byteSymbol = Self.byteLevelUTF8.map(symbol)
        var m: [UInt64: (rank: Int32, id: Int32)] = [:]
        m.reserveCapacity(mergeList.count)
        for (rank, line) in mergeList.enumerated() {
            // llama.cpp splits a merge at its first space after the first character
            let u = Array(line.utf8)
            guard u.count > 2, let space = u.dropFirst().firstIndex(of: 0x20) else { continue }
            let left = Array(u[..<space])
            let right = Array(u[(space + 1)...])
            let key = UInt64(UInt32(bitPattern: symbol(left))) << 32 | UInt64(UInt32(bitPattern: symbol(right)))
            if m[key] == nil { m[key] = (Int32(rank), symbol(left + right)) }
        }
        merges = m
        virtualTexts = texts
    }

    func encode(_ text: ArraySlice<UInt8>, into out: inout [Int32]) {
        // scalars of the text (invalid UTF-8 repaired to U+FFFD) with their byte offsets in the repaired UTF-8
        let s = String(decoding: text, as: UTF8.self)
        let utf8 = Array(s.utf8)
        var scalars: [Unicode.Scalar] = []
        var offsets: [Int] = []
        scalars.reserveCapacity(utf8.count)
        offsets.reserveCapacity(utf8.count + 1)
        var o = 0
        for u in s.unicodeScalars {
            scalars.append(u)
            offsets.append(o)
            o += UTF8.width(u)
        }
        offsets.append(o)
        pre.visit(scalars) { a, b in
            let word = Array(utf8[offsets[a]..<offsets[b]])
            if let ids = cache[word] {
                out += ids
                return
            }
            let ids = encodeWord(word)
            if cache.count < Tokenizer.cacheEntries && word.count <= Tokenizer.cachedLength { cache[word] = ids }
            out += ids
        }
    }

    struct Pair: HeapOrdered {
        var rank: Int32
        var left: Int32
        var right: Int32
        var leftId: Int32
        var rightId: Int32

        @inline(__always) func before(_ o: Pair) -> Bool { rank < o.rank || (rank == o.rank && left < o.left) }
    }

    /// The ids of one pre-token given as its UTF-8 bytes.
    func encodeWord(_ word: [UInt8]) -> [Int32] {
        if ignoreMerges {
            var text: [UInt8] = []
            for b in word { text += Self.byteLevelUTF8[Int(b)] }
            if let id = pieces.id(text) { return [id] }
        }
        var id = word.map { byteSymbol[Int($0)] }
        var prev = (0..<word.count).map { Int32($0) - 1 }
        var next = (0..<word.count).map { $0 + 1 < word.count ? Int32($0 + 1) : -1 }
        var heap = BinaryHeap<Pair>(capacity: word.count)
        func queue(_ l: Int32, _ r: Int32) {
            guard l >= 0, r >= 0 else { return }
            let key = UInt64(UInt32(bitPattern: id[Int(l)])) << 32 | UInt64(UInt32(bitPattern: id[Int(r)]))
            guard let m = merges[key] else { return }
            heap.push(Pair(rank: m.rank, left: l, right: r, leftId: id[Int(l)], rightId: id[Int(r)]))
        }
        for k in 1..<max(word.count, 1) { queue(Int32(k - 1), Int32(k)) }
        while let p = heap.pop() {
            let l = Int(p.left)
            let r = Int(p.right)
            // stale: either side merged since, or no longer neighbours
            guard id[l] == p.leftId, id[r] == p.rightId, next[l] == p.right else { continue }
            let key = UInt64(UInt32(bitPattern: p.leftId)) << 32 | UInt64(UInt32(bitPattern: p.rightId))
            id[l] = merges[key]!.id
            id[r] = -1
            next[l] = next[r]
            if next[r] >= 0 { prev[Int(next[r])] = Int32(l) }
            queue(prev[l], Int32(l))
            queue(Int32(l), next[l])
        }
        var ids: [Int32] = []
        var k = word.isEmpty ? -1 : 0
        while k >= 0 {
            let s = id[k]
            if Int(s) < vocabularySize {
                ids.append(s)
            } else {
                // not a token: its characters, those that are tokens
                for ch in String(decoding: virtualTexts[Int(s) - vocabularySize], as: UTF8.self).unicodeScalars {
                    if let t = pieces.id(Array(String(ch).utf8)) { ids.append(t) }
                }
            }
            k = Int(next[k])
        }
        return ids
    }
}
