/// SentencePiece BPE as llama.cpp runs it for `tokenizer.ggml.model = llama`: spaces become ▁, symbols are UTF-8
/// characters, the adjacent pair whose concatenation is the highest-scoring vocabulary piece merges first
/// (leftmost on ties); pieces not in the vocabulary fall back to <0xNN> byte tokens.
final class SentencePieceBPE {
    /// Keyed by UTF-8 bytes: Swift's String equality is canonical equivalence ("e\u{301}" == "é"), which a
    /// tokenizer must not apply.
    let tokenToId: [[UInt8]: Int32]
    let scores: [Float]
    let byteTokens: [Int32?]
    let unk: Int32

    init(tokens: [String], scores: [Float], types: [Int32], unk: Int32) {
        var t: [[UInt8]: Int32] = [:]
        t.reserveCapacity(tokens.count)
        for (i, s) in tokens.enumerated() where t[Array(s.utf8)] == nil { t[Array(s.utf8)] = Int32(i) }
        tokenToId = t
        self.scores = scores
        var bytes = [Int32?](repeating: nil, count: 256)
        for b in 0..<256 {
            let hex = String(b, radix: 16, uppercase: true)
            bytes[b] = t[Array(("<0x" + (hex.count == 1 ? "0" + hex : hex) + ">").utf8)]
        }
        byteTokens = bytes
        self.unk = unk
    }

    struct Symbol { var start: Int; var len: Int; var prev: Int; var next: Int }

    func encode(_ text: [UInt8], into out: inout [Int32]) {
        if text.isEmpty { return }
        var sym: [Symbol] = []
        var i = 0
        while i < text.count {
            let b = text[i]
            let n = b < 0x80 ? 1 : b >> 5 == 0b110 ? 2 : b >> 4 == 0b1110 ? 3 : b >> 3 == 0b11110 ? 4 : 1
            let len = min(n, text.count - i)
            sym.append(Symbol(start: i, len: len, prev: sym.count - 1, next: i + len < text.count ? sym.count + 1 : -1))
            i += len
        }
        // max-heap of (score, -left) with the pair's byte size to detect stale entries
        var heap: [(score: Float, left: Int, right: Int, size: Int)] = []
        func str(_ a: Int, _ len: Int) -> [UInt8] { Array(text[a..<(a + len)]) }
        func better(_ x: (score: Float, left: Int, right: Int, size: Int), _ y: (score: Float, left: Int, right: Int, size: Int)) -> Bool {
            x.score > y.score || (x.score == y.score && x.left < y.left)
        }
        func push(_ e: (score: Float, left: Int, right: Int, size: Int)) {
            heap.append(e)
            var c = heap.count - 1
            while c > 0 {
                let p = (c - 1) / 2
                if better(heap[c], heap[p]) { heap.swapAt(c, p); c = p } else { break }
            }
        }
        func pop() -> (score: Float, left: Int, right: Int, size: Int) {
            let top = heap[0]
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                var p = 0
                while true {
                    let l = 2 * p + 1, r = l + 1
                    var m = p
                    if l < heap.count && better(heap[l], heap[m]) { m = l }
                    if r < heap.count && better(heap[r], heap[m]) { m = r }
                    if m == p { break }
                    heap.swapAt(p, m); p = m
                }
            }
            return top
        }
        func tryAdd(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0 else { return }
            let s = str(sym[l].start, sym[l].len + sym[r].len)
            guard let id = tokenToId[s] else { return }
            push((scores[Int(id)], l, r, s.count))
        }
        for k in 1..<sym.count { tryAdd(k - 1, k) }
        while !heap.isEmpty {
            let bg = pop()
            let l = bg.left, r = bg.right
            if sym[l].len == 0 || sym[r].len == 0 || sym[l].len + sym[r].len != bg.size { continue }
            sym[l].len += sym[r].len
            sym[r].len = 0
            sym[l].next = sym[r].next
            if sym[r].next >= 0 { sym[sym[r].next].prev = l }
            tryAdd(sym[l].prev, l)
            tryAdd(l, sym[l].next)
        }
        // Every merged symbol is a vocabulary piece (pairs are only queued when they are); a single character
        // that is not one falls back to its bytes.
        func resegment(_ start: Int, _ len: Int) {
            if let id = tokenToId[str(start, len)] { out.append(id); return }
            for b in text[start..<(start + len)] { out.append(byteTokens[Int(b)] ?? unk) }
        }
        var k = 0
        while k >= 0 && k < sym.count {
            if sym[k].len > 0 { resegment(sym[k].start, sym[k].len) }
            k = sym[k].next
        }
    }
}
