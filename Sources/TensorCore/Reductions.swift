/// Reductions over float buffers kept as eight running partial results, so the loop is eight short dependency
/// chains instead of one long one (a single running sum or maximum costs the add/compare latency per element and
/// cannot be vectorized without changing the order). `scalarMax`/`scalarSum` are the one-chain references.
public enum Reductions {
    /// The largest of p[0 ..< n]; −∞ when n = 0. Exact: the order does not change a maximum (NaN input excepted).
    @inlinable public static func max(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var m0 = -Float.infinity, m1 = m0, m2 = m0, m3 = m0, m4 = m0, m5 = m0, m6 = m0, m7 = m0
        var i = 0
        while i + 8 <= n {
            m0 = p[i] > m0 ? p[i] : m0; m1 = p[i + 1] > m1 ? p[i + 1] : m1
            m2 = p[i + 2] > m2 ? p[i + 2] : m2; m3 = p[i + 3] > m3 ? p[i + 3] : m3
            m4 = p[i + 4] > m4 ? p[i + 4] : m4; m5 = p[i + 5] > m5 ? p[i + 5] : m5
            m6 = p[i + 6] > m6 ? p[i + 6] : m6; m7 = p[i + 7] > m7 ? p[i + 7] : m7
            i += 8
        }
        while i < n { m0 = p[i] > m0 ? p[i] : m0; i += 1 }
        let a = Swift.max(Swift.max(m0, m1), Swift.max(m2, m3)), b = Swift.max(Swift.max(m4, m5), Swift.max(m6, m7))
        return Swift.max(a, b)
    }

    /// Σ p[i] in float: element i goes to partial sum i mod 8, the partial sums are added pairwise at the end.
    @inlinable public static func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0, s4: Float = 0, s5: Float = 0, s6: Float = 0, s7: Float = 0
        var i = 0
        while i + 8 <= n {
            s0 += p[i]; s1 += p[i + 1]; s2 += p[i + 2]; s3 += p[i + 3]
            s4 += p[i + 4]; s5 += p[i + 5]; s6 += p[i + 6]; s7 += p[i + 7]
            i += 8
        }
        while i < n { s0 += p[i]; i += 1 }
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    }

    /// Σ Double(p[i]): the same partial-sum order as `sum`, each partial sum in double.
    @inlinable public static func sumInDouble(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
        var s0: Double = 0, s1: Double = 0, s2: Double = 0, s3: Double = 0, s4: Double = 0, s5: Double = 0, s6: Double = 0, s7: Double = 0
        var i = 0
        while i + 8 <= n {
            s0 += Double(p[i]); s1 += Double(p[i + 1]); s2 += Double(p[i + 2]); s3 += Double(p[i + 3])
            s4 += Double(p[i + 4]); s5 += Double(p[i + 5]); s6 += Double(p[i + 6]); s7 += Double(p[i + 7])
            i += 8
        }
        while i < n { s0 += Double(p[i]); i += 1 }
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    }

    /// One running maximum, element by element: the reference for `max`.
    public static func scalarMax(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = -Float.infinity
        for i in 0..<n where p[i] > m { m = p[i] }
        return m
    }

    /// The partial sums of `sum` written out one element at a time: the reference for `sum`.
    public static func scalarSum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var partial = [Float](repeating: 0, count: 8)
        for i in 0..<n { partial[n - i <= n % 8 ? 0 : i % 8] += p[i] }
        return ((partial[0] + partial[1]) + (partial[2] + partial[3])) + ((partial[4] + partial[5]) + (partial[6] + partial[7]))
    }
}
