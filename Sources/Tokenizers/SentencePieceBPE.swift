/// SentencePiece BPE as llama.cpp runs it for `tokenizer.ggml.model = llama`: spaces become ▁, symbols are UTF-8
/// characters, the adjacent pair whose concatenation is the highest-scoring vocabulary piece merges first
/// (leftmost on ties); pieces not in the vocabulary fall back to <0xNN> byte tokens.
///
/// llama.cpp runs one heap of candidate pairs over the whole text. A merge can only join characters `a b` that stand
/// side by side in some vocabulary piece, so where two neighbouring characters never do (in Llama's vocabulary: a
/// letter then ▁, since pieces hold ▁ only at their start; a newline, which is in no piece) no merge ever crosses.
/// The text is cut there into segments that merge alone — the same result — and each segment's ids are cached
/// (they are mostly words).
final class SentencePieceBPE {
    let pieces: PieceTable
    let scores: [Float]
    let byteTokens: [Int32?]
    let unk: Int32
    /// Every pair of characters adjacent in some piece, each character as its UTF-8 bytes packed little-endian.
    private let adjacent: Set<UInt64>
    private var cache: [[UInt8]: [Int32]] = [:]

    init(tokens: [String], scores: [Float], types: [Int32], unk: Int32) {
        pieces = PieceTable(tokens)
        var pairs = Set<UInt64>()
        for t in tokens {
            var prev: UInt32?
            for u in t.unicodeScalars {
                var c: UInt32 = 0
                for (k, b) in String(u).utf8.enumerated() { c |= UInt32(b) << (8 * k) }
                if let p = prev { pairs.insert(UInt64(p) << 32 | UInt64(c)) }
                prev = c
            }
        }
        adjacent = pairs
        self.scores = scores
        var bytes = [Int32?](repeating: nil, count: 256)
        for b in 0..<256 {
            let hex = String(b, radix: 16, uppercase: true)
            bytes[b] = pieces.id("<0x" + (hex.count == 1 ? "0" + hex : hex) + ">")
        }
        byteTokens = bytes
        self.unk = unk
    }

    /// Bytes of the character (symbol) at `p`: its lead byte's length, cut at the end of the text.
    @inline(__always) static func symbolLength(_ p: UnsafePointer<UInt8>, _ remaining: Int) -> Int {
        let b = p[0]
        let n = b < 0x80 ? 1 : b >> 5 == 0b110 ? 2 : b >> 4 == 0b1110 ? 3 : b >> 3 == 0b11110 ? 4 : 1
        return min(n, remaining)
    }

    func encode(_ text: [UInt8], into out: inout [Int32]) {
        if text.isEmpty { return }
        text.withUnsafeBufferPointer { t in
            let p = t.baseAddress!
            var segment = 0
            var prev: UInt32 = 0
            var i = 0
            while i < t.count {
                let n = Self.symbolLength(p + i, t.count - i)
                var c: UInt32 = 0
                for k in 0..<n { c |= UInt32(p[i + k]) << (8 * k) }
                if i > segment && !adjacent.contains(UInt64(prev) << 32 | UInt64(c)) {
                    encodeSegment(p + segment, i - segment, into: &out)
                    segment = i
                }
                prev = c
                i += n
            }
            encodeSegment(p + segment, t.count - segment, into: &out)
        }
    }

    func encodeSegment(_ text: UnsafePointer<UInt8>, _ count: Int, into out: inout [Int32]) {
        guard count <= Tokenizer.cachedLength else {
            merge(text, count, into: &out)
            return
        }
        let key = Array(UnsafeBufferPointer(start: text, count: count))
        if let ids = cache[key] {
            out += ids
            return
        }
        let start = out.count
        merge(text, count, into: &out)
        if cache.count < Tokenizer.cacheEntries { cache[key] = Array(out[start...]) }
    }

    struct Symbol {
        var start: Int
        var len: Int
        var prev: Int
        var next: Int
    }

    /// A candidate merge of the symbols `left` and `right`, `size` bytes long when queued (stale once either changed).
    struct Bigram: HeapOrdered {
        var score: Float
        var left: Int32
        var right: Int32
        var size: Int32

        /// Higher score first, then leftmost.
        @inline(__always) func before(_ o: Bigram) -> Bool { score > o.score || (score == o.score && left < o.left) }
    }

    /// The heap of candidate pairs over a linked list of the characters of `text` (llama.cpp's
    /// llm_tokenizer_spm_session): O(n log n) in its length.
    func merge(_ text: UnsafePointer<UInt8>, _ count: Int, into out: inout [Int32]) {
        var sym: [Symbol] = []
        sym.reserveCapacity(count)
        var i = 0
        while i < count {
            let len = Self.symbolLength(text + i, count - i)
            sym.append(Symbol(start: i, len: len, prev: sym.count - 1, next: i + len < count ? sym.count + 1 : -1))
            i += len
        }
        var heap = BinaryHeap<Bigram>(capacity: sym.count)
        func tryAdd(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0 else { return }
            let size = sym[l].len + sym[r].len
            guard let id = pieces.id(text + sym[l].start, size) else { return }
            heap.push(Bigram(score: scores[Int(id)], left: Int32(l), right: Int32(r), size: Int32(size)))
        }
        for k in 1..<max(sym.count, 1) { tryAdd(k - 1, k) }
        while let bg = heap.pop() {
            let l = Int(bg.left)
            let r = Int(bg.right)
            if sym[l].len == 0 || sym[r].len == 0 || sym[l].len + sym[r].len != Int(bg.size) { continue }
            sym[l].len += sym[r].len
            sym[r].len = 0
            sym[l].next = sym[r].next
            if sym[r].next >= 0 { sym[sym[r].next].prev = l }
            tryAdd(sym[l].prev, l)
            tryAdd(l, sym[l].next)
        }
        // Every merged symbol is a vocabulary piece (pairs are only queued when they are); a single character
        // that is not one falls back to its bytes.
        var k = sym.isEmpty ? -1 : 0
        while k >= 0 {
            let s = sym[k]
            if let id = pieces.id(text + s.start, s.len) {
                out.append(id)
            } else {
                for b in 0..<s.len { out.append(byteTokens[Int(text[s.start + b])] ?? unk) }
            }
            k = s.next
        }
    }
}
