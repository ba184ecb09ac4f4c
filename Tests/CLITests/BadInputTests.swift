import Foundation
import ModelFormats
import TensorCore
import XCTest

/// Hand-made malformed inputs through the real binary: each gives a specific error naming the file and the
/// problem, a non-zero exit code, no crash, and no output file (nor `.partial`) left behind.
final class BadInputTests: XCTestCase {
    let micro = CLI.repo.appendingPathComponent("Formats/golden/micro-llama-hf").path

    /// A copy of the golden micro checkpoint with its weights rewritten by `edit` (name → (shape, values)).
    func microCopy(config: ((inout String) -> Void)? = nil, files: [String: String] = [:], dropFiles: [String] = [],
                   edit: ((inout [(String, [Int], [Float])]) -> Void)? = nil) throws -> String {
        let dir = CLI.tmpDir() + "/micro-llama-hf"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in ["config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "generation_config.json", "model.safetensors"]
        where !dropFiles.contains(f) {
            try FileManager.default.copyItem(atPath: micro + "/" + f, toPath: dir + "/" + f)
        }
        if let config {
            var s = try String(contentsOfFile: dir + "/config.json", encoding: .utf8)
            config(&s)
            try s.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        }
        for (name, text) in files { try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8) }
        if let edit {
            let f = try SafetensorsFile(path: micro + "/model.safetensors")
            let ck = try SafetensorsCheckpoint(files: [f])
            var ts = try f.tensors.map { ($0.name, $0.shape, try ck.floats($0.name)) }
            edit(&ts)
            try FileManager.default.removeItem(atPath: dir + "/model.safetensors")
            try SafetensorsWriter.write(path: dir + "/model.safetensors", entries: ts.map { .init(name: $0.0, dtype: .f32, shape: $0.1) }) { k in
                ts[k].2.withUnsafeBytes { Array($0) }
            }
        }
        return dir
    }

    func expectFailure(_ args: [String], output: String?, contains: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try CLI.run(args)
        XCTAssertNotEqual(r.status, 0, "exit status for \(args)", file: file, line: line)
        XCTAssertLessThan(r.status, 128, "crashed (signal) on \(args): \(r.stderr)", file: file, line: line)
        for c in contains { XCTAssertTrue(r.stderr.contains(c), "expected '\(c)' in stderr: \(r.stderr)", file: file, line: line) }
        if let output {
            XCTAssertFalse(FileManager.default.fileExists(atPath: output), "output left behind: \(output)", file: file, line: line)
            XCTAssertFalse(FileManager.default.fileExists(atPath: output + ".partial"), "partial left behind", file: file, line: line)
        }
    }

