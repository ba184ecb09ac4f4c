import Foundation
import XCTest

/// `quantize --json` of a calibrated run says where its wall time went: "phases" (seconds by phase, which do not
/// overlap, so they add up to at most "seconds").
final class PhaseTimesCLITests: XCTestCase {
    let microHF = CLI.repo.appendingPathComponent("Formats/golden/micro-llama-hf").path
    let microK = CLI.repo.appendingPathComponent("Formats/golden/micro-llama-k-bf16.gguf").path
    let text = CLI.repo.appendingPathComponent("Formats/golden/wiki.valid.first20k.txt").path
    var cal: [String] { ["--calibration", text, "--samples", "8", "--seq-len", "64"] }
    var awqCal: [String] { cal + ["--awq-search-samples", "2"] }

    func phases(_ args: [String]) throws -> (seconds: Double, phases: [String: Double]) {
        let r = try CLI.run(["quantize"] + args + ["--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        let seconds = try XCTUnwrap(j["seconds"] as? Double, r.stdout)
        let phases = try XCTUnwrap(j["phases"] as? [String: Double], r.stdout)
        XCTAssertTrue(phases.values.allSatisfy { $0 >= 0 }, "\(phases)")
        XCTAssertLessThanOrEqual(phases.values.reduce(0, +), seconds, "phases do not overlap: \(phases) in \(seconds) s")
        return (seconds, phases)
    }

    func testAWQThenGPTQIntoGGUF() throws {
        let d = CLI.tmpDir()
        let (_, p) = try phases([microK, "--type", "Q4_0", "--method", "awq+gptq"] + awqCal + ["-o", d + "/ag.gguf"])
        let expected = ["awq embed", "awq load", "awq capture", "awq search blocks", "awq search linears", "awq fold", "awq state",
                        "awq output", "gptq embed", "gptq load", "gptq capture", "gptq hessian", "gptq solve", "gptq report",
                        "gptq forward", "gptq state", "gptq output", "write"]
        XCTAssertEqual(Set(p.keys), Set(expected), "no clip search before GPTQ, AWQ advances in its capture")
        let (_, clipped) = try phases([microK, "--type", "Q4_0", "--method", "awq", "--clip"] + awqCal + ["-o", d + "/awq.gguf"])
        XCTAssertNotNil(clipped["awq clip"], "\(clipped)")
        XCTAssertNil(clipped["gptq solve"], "\(clipped)")
    }

    func testPackedGPTQAndRoundToNearest() throws {
        let d = CLI.tmpDir()
        let (_, p) = try phases([microHF, "--format", "gptq", "--group-size", "32", "--method", "gptq"] + cal + ["-o", d + "/gptq"])
        for name in ["gptq capture", "gptq hessian", "gptq solve", "gptq forward", "write"] { XCTAssertNotNil(p[name], "\(name): \(p)") }
        XCTAssertNil(p["awq capture"], "\(p)")
        let (_, rtn) = try phases([microK, "--type", "Q4_0", "-o", d + "/rtn.gguf"])
        XCTAssertTrue(rtn.isEmpty, "round-to-nearest has no calibration phases: \(rtn)")
    }
}
