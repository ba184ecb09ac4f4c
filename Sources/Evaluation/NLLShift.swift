import Foundation

/// Where a candidate's perplexity change comes from: the scored tokens grouped by the probability the reference gave
/// the correct token, with the candidate's mean NLL change (candidate − reference, nats) in each group and the
/// group's part of ln(PPL_cand / PPL_ref) — the parts add up to it.
///
/// Perplexity is set by every correct token, KL divergence by the reference's whole distribution; when they rank two
/// candidates differently, the groups say where: a candidate whose errors flatten its distributions can score the
/// tokens the reference finds unlikely better than the reference itself (a negative shift in the lowest group) while
/// losing on every other group.
public struct NLLShiftBin: Equatable {
    /// The reference's probability of the correct token lies in [lower, upper) (the last group includes 1).
    public let lower: Double, upper: Double
    public let tokens: Int
    /// Mean over the group's tokens of NLL_cand − NLL_ref.
    public let meanShift: Double
    /// Σ over the group's tokens of NLL_cand − NLL_ref, divided by all scored tokens: the group's part of ln(PPL ratio).
    public let lnPPLRatioPart: Double

    /// Group edges on the reference's probability of the correct token.
    public static let edges: [Double] = [0, 0.01, 0.1, 0.5, 1]

    /// The groups of `candidate` against `reference` (per-token NLL of the same scored tokens, same order).
    public static func bins(reference: [Double], candidate: [Double]) -> [NLLShiftBin] {
        precondition(reference.count == candidate.count, "NLLShiftBin.bins: the two NLL lists differ in length")
        let groups = edges.count - 1
        var count = [Int](repeating: 0, count: groups), sum = [Double](repeating: 0, count: groups)
        for (r, c) in zip(reference, candidate) {
            let p = exp(-r)
            let g = (1..<groups).last { p >= edges[$0] } ?? 0
            count[g] += 1
            sum[g] += c - r
        }
        let n = Double(max(1, reference.count))
        return (0..<groups).map { g in
            let mean = count[g] == 0 ? 0 : sum[g] / Double(count[g])
            return NLLShiftBin(lower: edges[g], upper: edges[g + 1], tokens: count[g], meanShift: mean, lnPPLRatioPart: sum[g] / n)
        }
    }
}
