import Checkpoints
import Foundation

/// `eval --report F.html`: one self-contained page, the results table and inline SVG plots: KLD and Δppl against bits
/// per weight (every candidate labelled, labels kept inside the plot and off each other), the distribution of per-token
/// KLD per candidate (its CDF, log scale), and perplexity per chunk. Legends sit beside the plots, never over the data.
public enum HTMLReport {
    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }

    static let colors = ["#222", "#2a6fdb", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d", "#364fc7"]
    /// Width of 11 px sans-serif text, generously estimated (labels are placed on these boxes).
    static func textWidth(_ s: String) -> Double { 6.6 * Double(s.count) + 2 }

    /// A name shortened to `n` characters (middle elided: both the model and the variant stay visible).
    static func shorten(_ s: String, _ n: Int = 30) -> String {
        guard s.count > n else { return s }
        let head = (n - 1) / 2, tail = n - 1 - head
        return String(s.prefix(head)) + "…" + String(s.suffix(tail))
    }

    /// Plot labels: the names without the prefix they all share, cut after a separator (`smollm2-135m-instruct-`), so
    /// the part that tells them apart is what fits. Returns the labels and the prefix removed ("" when none).
    static func plotLabels(_ names: [String]) -> (labels: [String], prefix: String) {
        guard names.count > 1, var common = names.first else { return (names, "") }
        for n in names.dropFirst() { common = String(zip(common, n).prefix { $0.0 == $0.1 }.map(\.0)) }
        guard let cut = common.lastIndex(where: { "-. ".contains($0) }) else { return (names, "") }
        let prefix = String(common[...cut])
        if names.contains(where: { $0.count == prefix.count }) { return (names, "") }
        return (names.map { String($0.dropFirst(prefix.count)) }, prefix)
    }

    struct Frame {
        let w: Double, h: Double, l: Double, r: Double, t: Double, b: Double
        var plotRight: Double { w - r }
        var plotBottom: Double { h - b }
    }

    /// The SVG's opening, title, axes and tick labels.
    static func axes(_ f: Frame, title: String, xLabel: String, yLabel: String, xTicks: [(Double, String)], yTicks: [(Double, String)]) -> String {
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(f.w))\" height=\"\(Int(f.h))\" font-family=\"sans-serif\" font-size=\"11\">"
        s += "<text x=\"\((f.l + f.plotRight) / 2)\" y=\"16\" text-anchor=\"middle\" font-size=\"13\">\(esc(title))</text>"
        s += "<line x1=\"\(f.l)\" y1=\"\(f.plotBottom)\" x2=\"\(f.plotRight)\" y2=\"\(f.plotBottom)\" stroke=\"#333\"/>"
        s += "<line x1=\"\(f.l)\" y1=\"\(f.t)\" x2=\"\(f.l)\" y2=\"\(f.plotBottom)\" stroke=\"#333\"/>"
        for (x, label) in xTicks { s += "<text x=\"\(x)\" y=\"\(f.plotBottom + 15)\" text-anchor=\"middle\">\(esc(label))</text>" }
        for (y, label) in yTicks { s += "<text x=\"\(f.l - 6)\" y=\"\(y + 4)\" text-anchor=\"end\">\(esc(label))</text>" }
        s += "<text x=\"\((f.l + f.plotRight) / 2)\" y=\"\(f.h - 8)\" text-anchor=\"middle\">\(esc(xLabel))</text>"
        s += "<text x=\"14\" y=\"\((f.t + f.plotBottom) / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 14 \((f.t + f.plotBottom) / 2))\">\(esc(yLabel))</text>"
        return s
    }

    /// A legend in the column right of the plot, one row per series.
    static func legend(_ names: [String], _ f: Frame, colorOffset: Int) -> String {
        var s = ""
        for (k, name) in names.enumerated() {
            let y = f.t + 8 + 16 * Double(k)
            let c = colors[(k + colorOffset) % colors.count]
            s += "<line x1=\"\(f.plotRight + 12)\" y1=\"\(y - 4)\" x2=\"\(f.plotRight + 28)\" y2=\"\(y - 4)\" stroke=\"\(c)\" stroke-width=\"2\"/>"
            s += "<text x=\"\(f.plotRight + 32)\" y=\"\(y)\" fill=\"\(c)\">\(esc(shorten(name)))</text>"
        }
        return s
    }

    /// A scatter plot of (x, y, label) points, each label placed beside its point where it neither leaves the plot nor
    /// covers another label (tried right/left, above/below, then stepped further out).
    static func scatter(_ pts: [(Double, Double, String)], title: String, xLabel: String, yLabel: String) -> String {
        guard !pts.isEmpty else { return "" }
        let f = Frame(w: 640, h: 360, l: 70, r: 20, t: 36, b: 50)
        var x0 = pts.map(\.0).min()!, x1 = pts.map(\.0).max()!, y0 = min(0, pts.map(\.1).min()!), y1 = pts.map(\.1).max()!
        if x1 - x0 < 1e-9 { x0 -= 0.5; x1 += 0.5 }
        let padX = (x1 - x0) * 0.08
        x0 -= padX; x1 += padX
        if y1 - y0 < 1e-12 { y1 = y0 + 1 }
        y1 += (y1 - y0) * 0.12
        let px = { (x: Double) in f.l + (x - x0) / (x1 - x0) * (f.plotRight - f.l) }
        let py = { (y: Double) in f.plotBottom - (y - y0) / (y1 - y0) * (f.plotBottom - f.t) }
        let xt = (0...4).map { k -> (Double, String) in let v = x0 + (x1 - x0) * Double(k) / 4; return (px(v), String(format: "%.2f", v)) }
        let yt = (0...4).map { k -> (Double, String) in let v = y0 + (y1 - y0) * Double(k) / 4; return (py(v), String(format: "%.3g", v)) }
        var s = axes(f, title: title, xLabel: xLabel, yLabel: yLabel, xTicks: xt, yTicks: yt)
        // boxes (x, y, w, h) already taken: the points themselves, then each placed label
        var taken = pts.map { (px($0.0) - 4, py($0.1) - 4, 8.0, 8.0) }
        func overlaps(_ a: (Double, Double, Double, Double)) -> Bool {
            taken.contains { b in a.0 < b.0 + b.2 && b.0 < a.0 + a.2 && a.1 < b.1 + b.3 && b.1 < a.1 + a.3 }
        }
        for (k, (x, y, name)) in pts.enumerated() {
            let label = shorten(name)
            let (cx, cy) = (px(x), py(y))
            let lw = textWidth(label), lh = 13.0
            var best: (Double, Double)? = nil
            search: for step in 0..<12 {
                let dy = 6 + 14 * Double(step)
                for (ox, oy) in [(6.0, -dy - lh), (6.0, dy), (-6 - lw, -dy - lh), (-6 - lw, dy)] {
                    let box = (cx + ox, cy + oy, lw, lh)
                    guard box.0 >= f.l + 2, box.0 + lw <= f.plotRight, box.1 >= f.t, box.1 + lh <= f.plotBottom - 2 else { continue }
                    if !overlaps(box) { best = (box.0, box.1); break search }
                }
            }
            // nowhere free nearby: the clearest spot inside the plot, right or left of the point
            let (bx, by) = best ?? (min(max(cx + 6, f.l + 2), f.plotRight - lw), min(max(cy - lh - 6, f.t), f.plotBottom - lh - 2))
            taken.append((bx, by, lw, lh))
            let c = colors[(k + 1) % colors.count]
            s += "<circle cx=\"\(cx)\" cy=\"\(cy)\" r=\"4\" fill=\"\(c)\"/>"
            if best != nil && (abs(bx - cx) > 10 + lw || abs(by - cy) > 24) {
                s += "<line x1=\"\(cx)\" y1=\"\(cy)\" x2=\"\(bx < cx ? bx + lw : bx)\" y2=\"\(by + lh / 2)\" stroke=\"#bbb\"/>"
            }
            s += "<text x=\"\(bx)\" y=\"\(by + lh - 3)\" fill=\"\(c)\">\(esc(label))</text>"
        }
        return s + "</svg>"
    }

    /// Series of values against an index or an x value, the legend beside the plot.
    /// `yRange`: fixed y limits (a CDF's 0 … 1); `colorOffset`: the first series' colour (candidates keep theirs across
    /// plots, the reference is colour 0).
    static func lines(_ series: [(String, [(Double, Double)])], title: String, xLabel: String, yLabel: String, logX: Bool = false,
                      yRange: (Double, Double)? = nil, colorOffset: Int = 0) -> String {
        let all = series.flatMap(\.1).filter { !logX || $0.0 > 0 }
        guard !all.isEmpty else { return "" }
        let longest = series.map { textWidth(shorten($0.0)) }.max() ?? 0
        let f = Frame(w: 560 + longest + 40, h: 360, l: 70, r: longest + 40, t: 36, b: 50)
        let tx = { (x: Double) in logX ? log10(x) : x }
        var x0 = all.map { tx($0.0) }.min()!, x1 = all.map { tx($0.0) }.max()!
        var y0 = all.map(\.1).min()!, y1 = all.map(\.1).max()!
        if x1 - x0 < 1e-9 { x1 = x0 + 1 }
        if y1 - y0 < 1e-12 { y1 = y0 + 1 }
        let padY = (y1 - y0) * 0.05
        y0 -= padY; y1 += padY
        if let (a, b) = yRange { (y0, y1) = (a, b) }
        let px = { (x: Double) in f.l + (tx(x) - x0) / (x1 - x0) * (f.plotRight - f.l) }
        let py = { (y: Double) in f.plotBottom - (y - y0) / (y1 - y0) * (f.plotBottom - f.t) }
        var xt: [(Double, String)] = []
        if logX {
            if ceil(x0) <= floor(x1) {
                for e in Int(ceil(x0))...Int(floor(x1)) { xt.append((f.l + (Double(e) - x0) / (x1 - x0) * (f.plotRight - f.l), "1e\(e)")) }
            }
            if xt.count < 2 { xt = [(f.l, String(format: "%.2g", pow(10, x0))), (f.plotRight, String(format: "%.2g", pow(10, x1)))] }
        } else {
            xt = (0...4).map { k in let v = x0 + (x1 - x0) * Double(k) / 4; return (f.l + (v - x0) / (x1 - x0) * (f.plotRight - f.l), String(format: "%.3g", v)) }
        }
        let yt = (0...4).map { k -> (Double, String) in let v = y0 + (y1 - y0) * Double(k) / 4; return (py(v), String(format: "%.3g", v)) }
        var s = axes(f, title: title, xLabel: xLabel, yLabel: yLabel, xTicks: xt, yTicks: yt)
        for (k, (_, pts)) in series.enumerated() {
            let c = colors[(k + colorOffset) % colors.count]
            let p = pts.filter { !logX || $0.0 > 0 }.map { "\(px($0.0)),\(py($0.1))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(c)\" stroke-width=\"1.5\" points=\"\(p)\"/>"
        }
        return s + legend(series.map(\.0), f, colorOffset: colorOffset) + "</svg>"
    }

    /// Per-token KLD as a CDF: (value, fraction of tokens ≤ value) at up to 200 points.
    static func cdf(_ kld: [Double]) -> [(Double, Double)] {
        let s = kld.sorted()
        guard !s.isEmpty else { return [] }
        let n = s.count, steps = min(200, n)
        return (1...steps).map { k in let i = max(0, k * n / steps - 1); return (s[i], Double(i + 1) / Double(n)) }
    }

    public static func render(_ r: Evaluator.Report) -> String {
        let short = { (p: String) in (p as NSString).lastPathComponent }
        var html = "<!doctype html><html><head><meta charset=\"utf-8\"><title>quantkit eval</title>"
        html += "<style>body{font-family:sans-serif;margin:24px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        html += "td:first-child,th:first-child{text-align:left}svg{display:block;margin:12px 0}</style></head><body>"
        html += "<h1>quantkit eval</h1><p>protocol \(esc(r.protocolName)), ctx \(r.ctx), \(r.chunks) chunks, \(r.reference.result.count) scored tokens, activations \(r.activations.rawValue), OpenBLAS core \(esc(r.blasCore))</p>"
        html += "<table><tr><th>model</th><th>bpw</th><th>bytes</th><th>PPL</th><th>±</th><th>Δppl</th><th>ratio</th><th>KLD mean</th><th>KLD median</th><th>KLD p99</th><th>KLD max</th><th>same top-1 %</th></tr>"
        let ref = r.reference.result
        html += String(format: "<tr><td>%@ (reference)</td><td>%.2f</td><td>%ld</td><td>%.4f</td><td>%.4f</td><td></td><td></td><td></td><td></td><td></td><td></td><td></td></tr>",
                       esc(short(r.reference.name)), r.reference.bitsPerWeight, r.reference.fileBytes, ref.ppl, ref.pplError)
        for c in r.candidates {
            let e = c.result
            html += String(format: "<tr><td>%@</td><td>%.2f</td><td>%ld</td><td>%.4f</td><td>%.4f</td><td>%+.4f</td><td>%.5f</td><td>%.6f</td><td>%.6f</td><td>%.5f</td><td>%.4f</td><td>%.2f</td></tr>",
                           esc(short(c.name)), c.bitsPerWeight, c.fileBytes, e.ppl, e.pplError, e.ppl - ref.ppl, e.ppl / ref.ppl, e.kldMean,
                           e.kldQuantile(0.5), e.kldQuantile(0.99), e.kld.max() ?? 0, e.sameTop1Percent)
        }
        html += "</table>"
        let (labels, prefix) = plotLabels(([r.reference] + r.candidates).map { short($0.name) })
        let names = Array(labels.dropFirst())
        if !prefix.isEmpty { html += "<p>Plots name each file without the prefix all share: <code>\(esc(prefix))</code></p>" }
        let kld = zip(r.candidates, names).map { ($0.bitsPerWeight, $0.result.kldMean, $1) }
        let dppl = zip(r.candidates, names).map { ($0.bitsPerWeight, $0.result.ppl - ref.ppl, $1) }
        html += "<h2>Accuracy against size</h2>" + scatter(kld, title: "mean KLD vs bits per weight", xLabel: "bits per weight", yLabel: "KLD")
        html += scatter(dppl, title: "Δppl vs bits per weight", xLabel: "bits per weight", yLabel: "Δppl")
        html += "<h2>Per-token KLD distribution</h2>"
        html += lines(zip(r.candidates, names).map { ($1, cdf($0.result.kld)) }, title: "CDF of per-token KLD", xLabel: "KLD (log scale)",
                      yLabel: "fraction of tokens ≤ KLD", logX: true, yRange: (0, 1), colorOffset: 1)
        html += "<h2>Perplexity per chunk</h2>"
        let perChunk = [(labels[0] + " (reference)", ref.chunkPPL)] + zip(r.candidates, names).map { ($1, $0.result.chunkPPL) }
        html += lines(perChunk.map { ($0.0, $0.1.enumerated().map { (Double($0.offset), $0.element) }) }, title: "PPL per chunk", xLabel: "chunk",
                      yLabel: "PPL")
        return html + "</body></html>\n"
    }
}
