import Foundation
import XCTest

/// Every command that writes refuses, before any work, an output that is or would replace one of its inputs: the
/// command exits non-zero, the error names the conflicting path, and every input keeps its bytes.
final class OutputConflictTests: XCTestCase {
    let golden = CLI.repo.appendingPathComponent("Formats/golden")

    /// A fresh copy of the golden micro checkpoint, a GGUF of it, and a calibration text, in a new directory.
    func workspace() throws -> (dir: String, model: String, gguf: String, text: String) {
        let dir = CLI.tmpDir()
        let model = dir + "/m"
        try FileManager.default.copyItem(atPath: golden.appendingPathComponent("micro-llama-hf").path, toPath: model)
        let gguf = dir + "/m.gguf"
        try FileManager.default.copyItem(atPath: golden.appendingPathComponent("micro-llama-k-bf16.gguf").path, toPath: gguf)
        let text = dir + "/calib.txt"
        try String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 200).write(toFile: text, atomically: true, encoding: .utf8)
        return (dir, model, gguf, text)
    }

    /// SHA-like fingerprint of every regular file under `root` (its bytes), to show nothing changed.
    func snapshot(_ root: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let fm = FileManager.default
        guard let e = fm.enumerator(atPath: root) else { return out }
        for case let rel as String in e {
            var isDir: ObjCBool = false
            let p = root + "/" + rel
            if fm.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue { out[rel] = try Data(contentsOf: URL(fileURLWithPath: p)) }
        }
        return out
    }

    func expectRefusal(_ args: [String], names path: String, in ws: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let before = try snapshot(ws)
        let r = try CLI.run(args)
        XCTAssertNotEqual(r.status, 0, "\(args) exited 0", file: file, line: line)
        XCTAssertLessThan(r.status, 128, "\(args) crashed: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(path), "the error should name \(path): \(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "one line: \(r.stderr)", file: file, line: line)
        let after = try snapshot(ws)
        XCTAssertEqual(Set(after.keys), Set(before.keys), "files appeared or vanished for \(args)", file: file, line: line)
        for (k, v) in before where after[k] != v { XCTFail("\(k) changed for \(args)", file: file, line: line) }
    }

    func testQuantizeOverItsOwnSource() throws {
        let w = try workspace()
        let st = w.model + "/model.safetensors"
        // the command, with and without --force
        try expectRefusal(["quantize", w.model, "-o", st, "--type", "Q4_0"], names: st, in: w.dir)
        try expectRefusal(["quantize", w.model, "-o", st, "--type", "Q4_0", "--force"], names: st, in: w.dir)
        try expectRefusal(["quantize", w.model, "-o", w.model + "/config.json", "--type", "Q8_0"], names: w.model + "/config.json", in: w.dir)
        try expectRefusal(["quantize", w.gguf, "-o", w.gguf, "--type", "Q8_0"], names: w.gguf, in: w.dir)
        // the same file through a symlink and through a hard link
        try FileManager.default.createSymbolicLink(atPath: w.dir + "/link.gguf", withDestinationPath: st)
        try expectRefusal(["quantize", w.model, "-o", w.dir + "/link.gguf", "--type", "Q4_0"], names: st, in: w.dir)
        try FileManager.default.linkItem(atPath: st, toPath: w.dir + "/hard.gguf")
        try expectRefusal(["quantize", w.model, "-o", w.dir + "/hard.gguf", "--type", "Q4_0"], names: st, in: w.dir)
        // a path spelled another way
        try expectRefusal(["quantize", w.model, "-o", w.model + "/../m/./model.safetensors", "--type", "Q4_0", "--force"], names: "model.safetensors", in: w.dir)
    }

    func testShardsTheIndexNames() throws {
        let w = try workspace()
        // a sharded checkpoint whose index names a shard without the usual extension
        let st = w.model + "/model.safetensors"
        try FileManager.default.moveItem(atPath: st, toPath: w.model + "/weights-part1.bin")
        let hdrLen = try Data(contentsOf: URL(fileURLWithPath: w.model + "/weights-part1.bin")).prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        let header = try Data(contentsOf: URL(fileURLWithPath: w.model + "/weights-part1.bin")).subdata(in: 8..<(8 + Int(hdrLen)))
        let names = try (JSONSerialization.jsonObject(with: header) as! [String: Any]).keys.filter { $0 != "__metadata__" }
        let index: [String: Any] = ["metadata": [:] as [String: Any], "weight_map": Dictionary(uniqueKeysWithValues: names.map { ($0, "weights-part1.bin") })]
        try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: w.model + "/model.safetensors.index.json"))
        let shard = w.model + "/weights-part1.bin"
        try expectRefusal(["convert", w.model, "-o", shard, "--type", "f32"], names: shard, in: w.dir)
        try expectRefusal(["quantize", w.model, "-o", shard, "--type", "Q8_0"], names: shard, in: w.dir)
        try expectRefusal(["convert", w.model, "-o", w.model + "/model.safetensors.index.json"], names: "model.safetensors.index.json", in: w.dir)
    }

    func testPackedAndExportDirectories() throws {
        let w = try workspace()
        // the source directory itself
        try expectRefusal(["quantize", w.model, "-o", w.model, "--format", "gptq", "--bits", "4", "--group-size", "32"], names: w.model, in: w.dir)
        try expectRefusal(["quantize", w.model, "-o", w.model, "--format", "compressed-tensors", "--force"], names: w.model, in: w.dir)
        // an export into the directory that holds its source
        let inner = w.model + "/m.gguf"
        try FileManager.default.copyItem(atPath: w.gguf, toPath: inner)
        try expectRefusal(["export", inner, "-o", w.model, "--force"], names: inner, in: w.dir)
        // an export over an existing checkpoint needs --force; with it, a non-input checkpoint is replaced
        let other = w.dir + "/other"
        try FileManager.default.copyItem(atPath: w.model, toPath: other)
        try expectRefusal(["export", w.gguf, "-o", other], names: other, in: w.dir)
        let r = try CLI.run(["export", w.gguf, "-o", other, "--force", "--dtype", "f32"])
        XCTAssertEqual(r.status, 0, r.stderr)
        // a packed checkpoint directory of another model's output over a model directory through a symlink
        try FileManager.default.createSymbolicLink(atPath: w.dir + "/alias", withDestinationPath: w.model)
        try expectRefusal(["quantize", w.model, "-o", w.dir + "/alias", "--format", "awq", "--method", "rtn"], names: "alias", in: w.dir)
    }

    func testCalibrationImatrixAndEvalOutputs() throws {
        let w = try workspace()
        let imatrix = w.dir + "/x.imatrix.gguf"
        try FileManager.default.copyItem(atPath: golden.appendingPathComponent("micro-llama-k.imatrix.gguf").path, toPath: imatrix)
        try expectRefusal(["quantize", w.model, "-o", w.text, "--type", "Q4_0", "--method", "gptq", "--calibration", w.text], names: w.text, in: w.dir)
        try expectRefusal(["quantize", w.model, "-o", imatrix, "--type", "Q4_0", "--imatrix", imatrix], names: imatrix, in: w.dir)
        try expectRefusal(["imatrix", w.model, "--calibration", w.text, "-o", w.text], names: w.text, in: w.dir)
        try expectRefusal(["imatrix", w.model, "--calibration", w.text, "-o", w.model + "/tokenizer.json", "--output-format", "dat"],
                          names: w.model + "/tokenizer.json", in: w.dir)
        try expectRefusal(["eval", w.model, w.gguf, "--text", w.text, "--json", w.text], names: w.text, in: w.dir)
        try expectRefusal(["eval", w.model, w.gguf, "--text", w.text, "--report", w.gguf], names: w.gguf, in: w.dir)
        try expectRefusal(["eval", w.model, "--text", w.text, "--json", w.dir + "/r.out", "--report", w.dir + "/r.out"], names: w.dir + "/r.out", in: w.dir)
    }

    func testOutputNamedForAnotherFormat() throws {
        let w = try workspace()
        let st = w.dir + "/new.safetensors"
        try expectRefusal(["convert", w.model, "-o", st], names: st, in: w.dir)
        try expectRefusal(["quantize", w.model, "-o", st, "--type", "Q8_0"], names: st, in: w.dir)
        try expectRefusal(["quantize", w.model, "-o", w.dir + "/packed.gguf", "--format", "gptq", "--group-size", "32"], names: "packed.gguf", in: w.dir)
        try expectRefusal(["export", w.gguf, "-o", w.dir + "/hf.gguf"], names: "hf.gguf", in: w.dir)
        try expectRefusal(["imatrix", w.model, "--calibration", w.text, "-o", w.dir + "/i.gguf", "--output-format", "dat"], names: "i.gguf", in: w.dir)
        try expectRefusal(["eval", w.model, "--text", w.text, "--json", w.dir + "/e.safetensors"], names: "e.safetensors", in: w.dir)
        // --force writes it anyway: a GGUF under a .safetensors name
        let r = try CLI.run(["convert", w.model, "-o", st, "--type", "f32", "--force"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let magic = try Data(contentsOf: URL(fileURLWithPath: st)).prefix(4)
        XCTAssertEqual(String(decoding: magic, as: UTF8.self), "GGUF")
    }
}

/// Every `--json` output is one JSON document that round-trips the paths it names, whatever characters they hold.
final class JSONOutputTests: XCTestCase {
    func testPathsWithQuotesBackslashesNewlinesAndNonASCII() throws {
        let dir = CLI.tmpDir()
        let model = CLI.repo.appendingPathComponent("Formats/golden/micro-llama-hf").path
        for name in ["a\"b.gguf", "back\\slash.gguf", "new\nline.gguf", "tab\tand ünïcødé 模型.gguf"] {
            let out = dir + "/" + name
            for args in [["convert", model, "-o", out, "--type", "f32", "--json"], ["quantize", model, "-o", out, "--type", "Q8_0", "--json"]] {
                let r = try CLI.run(args)
                XCTAssertEqual(r.status, 0, r.stderr)
                let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
                XCTAssertEqual(obj?["output"] as? String, out, "\(args[0]) \(name): \(r.stdout)")
            }
            let hf = dir + "/" + name.replacingOccurrences(of: ".gguf", with: "-hf")
            let r = try CLI.run(["export", out, "-o", hf, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            XCTAssertEqual(obj?["output"] as? String, hf)
        }
    }
}
