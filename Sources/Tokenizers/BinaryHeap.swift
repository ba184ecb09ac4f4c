/// An element of a BinaryHeap: `before` says which of two comes out first.
protocol HeapOrdered {
    func before(_ other: Self) -> Bool
}

/// A binary heap whose top is the element that comes before all others (the merge queues of both BPE kinds).
struct BinaryHeap<Element: HeapOrdered> {
    private var items: [Element] = []

    init(capacity: Int = 0) { items.reserveCapacity(capacity) }

    var isEmpty: Bool { items.isEmpty }

    mutating func push(_ e: Element) {
        items.append(e)
        items.withUnsafeMutableBufferPointer { h in
            // sift up: move parents down into the hole until e's place is found
            var c = h.count - 1
            while c > 0 {
                let p = (c - 1) / 2
                guard e.before(h[p]) else { break }
                h[c] = h[p]
                c = p
            }
            h[c] = e
        }
    }

    mutating func pop() -> Element? {
        guard let last = items.popLast() else { return nil }
        guard !items.isEmpty else { return last }
        return items.withUnsafeMutableBufferPointer { h in
            let top = h[0]
            // sift down: move the earlier child up into the hole until `last` fits
            let n = h.count
            var p = 0
            while true {
                let l = 2 * p + 1
                if l >= n { break }
                var m = l
                if l + 1 < n && h[l + 1].before(h[l]) { m = l + 1 }
                guard h[m].before(last) else { break }
                h[p] = h[m]
                p = m
            }
            h[p] = last
            return top
        }
    }
}
