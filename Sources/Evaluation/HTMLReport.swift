import Checkpoints
import Foundation

/// `eval --report F.html`: one self-contained page, the results table and inline SVG plots (KLD and Δppl against
/// bits per weight for every candidate; perplexity per chunk).
public enum HTMLReport {
    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// A scatter plot of (x, y, label) points.
    static func scatter(_ pts: [(Double, Double, String)], title: String, xLabel: String, yLabel: String) -> String {
        let w = 520.0, h = 320.0, l = 70.0, r = 20.0, t = 30.0, b = 50.0
        guard !pts.isEmpty else { return "" }
        var x0 = pts.map(\.0).min()!, x1 = pts.map(\.0).max()!, y0 = min(0, pts.map(\.1).min()!), y1 = pts.map(\.1).max()!
        if x1 - x0 < 1e-9 { x0 -= 0.5; x1 += 0.5 }
        if y1 - y0 < 1e-12 { y1 = y0 + 1 }
        let px = { (x: Double) in l + (x - x0) / (x1 - x0) * (w - l - r) }
        let py = { (y: Double) in h - b - (y - y0) / (y1 - y0) * (h - t - b) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"11\">"
        s += "<text x=\"\(w / 2)\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">\(esc(title))</text>"
        s += "<line x1=\"\(l)\" y1=\"\(h - b)\" x2=\"\(w - r)\" y2=\"\(h - b)\" stroke=\"#333\"/><line x1=\"\(l)\" y1=\"\(t)\" x2=\"\(l)\" y2=\"\(h - b)\" stroke=\"#333\"/>"
        for k in 0...4 {
            let xv = x0 + (x1 - x0) * Double(k) / 4, yv = y0 + (y1 - y0) * Double(k) / 4
            s += "<text x=\"\(px(xv))\" y=\"\(h - b + 15)\" text-anchor=\"middle\">\(String(format: "%.2f", xv))</text>"
            s += "<text x=\"\(l - 5)\" y=\"\(py(yv) + 4)\" text-anchor=\"end\">\(String(format: "%.3g", yv))</text>"
        }
        s += "<text x=\"\(w / 2)\" y=\"\(h - 12)\" text-anchor=\"middle\">\(esc(xLabel))</text>"
        s += "<text x=\"14\" y=\"\(h / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(h / 2))\">\(esc(yLabel))</text>"
        for (x, y, label) in pts {
            s += "<circle cx=\"\(px(x))\" cy=\"\(py(y))\" r=\"4\" fill=\"#2a6fdb\"/><text x=\"\(px(x) + 6)\" y=\"\(py(y) - 6)\">\(esc(label))</text>"
        }
        return s + "</svg>"
    }

    /// Lines of per-chunk values, one per series.
    static func lines(_ series: [(String, [Double])], title: String) -> String {
        let w = 520.0, h = 320.0, l = 70.0, r = 20.0, t = 30.0, b = 50.0
        let all = series.flatMap(\.1)
        guard let y0 = all.min(), let y1 = all.max(), let n = series.map({ $0.1.count }).max(), n > 0 else { return "" }
        let span = max(y1 - y0, 1e-9)
        let px = { (i: Int) in l + Double(i) / Double(max(1, n - 1)) * (w - l - r) }
        let py = { (y: Double) in h - b - (y - y0) / span * (h - t - b) }
        let colors = ["#222", "#2a6fdb", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285"]
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"11\">"
        s += "<text x=\"\(w / 2)\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">\(esc(title))</text>"
        s += "<line x1=\"\(l)\" y1=\"\(h - b)\" x2=\"\(w - r)\" y2=\"\(h - b)\" stroke=\"#333\"/><line x1=\"\(l)\" y1=\"\(t)\" x2=\"\(l)\" y2=\"\(h - b)\" stroke=\"#333\"/>"
        for k in 0...4 {
            let yv = y0 + span * Double(k) / 4
            s += "<text x=\"\(l - 5)\" y=\"\(py(yv) + 4)\" text-anchor=\"end\">\(String(format: "%.3g", yv))</text>"
        }
        s += "<text x=\"\(w / 2)\" y=\"\(h - 12)\" text-anchor=\"middle\">chunk</text>"
        for (k, (name, ys)) in series.enumerated() {
            let c = colors[k % colors.count]
            let pts = ys.enumerated().map { "\(px($0.offset)),\(py($0.element))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(c)\" stroke-width=\"1.5\" points=\"\(pts)\"/>"
            s += "<text x=\"\(l + 8)\" y=\"\(t + 14 * Double(k + 1))\" fill=\"\(c)\">\(esc(name))</text>"
        }
        return s + "</svg>"
    }

    public static func render(_ r: Evaluator.Report) -> String {
        let short = { (p: String) in (p as NSString).lastPathComponent }
        var html = "<!doctype html><html><head><meta charset=\"utf-8\"><title>quantkit eval</title>"
        html += "<style>body{font-family:sans-serif;margin:24px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}</style></head><body>"
        html += "<h1>quantkit eval</h1><p>protocol \(esc(r.protocolName)), ctx \(r.ctx), \(r.chunks) chunks, \(r.reference.result.count) scored tokens, OpenBLAS core \(esc(r.blasCore))</p>"
        html += "<table><tr><th>model</th><th>bpw</th><th>bytes</th><th>PPL</th><th>±</th><th>Δppl</th><th>ratio</th><th>KLD mean</th><th>KLD p99</th><th>KLD max</th><th>same top-1 %</th></tr>"
        let ref = r.reference.result
        html += String(format: "<tr><td>%@ (reference)</td><td>%.2f</td><td>%ld</td><td>%.4f</td><td>%.4f</td><td></td><td></td><td></td><td></td><td></td><td></td></tr>",
                       esc(short(r.reference.name)), r.reference.bitsPerWeight, r.reference.fileBytes, ref.ppl, ref.pplError)
        for c in r.candidates {
            let e = c.result
            html += String(format: "<tr><td>%@</td><td>%.2f</td><td>%ld</td><td>%.4f</td><td>%.4f</td><td>%+.4f</td><td>%.5f</td><td>%.6f</td><td>%.5f</td><td>%.4f</td><td>%.2f</td></tr>",
                           esc(short(c.name)), c.bitsPerWeight, c.fileBytes, e.ppl, e.pplError, e.ppl - ref.ppl, e.ppl / ref.ppl, e.kldMean,
                           e.kldQuantile(0.99), e.kld.max() ?? 0, e.sameTop1Percent)
        }
        html += "</table>"
        let kld = r.candidates.map { ($0.bitsPerWeight, $0.result.kldMean, short($0.name)) }
        let dppl = r.candidates.map { ($0.bitsPerWeight, $0.result.ppl - ref.ppl, short($0.name)) }
        html += "<h2>Accuracy against size</h2>" + scatter(kld, title: "mean KLD vs bits per weight", xLabel: "bits per weight", yLabel: "KLD")
        html += scatter(dppl, title: "Δppl vs bits per weight", xLabel: "bits per weight", yLabel: "Δppl")
        html += "<h2>Perplexity per chunk</h2>" + lines([(short(r.reference.name), ref.chunkPPL)] + r.candidates.map { (short($0.name), $0.result.chunkPPL) }, title: "PPL per chunk")
        return html + "</body></html>\n"
    }
}