    func testBinaryIsBuilt() {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: CLI.binary), "build quantkit first (swift build -c release)")
    }

    func testMalformedSafetensorsThroughConvert() throws {
        let cases: [(String, [UInt8], String)] = [
            ("truncated", [1, 2, 3], "truncated"),
            ("header-past-end", { var w = ByteWriter(); w.u64(4096); w.raw(Array("{}".utf8)); return w.bytes }(), "runs past the end"),
            ("bad-json", { var w = ByteWriter(); let h = Array("{\"x\": [".utf8); w.u64(UInt64(h.count)); w.raw(h); return w.bytes }(), "invalid JSON"),
            ("unknown-dtype", { var w = ByteWriter(); let h = Array(#"{"a": {"dtype": "F7", "shape": [1], "data_offsets": [0, 4]}}"#.utf8); w.u64(UInt64(h.count)); w.raw(h); w.u32(0); return w.bytes }(), "unknown dtype F7"),
            ("overlap", { var w = ByteWriter(); let h = Array(#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#.utf8); w.u64(UInt64(h.count)); w.raw(h); w.zeros(12); return w.bytes }(), "overlap"),
            ("count-mismatch", { var w = ByteWriter(); let h = Array(#"{"a": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 8]}}"#.utf8); w.u64(UInt64(h.count)); w.raw(h); w.zeros(8); return w.bytes }(), "needs 6 bytes"),
        ]
        for (name, bytes, expect) in cases {
            let dir = try microCopy()
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
            let out = CLI.tmpDir() + "/\(name).gguf"
            try expectFailure(["convert", dir, "-o", out], output: out, contains: ["model.safetensors", expect])
        }
    }

    func testBadCheckpointsThroughConvert() throws {
        var cases: [(String, String, [String])] = []
        cases.append(("unknown-arch", try microCopy(config: { $0 = $0.replacingOccurrences(of: "LlamaForCausalLM", with: "GPTBigCodeForCausalLM") }), ["config.json", "unsupported architecture GPTBigCodeForCausalLM"]))
        cases.append(("bad-config-json", try microCopy(config: { $0 = String($0.dropLast(5)) }), ["config.json", "invalid JSON"]))
        cases.append(("missing-hidden", try microCopy(config: { $0 = $0.replacingOccurrences(of: "\"hidden_size\"", with: "\"hidden_sz\"") }), ["config.json", "missing \"hidden_size\""]))
        cases.append(("bad-heads", try microCopy(config: { $0 = $0.replacingOccurrences(of: "\"num_key_value_heads\": 2", with: "\"num_key_value_heads\": 3") }), ["config.json", "not a multiple of num_key_value_heads 3"]))
        cases.append(("no-config", try microCopy(dropFiles: ["config.json"]), ["config.json", "missing"]))
        cases.append(("missing-tensor", try microCopy(edit: { $0.removeAll { $0.0 == "model.layers.1.mlp.up_proj.weight" } }), ["missing tensor model.layers.1.mlp.up_proj.weight"]))
        cases.append(("wrong-shape", try microCopy(edit: { ts in
            let k = ts.firstIndex { $0.0 == "model.layers.0.self_attn.k_proj.weight" }!
            ts[k].1 = [8, 64]
        }), ["tensor model.layers.0.self_attn.k_proj.weight has shape [8, 64], config.json implies [16, 32]"]))
        cases.append(("nan-weight", try microCopy(edit: { ts in
            let k = ts.firstIndex { $0.0 == "model.layers.0.mlp.gate_proj.weight" }!
            ts[k].2[17] = .nan
        }), ["model.safetensors", "tensor model.layers.0.mlp.gate_proj.weight has a non-finite value", "element 17"]))
        cases.append(("inf-weight", try microCopy(edit: { ts in
            let k = ts.firstIndex { $0.0 == "model.norm.weight" }!
            ts[k].2[3] = -.infinity
        }), ["tensor model.norm.weight has a non-finite value"]))
        cases.append(("unmappable-tensor", try microCopy(edit: { $0.append(("model.layers.0.mlp.experts.0.weight", [2], [1, 2])) }), ["cannot map tensor model.layers.0.mlp.experts.0.weight"]))
        cases.append(("extra-layer", try microCopy(edit: { $0.append(("model.layers.7.input_layernorm.weight", [32], [Float](repeating: 1, count: 32))) }), ["belongs to layer 7 but num_hidden_layers is 2"]))
        cases.append(("no-tokenizer", try microCopy(dropFiles: ["tokenizer.json", "tokenizer.model"]), ["no tokenizer.model or tokenizer.json"]))
        cases.append(("bad-tokenizer-model", try microCopy(files: ["tokenizer.model": "\u{0A}\u{7F}garbage"]), ["tokenizer.model"]))
        cases.append(("bad-tokenizer-json", try microCopy(files: ["tokenizer.json": "{\"model\": "]), ["tokenizer.json", "invalid JSON"]))
        cases.append(("bad-tokenizer-config", try microCopy(files: ["tokenizer_config.json": "[1, 2"]), ["tokenizer_config.json", "invalid JSON"]))
        for (name, dir, expect) in cases {
            let out = CLI.tmpDir() + "/\(name).gguf"
            try expectFailure(["convert", dir, "-o", out], output: out, contains: expect)
        }
        // the packed writer checks the checkpoint the same way (it used to copy a layer beyond the config as F16)
        for (name, dir, expect) in cases where ["extra-layer", "wrong-shape", "missing-tensor"].contains(name) {
            let out = CLI.tmpDir() + "/\(name)-packed"
            try expectFailure(["quantize", dir, "-o", out, "--format", "gptq", "--group-size", "32"], output: out, contains: expect)
        }
    }

    func testMalformedGGUFThroughInspectAndExport() throws {
        func header(version: UInt32 = 3, nTensors: UInt64 = 0, nKV: UInt64 = 0, body: (inout ByteWriter) -> Void = { _ in }) -> [UInt8] {
            var w = ByteWriter()
            w.u32(GGUF.magic); w.u32(version); w.u64(nTensors); w.u64(nKV)
            body(&w)
            return w.bytes
        }
        let cases: [(String, [UInt8], String)] = [
            ("bad-magic", [0x47, 0x47, 0x55, 0x47, 3, 0, 0, 0], "not a GGUF file"),
            ("v1", header(version: 1), "GGUF v1 is no longer supported"),
            ("truncated-header", Array(header().prefix(13)), "truncated"),
            ("absurd-kv-count", header(nKV: 1 << 62), "metadata count"),
            ("absurd-tensor-count", header(nTensors: 1 << 62), "tensor count"),
            ("long-string", header(nKV: 1) { $0.u64(1 << 40); $0.zeros(64) }, "runs past the end"),
            ("five-dims", header(nTensors: 1) { w in w.u64(1); w.raw([0x74]); w.u32(5); for _ in 0..<5 { w.u64(1) }; w.u32(0); w.u64(0) }, "5 dimensions"),
            ("long-name", header(nTensors: 1) { w in w.u64(70); w.raw([UInt8](repeating: 0x61, count: 70)); w.u32(1); w.u64(32); w.u32(0); w.u64(0) }, "at most 63"),
            ("bad-alignment", header(nKV: 1) { w in w.u64(17); w.raw(Array("general.alignment".utf8)); w.u32(4); w.u32(48) }, "power of 2"),
            ("data-past-eof", header(nTensors: 1) { w in w.u64(1); w.raw([0x74]); w.u32(1); w.u64(1024); w.u32(0); w.u64(0) }, "truncated: tensor data ends"),
        ]
        for (name, bytes, expect) in cases {
            let path = CLI.tmpDir() + "/\(name).gguf"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            try expectFailure(["inspect", path], output: nil, contains: [path, expect])
            let out = CLI.tmpDir() + "/exported"
            try expectFailure(["export", path, "-o", out], output: out + "/model.safetensors", contains: [path, expect])
        }
    }

    func testBadOptions() throws {
        let out = CLI.tmpDir() + "/x.gguf"
        try expectFailure(["convert", micro, "-o", out, "--type", "q3_z"], output: out, contains: ["The value 'q3_z' is invalid for '--type <type>'", "'f32', 'f16', 'bf16', 'q8_0' or 'auto'"])
        try expectFailure(["convert", micro, "-o", out, "--pre", "nonsense"], output: out, contains: ["--pre nonsense is not a pre-tokenizer"])
        try expectFailure(["convert", "/definitely/not/here", "-o", out], output: out, contains: ["/definitely/not/here", "no such file"])
        try expectFailure(["convert", micro, "-o", "/nonexistent-dir-qk/x.gguf"], output: nil, contains: ["does not exist"])
        try expectFailure(["export", micro + "/model.safetensors", "-o", CLI.tmpDir() + "/e"], output: nil, contains: ["not a GGUF file"])
    }

    func testQuantizeBadInputs() throws {
        let k = CLI.repo.appendingPathComponent("Formats/golden/micro-llama-k-bf16.gguf").path
        let out = CLI.tmpDir() + "/q.gguf"
        try expectFailure(["quantize", k, "-o", out, "--type", "Q9_K"], output: out, contains: ["The value 'Q9_K' is invalid for '--type <type>'", "- Q4_K_M"])
        try expectFailure(["quantize", k, "-o", out, "--type", "Q4_K_M", "--tensor-type", "attn_v"], output: out, contains: ["expected REGEX=TYPE"])
        try expectFailure(["quantize", k, "-o", out, "--type", "Q4_K_M", "--tensor-type", "attn_v=q7_x"], output: out, contains: ["unknown ggml type q7_x"])
        try expectFailure(["quantize", k, "-o", out, "--type", "Q4_K_M", "--tensor-type", "([=q8_0"], output: out, contains: ["not a valid regular expression"])
        try expectFailure(["quantize", k, "-o", out, "--type", "Q2_K_S"], output: out, contains: ["Q2_K_S needs an importance matrix"])
        try expectFailure(["quantize", k, "-o", out, "--type", "Q4_0", "--imatrix", "/no/such.imatrix"], output: out, contains: ["/no/such.imatrix"])
        let badIm = CLI.tmpDir() + "/bad.dat"
        try Data([1, 0, 0, 0, 200, 0, 0, 0]).write(to: URL(fileURLWithPath: badIm))
        try expectFailure(["quantize", k, "-o", out, "--type", "Q4_0", "--imatrix", badIm], output: out, contains: [badIm])
        // a quantized input is not requantized without --allow-requantize
        let q = CLI.tmpDir() + "/q4.gguf"
        XCTAssertEqual(try CLI.run(["quantize", k, "-o", q, "--type", "Q4_0"]).status, 0)
        try expectFailure(["quantize", q, "-o", out, "--type", "Q8_0"], output: out, contains: ["is already Q6_K", "--allow-requantize"])
        let rq = CLI.tmpDir() + "/rq.gguf"
        XCTAssertEqual(try CLI.run(["quantize", q, "-o", rq, "--type", "Q8_0", "--allow-requantize"]).status, 0)
        // NaN in a weight: the tensor is named
        let dir = try microCopy(edit: { ts in
            let i = ts.firstIndex { $0.0 == "model.layers.1.self_attn.v_proj.weight" }!
            ts[i].2[40] = .nan
        })
        try expectFailure(["quantize", dir, "-o", out, "--type", "Q8_0"], output: out, contains: ["model.layers.1.self_attn.v_proj.weight", "non-finite"])
    }

    /// Packed-format options: clear errors for what a layout cannot hold, and `--group-size -1` (per channel) parses.
    func testPackedFormatOptions() throws {
        let out = CLI.tmpDir() + "/packed"
        try expectFailure(["quantize", micro, "-o", out, "--format", "awq", "--bits", "8", "--group-size", "32"], output: out, contains: ["4-bit only"])
        try expectFailure(["quantize", micro, "-o", out, "--format", "gptq", "--group-size", "48"], output: out, contains: ["group size 48 does not divide"])
        try expectFailure(["quantize", micro, "-o", out, "--format", "zip"], output: out, contains: ["one of 'gguf', 'gptq', 'awq' or 'compressed-tensors'"])
        try expectFailure(["quantize", micro, "-o", out, "--format", "gptq", "--type", "Q4_0"], output: out, contains: ["--type is a GGUF preset"])
        try expectFailure(["quantize", micro, "-o", out, "--format", "gptq", "--method", "gptq"], output: out, contains: ["needs --calibration"])
        try expectFailure(["quantize", micro, "-o", out, "--format", "gptq", "--sym", "--asym"], output: out, contains: ["exclude each other"])
        let k = CLI.repo.appendingPathComponent("Formats/golden/micro-llama-k-bf16.gguf").path
        try expectFailure(["quantize", k, "-o", out, "--format", "gptq"], output: out, contains: ["run `quantkit export` on this GGUF first"])
        let r = try CLI.run(["quantize", micro, "-o", out, "--format", "compressed-tensors", "--bits", "8", "--group-size", "-1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("\"scheme\": \"w8 g-1 sym\""), r.stdout)
        try expectFailure(["quantize", micro, "-o", out, "--format", "gptq", "--group-size", "32"], output: nil, contains: ["exists and is not empty"])
    }

    /// Typed options: a misspelt value fails in argument parsing, before any file is opened (the source here does not
    /// exist), naming the valid values; option-group checks (validate()) run before any work too.
    func testTypedOptionsFailBeforeAnyFileIsOpened() throws {
        let missing = CLI.tmpDir() + "/no-such-model"
        let out = CLI.tmpDir() + "/o.gguf"
        let cases: [([String], [String])] = [
            (["--type", "Q4_0", "--method", "gtpq"], ["The value 'gtpq' is invalid for '--method <method>'", "'rtn', 'gptq', 'awq' or 'awq+gptq'"]),
            (["--type", "Q4_K_X"], ["The value 'Q4_K_X' is invalid for '--type <type>'", "- IQ4_XS"]),
            (["--type", "Q4_0", "--output-tensor-type", "q9_0"], ["'q9_0' is invalid for '--output-tensor-type"]),
            (["--type", "Q4_0", "--tensor-type", "attn_v"], ["'attn_v' is invalid for '--tensor-type"]),
            (["--format", "gptq", "--rtn-grid", "minmax"], ["one of 'gptq' and 'awq'"]),
            (["--type", "Q4_0", "--method", "gptq", "--calibration", "x.txt", "--damp", "1.5"], ["--damp must be in [0, 1)"]),
            (["--type", "Q4_0", "--method", "awq", "--calibration", "x.txt", "--samples", "0"], ["--samples must be positive"]),
            (["--type", "Q4_0", "--calibration", "x.txt"], ["--calibration is for --method gptq or awq"]),
            (["--type", "Q4_0", "--method", "gptq", "--calibration", "x.txt", "--no-clip"], ["--clip/--no-clip", "are for --method awq or awq+gptq"]),
            (["--type", "Q4_0", "--method", "gptq", "--calibration", "x.txt", "--awq-search-loss", "linear"],
             ["--awq-search-loss are for --method awq or awq+gptq"]),
            (["--type", "Q4_0", "--method", "awq", "--calibration", "x.txt", "--awq-search-loss", "gram"],
             ["'gram' is invalid for '--awq-search-loss", "one of 'block' and 'linear'"]),
            (["--type", "Q4_0", "--method", "awq", "--calibration", "x.txt", "--gptaq"], ["--gptaq is for --method gptq or awq+gptq"]),
            (["--type", "Q4_0", "--method", "awq", "--calibration", "x.txt", "--no-scale-judge"], ["--no-scale-judge is for --method awq+gptq"]),
            (["--type", "Q4_0", "--method", "gptq", "--calibration", "x.txt", "--no-scale-judge"], ["--no-scale-judge is for --method awq+gptq"]),
            (["--type", "Q4_0", "--method", "gptq", "--calibration", "x.txt", "--gptaq-alpha", "0.5"], ["--gptaq-alpha needs --gptaq"]),
            (["--type", "Q4_0", "--method", "gptq", "--calibration", "x.txt", "--gptaq", "--gptaq-alpha", "0"],
             ["--gptaq-alpha must be in (0, 1] (got 0.0)"]),
            (["--type", "Q4_0", "--method", "gptq", "--calibration", "x.txt", "--gptaq", "--gptaq-alpha", "nan"],
             ["--gptaq-alpha must be in (0, 1]"]),
            (["--format", "gptq", "--bits", "5"], ["--bits must be 2, 3, 4 or 8"]),
            (["--format", "awq", "--imatrix", "x.gguf"], ["apply to --format gguf"]),
            (["--method", "rtn"], ["--type PRESET is required for --format gguf"]),
            // the default act-order has static groups: nothing for --updated-group-params to update
            (["--format", "gptq", "--method", "gptq", "--calibration", "x.txt", "--updated-group-params"],
             ["--updated-group-params is for packed formats with groups set during the pass"]),
        ]
        for (extra, messages) in cases {
            let r = try CLI.run(["quantize", missing, "-o", out] + extra)
            XCTAssertEqual(r.status, 64, "\(extra): a usage error (EX_USAGE), \(r.stderr)")
            for m in messages { XCTAssertTrue(r.stderr.contains(m), "\(extra): expected '\(m)' in \(r.stderr)") }
            XCTAssertFalse(r.stderr.contains("no-such-model"), "\(extra): the source was opened: \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(extra)")
        }
        let help = try CLI.run(["quantize", "--help"]).stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for listed in ["(values: gguf, gptq, awq, compressed-tensors; default: gguf)", "(values: rtn, gptq, awq, awq+gptq; default: rtn)",
                       "GGUF TYPES", "CALIBRATION (GPTQ, AWQ)", "PACKED INTEGER SCHEME", "--clip/--no-clip"] {
            XCTAssertTrue(help.contains(listed), "quantize --help lists \(listed): \(help)")
        }
    }

    func testQuantizeDryRunPrintsThePlan() throws {
        let k = CLI.repo.appendingPathComponent("Formats/golden/micro-llama-k-bf16.gguf").path
        let r = try CLI.run(["quantize", k, "--type", "Q4_K_M", "--dry-run", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try JSONParser.parse(Data(r.stdout.utf8), file: "stdout")
        let types = Dictionary(uniqueKeysWithValues: (j["tensors"]?.array ?? []).map { ($0["name"]!.string!, $0["type"]!.string!) })
        XCTAssertEqual(types["output.weight"], "Q6_K")
        XCTAssertEqual(types["blk.1.attn_v.weight"], "Q6_K")
        XCTAssertEqual(types["blk.0.attn_v.weight"], "Q4_K")
        XCTAssertEqual(j["tensors"]?.array?.count, 21)
        let total = (j["tensors"]?.array ?? []).reduce(0) { $0 + ($1["bytes"]?.int ?? 0) }
        XCTAssertEqual(j["total_bytes"]?.int, total)
    }

    func testEvalGenerateImatrixErrorsAndRuns() throws {
        let k = CLI.repo.appendingPathComponent("Formats/golden/micro-llama-k-bf16.gguf").path
        let text = CLI.repo.appendingPathComponent("Formats/golden/wiki.valid.first20k.txt").path
        let short = CLI.tmpDir() + "/short.txt"
        try "just a few words".write(toFile: short, atomically: true, encoding: .utf8)
        try expectFailure(["eval", k, k, "--text", text, "--protocol", "bogus"], output: nil, contains: ["one of 'llama.cpp' and 'paper'"])
        try expectFailure(["eval", k, k, "--text", short], output: nil, contains: ["at least 1024 are needed"])
        try expectFailure(["eval", k, "--text", "/no/such/text"], output: nil, contains: ["/no/such/text"])
        try expectFailure(["generate", k, "--prompt", "hi", "--chat"], output: nil, contains: ["no chat template"])
        try expectFailure(["generate", k, "--prompt", "hi", "--top-p", "0"], output: nil, contains: ["--top-p"])
        try expectFailure(["generate", k, "--prompt", "hi", "--activations", "int4"], output: nil,
                          contains: ["one of 'exact' and 'llama'"])
        let im = CLI.tmpDir() + "/x.imatrix"
        try expectFailure(["imatrix", k, "--calibration", text, "-o", im, "--output-format", "npz"], output: im, contains: ["one of 'gguf' and 'dat'"])
        try expectFailure(["imatrix", k, "--calibration", short, "-o", im], output: im, contains: ["at least 1024 are needed"])

        // real runs on the micro model
        let json = CLI.tmpDir() + "/e.json", html = CLI.tmpDir() + "/e.html"
        let r = try CLI.run(["eval", k, k, "--text", text, "--ctx", "128", "--chunks", "3", "--json", json, "--report", html])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try JSONParser.parse(file: json)
        XCTAssertEqual(j["scored_tokens"]?.int, 3 * 63)
        XCTAssertEqual(j["candidates"]?.array?.first?["kld_mean"]?.double, 0)
        XCTAssertEqual(j["candidates"]?.array?.first?["same_top1_percent"]?.double, 100)
        let groups = j["candidates"]?.array?.first?["nll_shift_by_reference_p"]?.array ?? []
        XCTAssertEqual(groups.count, 4)
        XCTAssertEqual(groups.reduce(0) { $0 + ($1["tokens"]?.int ?? 0) }, 3 * 63)
        XCTAssertTrue(groups.allSatisfy { $0["mean_nll_shift"]?.double == 0 })
        XCTAssertTrue(r.stdout.contains("tokens grouped by the reference's p(correct token)"), r.stdout)
        XCTAssertTrue(try String(contentsOfFile: html, encoding: .utf8).contains("<svg"))
        let g = try CLI.run(["generate", k, "--prompt", "The", "--max-tokens", "5", "--ids"])
        XCTAssertEqual(g.status, 0, g.stderr)
        let gj = try JSONParser.parse(Data(g.stdout.utf8), file: "stdout")
        XCTAssertEqual(gj["prompt"]?.array?.first?.int, 1)  // BOS
        XCTAssertEqual(gj["output"]?.array?.count, 5)
        // bf16 rows take the activations as they are under llama.cpp's rounding too: the same tokens
        let gl = try CLI.run(["generate", k, "--prompt", "The", "--max-tokens", "5", "--ids", "--activations", "llama"])
        XCTAssertEqual(gl.status, 0, gl.stderr)
        XCTAssertEqual(gl.stdout, g.stdout)
        XCTAssertEqual(try CLI.run(["imatrix", k, "--calibration", text, "-o", im, "--ctx", "128", "--chunks", "2"]).status, 0)
        XCTAssertEqual(try ImatrixFile.load(path: im).chunkCount, 2)
    }

    /// The issue's checkpoint: one 32-column group of a q_proj row all zeros but a single 1e-9 (its f16 scale used to
    /// round to 0 and x/0 trapped). Now every packed scheme writes it, and the checkpoint loads back with that row zero.
    func testTinyGroupQuantizesAndLoadsBack() throws {
        let dir = try microCopy(edit: { ts in
            let i = ts.firstIndex { $0.0 == "model.layers.0.self_attn.q_proj.weight" }!
            let cols = ts[i].1[1]
            for c in 0..<cols { ts[i].2[3 * cols + c] = 0 }
            ts[i].2[3 * cols + 8] = 1e-9
        })
        let text = CLI.repo.appendingPathComponent("Formats/golden/wiki.valid.first20k.txt").path
        for (k, extra) in [["--method", "rtn", "--sym"], ["--method", "rtn", "--asym"], ["--method", "gptq", "--calibration", text, "--samples", "4", "--seq-len", "32"],
                           ["--method", "awq", "--calibration", text, "--samples", "4", "--seq-len", "32"]].enumerated() {
            let out = CLI.tmpDir() + "/out\(k)"
            let r = try CLI.run(["quantize", dir, "-o", out, "--format", "gptq", "--bits", "4", "--group-size", "32"] + extra)
            XCTAssertEqual(r.status, 0, "\(extra): \(r.stderr)")
            let hf = out + "-hf"
            XCTAssertEqual(try CLI.run(["export", out, "-o", hf, "--dtype", "f32"]).status, 0)
            let ck = try SafetensorsCheckpoint.open(hf)
            let q = try ck.floats("model.layers.0.self_attn.q_proj.weight")
            XCTAssertTrue(q.allSatisfy(\.isFinite), "\(extra)")
            if extra[1] == "rtn" { XCTAssertEqual(Array(q[(3 * 32)..<(4 * 32)]), [Float](repeating: 0, count: 32), "\(extra): the zero row stays zero") }
        }
    }

    func testGoodRunWritesAndInspects() throws {
        let out = CLI.tmpDir() + "/ok.gguf"
        let r = try CLI.run(["convert", micro, "-o", out, "--type", "q8_0"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let i = try CLI.run(["inspect", out, "--json"])
        XCTAssertEqual(i.status, 0, i.stderr)
        let j = try JSONParser.parse(Data(i.stdout.utf8), file: "stdout")
        XCTAssertEqual(j["total_parameters"]?.int, 2_072_736)
        XCTAssertEqual(j["tensors"]?.array?.count, 21)
        XCTAssertEqual(j["format"]?.string, "GGUF v3")
        let v = try CLI.run(["--version"])
        XCTAssertTrue(v.stdout.contains("quantkit 0.1.0 (OpenBLAS core:"), v.stdout)
    }
}
