@testable import Evaluation
import Foundation
import ModelFormats
import XCTest
@testable import QuantKit

/// The eval report as a person sees it: rendered by headless Chromium (Debian's `chromium`, installed by Scripts/test),
/// every text box of every plot measured in the DOM — none may leave its plot or overlap another — and a screenshot
/// taken. Five candidates close together in size, with long names, make the labels crowd.
final class HTMLReportTests: XCTestCase {
    /// Injected into the report: per SVG, the text boxes outside it and the overlapping pairs, as JSON in <pre id=checks>.
    static let checkScript = """
    <script>
    window.addEventListener('load', () => {
      const out = [];
      document.querySelectorAll('svg').forEach((svg, i) => {
        const frame = svg.getBoundingClientRect();
        const texts = [...svg.querySelectorAll('text')].map(t => ({ s: t.textContent, r: t.getBoundingClientRect() }));
        const clipped = texts.filter(t => t.r.left < frame.left - 0.5 || t.r.right > frame.right + 0.5 ||
                                          t.r.top < frame.top - 0.5 || t.r.bottom > frame.bottom + 0.5).map(t => t.s);
        const overlaps = [];
        for (let a = 0; a < texts.length; a++) for (let b = a + 1; b < texts.length; b++) {
          const p = texts[a].r, q = texts[b].r;
          const w = Math.min(p.right, q.right) - Math.max(p.left, q.left), h = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
          if (w > 1 && h > 1) overlaps.push([texts[a].s, texts[b].s]);
        }
        out.push({ svg: i, title: texts.length ? texts[0].s : '', texts: texts.length, clipped, overlaps });
      });
      const pre = document.createElement('pre');
      pre.id = 'checks';
      pre.textContent = JSON.stringify(out);
      document.body.appendChild(pre);
    });
    </script>
    """

    func testReportRendersWithoutClippedOrOverlappingText() throws {
        guard let chromium = ProcessInfo.processInfo.environment["QUANTKIT_CHROMIUM"], FileManager.default.isExecutableFile(atPath: chromium) else {
            XCTFail("QUANTKIT_CHROMIUM is not set: run the suite through Scripts/test (it installs Debian's chromium)"); return
        }
        let src = Support.microK
        let dir = Support.tmpDir()
        var cands: [String] = []
        for (t, name) in [("Q8_0", "micro-llama-k-Q8_0.gguf"), ("Q4_K_M", "micro-llama-k-Q4_K_M-with-a-long-descriptive-name.gguf"),
                          ("Q4_K_S", "micro-llama-k-Q4_K_S.gguf"), ("IQ4_XS", "micro-llama-k-IQ4_XS.gguf"), ("Q4_0", "micro-llama-k-Q4_0.gguf")] {
            let out = dir + "/" + name
            _ = try GGUFQuantizer.quantize(src, to: out, options: .init(preset: .named(t)!))
            cands.append(out)
        }
        let text = Support.repo.appendingPathComponent("Formats/golden/tokenize/inputs/wiki.test.first50k.txt").path
        let r = try Evaluator.run(reference: src, candidates: cands, textFile: text, ctx: 128, chunks: 6, protocol: .llamaCpp)
        let html = HTMLReport.render(r)
        XCTAssertEqual(html.components(separatedBy: "<svg").count - 1, 4, "two scatter plots, the KLD CDF, PPL per chunk")
        XCTAssertTrue(html.contains("CDF of per-token KLD"))
        // plot labels drop the shared "micro-llama-k-" (the page says so); the table keeps the full names
        XCTAssertTrue(html.contains("without the prefix all share: <code>micro-llama-k-</code>"))
        XCTAssertTrue(html.contains(">Q4_K_S.gguf</text>"), "a label without the prefix")
        XCTAssertTrue(html.contains("<td>micro-llama-k-Q4_K_S.gguf</td>"))
        let page = dir + "/report.html"
        try html.replacingOccurrences(of: "</body>", with: Self.checkScript + "</body>").write(toFile: page, atomically: true, encoding: .utf8)
        let shot = dir + "/report.png"
        let base = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,2400", "--user-data-dir=" + dir + "/profile"]
        let dom = try run(chromium, base + ["--virtual-time-budget=5000", "--dump-dom", "file://" + page])
        _ = try run(chromium, base + ["--screenshot=" + shot, "file://" + page])
        let png = try Data(contentsOf: URL(fileURLWithPath: shot))
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47], "a PNG screenshot")
        guard let a = dom.range(of: "<pre id=\"checks\">"), let b = dom.range(of: "</pre>", range: a.upperBound..<dom.endIndex) else {
            XCTFail("the check script did not run:\n\(dom.prefix(500))"); return
        }
        let json = String(dom[a.upperBound..<b.lowerBound]).replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&amp;", with: "&")
        let checks = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        XCTAssertEqual(checks.count, 4)
        var log = "report screenshot \(shot) (\(png.count) bytes):"
        for c in checks {
            let title = c["title"] as? String ?? "", n = c["texts"] as? Int ?? 0
            let clipped = c["clipped"] as? [String] ?? ["?"], overlaps = c["overlaps"] as? [[String]] ?? [["?"]]
            log += "\n  \(title): \(n) text boxes, \(clipped.count) clipped, \(overlaps.count) overlapping pairs"
            XCTAssertGreaterThan(n, 8, title)
            XCTAssertEqual(clipped, [], "\(title): text outside the plot")
            XCTAssertTrue(overlaps.isEmpty, "\(title): overlapping text \(overlaps)")
        }
        print(log)
    }

    func testPlotLabelsDropTheSharedPrefixAtASeparator() {
        let a = HTMLReport.plotLabels(["smollm2-135m-instruct-bf16.gguf", "smollm2-135m-instruct-Q4_K_M.gguf",
                                       "smollm2-135m-instruct-Q4_K_M-awq.gguf"])
        XCTAssertEqual(a.prefix, "smollm2-135m-instruct-")
        XCTAssertEqual(a.labels, ["bf16.gguf", "Q4_K_M.gguf", "Q4_K_M-awq.gguf"])
        // the shared "Q4_K_" does not end at a separator: nothing is cut
        XCTAssertEqual(HTMLReport.plotLabels(["Q4_K_M.gguf", "Q4_K_S.gguf"]).labels, ["Q4_K_M.gguf", "Q4_K_S.gguf"])
        XCTAssertEqual(HTMLReport.plotLabels(["SmolLM2.Q8_0.gguf", "SmolLM2.Q4_0.gguf"]).labels, ["Q8_0.gguf", "Q4_0.gguf"])
        // a name that is all prefix would become empty: keep the names
        XCTAssertEqual(HTMLReport.plotLabels(["m-", "m-x"]).prefix, "")
        XCTAssertEqual(HTMLReport.plotLabels(["only-one.gguf"]).labels, ["only-one.gguf"], "one name has nothing to tell apart")
    }

    func run(_ exe: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "\(exe) \(args)")
        return String(decoding: data, as: UTF8.self)
    }
}
