/// Splits special-token texts out of a text as llama.cpp does (`tokenizer_st_partition`): specials in turn, longest
/// first, each taking its leftmost non-overlapping occurrences from the text no earlier special took. Done in one
/// pass: a trie finds every occurrence of every special, then the specials claim theirs in that order. Linear in the
/// text (times the longest special), where splitting special by special was text × specials (999 in Command-R's vocab).
struct SpecialTokenSplitter {
    struct Special {
        var text: [UInt8]
        var id: Int32
        var controlOrUnknown: Bool
    }

    enum Fragment: Equatable { case text(Range<Int>), token(Int32) }

    /// Longest first (a stable sort of the vocabulary's order).
    let specials: [Special]
    /// Trie over the specials' bytes: node → (byte → child); `ends[node]` = the special spelled by the path, if any.
    private var children: [[UInt8: Int32]] = [[:]]
    private var ends: [Int32] = [-1]
    /// The root's children as a table (the scan asks it at every byte).
    private var first = [Int32](repeating: -1, count: 256)

    init(_ specials: [Special]) {
        self.specials = specials.enumerated().sorted { a, b in
            a.element.text.count != b.element.text.count ? a.element.text.count > b.element.text.count : a.offset < b.offset
        }.map(\.element)
        for (k, s) in self.specials.enumerated() where !s.text.isEmpty {
            var node = 0
            for b in s.text {
                if let c = children[node][b] {
                    node = Int(c)
                } else {
                    children.append([:])
                    ends.append(-1)
                    children[node][b] = Int32(children.count - 1)
                    node = children.count - 1
                }
            }
            if ends[node] < 0 { ends[node] = Int32(k) }
        }
        for (b, c) in children[0] { first[Int(b)] = c }
    }

    /// The text as pieces of plain text and special tokens, in order.
    func split(_ text: [UInt8], parseSpecial: Bool) -> [Fragment] {
        // every occurrence of every special that is matched here, by special
        var occurrences = [[Int]](repeating: [], count: specials.count)
        var any = false
        for i in 0..<text.count where first[Int(text[i])] >= 0 {
            var node = Int(first[Int(text[i])])
            var k = i + 1
            while true {
                let s = Int(ends[node])
                if s >= 0 && (parseSpecial || !specials[s].controlOrUnknown) {
                    occurrences[s].append(i)
                    any = true
                }
                guard k < text.count, let c = children[node][text[k]] else { break }
                node = Int(c)
                k += 1
            }
        }
        if !any { return text.isEmpty ? [] : [.text(0..<text.count)] }
        // claim in priority order: a special takes an occurrence that overlaps nothing taken before it
        var taken = [Bool](repeating: false, count: text.count)
        var claims: [(start: Int, special: Int)] = []
        for (s, starts) in occurrences.enumerated() where !starts.isEmpty {
            let n = specials[s].text.count
            var lastEnd = 0
            for p in starts where p >= lastEnd && !taken[p..<(p + n)].contains(true) {
                for q in p..<(p + n) { taken[q] = true }
                claims.append((p, s))
                lastEnd = p + n
            }
        }
        claims.sort { $0.start < $1.start }
        var out: [Fragment] = []
        var at = 0
        for c in claims {
            if c.start > at { out.append(.text(at..<c.start)) }
            out.append(.token(specials[c.special].id))
            at = c.start + specials[c.special].text.count
        }
        if at < text.count { out.append(.text(at..<text.count)) }
        return out
    }
}
