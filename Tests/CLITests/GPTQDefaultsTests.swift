import Foundation
import ModelFormats
import XCTest

/// GPTQ's act-order default through the binary: act-order with static groups everywhere — into GGUF (ggml blocks are
/// fixed in column order, so the order costs nothing at run time) and into packed checkpoints (groups in column order,
/// no g_idx: desc_act=False, llm-compressor's default actorder=static); `--act-order` alone on a packed format keeps
/// the groups in act-order with a g_idx (desc_act=True), `--no-act-order` quantizes in the stored order.
final class GPTQDefaultsTests: XCTestCase {
    let microHF = CLI.repo.appendingPathComponent("Formats/golden/micro-llama-hf").path
    let microK = CLI.repo.appendingPathComponent("Formats/golden/micro-llama-k-bf16.gguf").path
    let text = CLI.repo.appendingPathComponent("Formats/golden/wiki.valid.first20k.txt").path
    var cal: [String] { ["--method", "gptq", "--calibration", text, "--samples", "8", "--seq-len", "64"] }

    func quantize(_ args: [String], to out: String) throws -> Data {
        let r = try CLI.run(["quantize"] + args + ["-o", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        var isDir: ObjCBool = false
        FileManager.default.fileExists(atPath: out, isDirectory: &isDir)
        return try Data(contentsOf: URL(fileURLWithPath: isDir.boolValue ? out + "/model.safetensors" : out))
    }

    func testGGUFDefaultsToActOrderWithStaticGroups() throws {
        let d = CLI.tmpDir()
        let gguf = [microK, "--type", "Q4_K_M"] + cal
        let byDefault = try quantize(gguf, to: d + "/default.gguf")
        let explicit = try quantize(gguf + ["--act-order", "--static-groups"], to: d + "/act.gguf")
        let plain = try quantize(gguf + ["--no-act-order"], to: d + "/plain.gguf")
        XCTAssertEqual(byDefault, explicit, "GGUF: the default is --act-order --static-groups")
        XCTAssertNotEqual(byDefault, plain, "--no-act-order quantizes columns in their stored order")
        XCTAssertEqual(byDefault.count, plain.count, "same plan, same size")
    }

    func testPackedDefaultsToStaticActOrder() throws {
        let d = CLI.tmpDir()
        let packed = [microHF, "--format", "gptq", "--group-size", "32"] + cal
        let byDefault = try quantize(packed, to: d + "/default")
        let explicit = try quantize(packed + ["--act-order", "--static-groups"], to: d + "/static")
        let plain = try quantize(packed + ["--no-act-order"], to: d + "/plain")
        let dynamic = try quantize(packed + ["--act-order"], to: d + "/dynamic")
        XCTAssertEqual(byDefault, explicit, "packed: the default is --act-order --static-groups")
        XCTAssertNotEqual(byDefault, plain, "--no-act-order quantizes columns in their stored order")
        XCTAssertNotEqual(byDefault, dynamic, "--act-order alone: groups in act-order")
        func config(_ name: String) throws -> [String: Any] {
            let data = try Data(contentsOf: URL(fileURLWithPath: d + "/" + name + "/quantize_config.json"))
            return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        }
        for (name, descAct, staticGroups, order) in [("default", false, true, "static"), ("plain", false, false, "none"),
                                                     ("dynamic", true, false, "group")] {
            let c = try config(name)
            XCTAssertEqual(c["desc_act"] as? Bool, descAct, name)
            XCTAssertEqual(c["static_groups"] as? Bool, staticGroups, name)
            XCTAssertEqual((c["meta"] as? [String: Any])?["act_order"] as? String, order, name)
        }
        // static groups keep every g_idx in column order (column i in group i / 32); act-order groups do not
        func trivialGroups(_ name: String) throws -> Bool {
            let f = try SafetensorsFile(path: d + "/" + name + "/model.safetensors")
            let idx = f.tensors.filter { $0.name.hasSuffix(".g_idx") }
            XCTAssertEqual(idx.count, 2 * 7, "every linear of the two layers has a g_idx")
            return try idx.allSatisfy { t in
                XCTAssertEqual(t.dtype, .i32, t.name)
                let raw = f.bytes(of: t)
                return (0..<(raw.count / 4)).allSatisfy { Int(raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) == $0 / 32 }
            }
        }
        XCTAssertTrue(try trivialGroups("default"))
        XCTAssertTrue(try trivialGroups("plain"))
        XCTAssertFalse(try trivialGroups("dynamic"))
    }

    /// AWQ's clip search: on for --method awq (AutoAWQ), off for awq+gptq (llm-compressor's AWQ has none, and GPTQ
    /// would take the clipped weights as its target, so what the clip costs would go unmeasured).
    func testAWQClipsAloneButNotBeforeGPTQ() throws {
        let d = CLI.tmpDir()
        let awqCal = ["--calibration", text, "--samples", "8", "--seq-len", "64", "--awq-search-samples", "2"]
        func clipped(_ method: String, _ extra: [String], _ name: String) throws -> (Data, [Any]) {
            let out = d + "/" + name
            let r = try CLI.run(["quantize", microK, "--type", "Q4_0", "--method", method] + awqCal + extra + ["-o", out, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            let layers = try XCTUnwrap(j?["layers"] as? [[String: Any]], r.stdout)
            XCTAssertEqual(layers.count, 2)
            return (try Data(contentsOf: URL(fileURLWithPath: out)), layers.map { $0["clipped_weights"] ?? NSNull() })
        }
        let (ag, agClip) = try clipped("awq+gptq", [], "ag.gguf")
        let (agOff, _) = try clipped("awq+gptq", ["--no-clip"], "ag-off.gguf")
        let (agOn, agOnClip) = try clipped("awq+gptq", ["--clip"], "ag-on.gguf")
        XCTAssertEqual(ag, agOff, "awq+gptq: no clip search by default")
        XCTAssertNotEqual(ag, agOn, "--clip: clipped weights give other blocks")
        XCTAssertTrue(agClip.allSatisfy { $0 is NSNull }, "\(agClip)")
        let counts = agOnClip.compactMap { ($0 as? NSNumber)?.intValue }
        XCTAssertEqual(counts.count, 2, "\(agOnClip)")
        XCTAssertGreaterThan(counts.reduce(0, +), 0, "the clip search clipped some weights")
        let (awq, awqClip) = try clipped("awq", [], "awq.gguf")
        let (awqOn, _) = try clipped("awq", ["--clip"], "awq-on.gguf")
        XCTAssertEqual(awq, awqOn, "awq: the clip search is on by default")
        XCTAssertEqual(awqClip.compactMap { ($0 as? NSNumber)?.intValue }, counts, "the same AWQ phase clips the same weights")
    }
}
