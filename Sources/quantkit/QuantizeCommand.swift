import ArgumentParser
import Calibration
import Foundation
import ModelFormats
import QuantKit
import Quantization

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize an HF checkpoint or an F32/F16/BF16 GGUF: GGUF block types with llama-quantize's presets and rules, or packed int4/int8 checkpoints (GPTQ, AWQ GEMM, compressed-tensors), by round-to-nearest, GPTQ or AWQ.",
        discussion: """
        Presets: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q2_K_S Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K IQ4_NL IQ4_XS TQ1_0 TQ2_0
        Examples:
          quantkit quantize models/smollm2-135m-instruct -o smollm2-q4_k_m.gguf --type Q4_K_M
          quantkit quantize model-f16.gguf -o model-q4_0.gguf --type Q4_0 --imatrix imatrix.gguf
          quantkit quantize model-f16.gguf -o x.gguf --type Q4_K_M --tensor-type 'attn_v=q8_0' --dry-run
          quantkit quantize models/smollm2-135m-instruct -o smollm2-q4_0-gptq.gguf --type Q4_0 --method gptq --calibration Calibration/wikitext2-valid-excerpt.txt
          quantkit quantize models/smollm2-135m-instruct -o smollm2-gptq-w4g64 --format gptq --method gptq --bits 4 --group-size 64 --calibration Calibration/wikitext2-valid-excerpt.txt
          quantkit quantize models/smollm2-135m-instruct -o smollm2-awq-w4g64 --format awq --method awq --group-size 64 --calibration Calibration/wikitext2-valid-excerpt.txt
          quantkit quantize models/smollm2-135m-instruct -o smollm2-w8a16 --format compressed-tensors --bits 8 --group-size -1
        Packed outputs are directories (model.safetensors, config.json with quantization_config, tokenizer files);
        eval, generate and export read them back.
        """
    )

    @Argument(help: "HF checkpoint (directory, .safetensors, ORG/NAME) or GGUF file.")
    var source: String

    @Option(name: .shortAndLong, help: "Output GGUF path.")
    var output: String?

    @Option(name: .long, help: "Preset (llama-quantize name or ftype number); required for --format gguf.")
    var type: String?

    @Option(name: .long, help: "gguf (default), gptq (GPTQ v1 packed), awq (AWQ GEMM packed) or compressed-tensors (pack-quantized).")
    var format: String = "gguf"

    @Option(name: .long, help: "Packed formats: bits per weight (2, 3, 4 or 8; AWQ GEMM: 4).")
    var bits: Int = 4

    @Option(name: .customLong("group-size"), parsing: .unconditional, help: "Packed formats: input columns per scale group (-1: per channel). AWQ into GGUF: the group of its weight statistic (default 32, the ggml block).")
    var groupSize: Int?

    @Flag(name: .customLong("sym"), help: "Packed formats: symmetric (no zero point). Default for rtn and gptq.")
    var sym = false

    @Flag(name: .customLong("asym"), help: "Packed formats: with a zero point. Default for awq.")
    var asym = false

    @Option(name: .customLong("rtn-grid"), help: "RTN into packed formats: gptq (min-max grid including 0, default) or awq (AutoAWQ's quantizer).")
    var rtnGrid: String = "gptq"

    @Option(name: .customLong("awq-search-samples"), help: "AWQ: calibration windows used for the scale-search losses (default: all --samples).")
    var awqSearchSamples: Int?

    @Flag(name: .long, help: "GPTQ/AWQ: continue an interrupted run from the per-layer state kept in OUTPUT.state/ (same bytes as an uninterrupted run).")
    var resume = false

    @Flag(name: .customLong("no-clip"), help: "AWQ: skip the clip search.")
    var noClip = false

    @Flag(name: .customLong("no-duo-scaling"), help: "AWQ: scales from activations alone (llm-awq) instead of activations and weights (AutoAWQ).")
    var noDuoScaling = false

    @Flag(name: .long, help: "Disable the per-tensor mixture: every quantizable tensor gets the preset's type.")
    var pure = false

    @Option(name: .customLong("output-tensor-type"), help: "Type for output.weight.")
    var outputTensorType: String?

    @Option(name: .customLong("token-embedding-type"), help: "Type for token_embd.weight.")
    var tokenEmbeddingType: String?

    @Option(name: .customLong("tensor-type"), help: "REGEX=TYPE override (repeatable; first match wins).")
    var tensorType: [String] = []

    @Flag(name: .customLong("leave-output-tensor"), help: "Keep output.weight as it is.")
    var leaveOutputTensor = false

    @Option(name: .long, help: "Importance matrix (llama.cpp GGUF imatrix or legacy .dat).")
    var imatrix: String?

    @Option(name: .customLong("include-weights"), help: "Use the imatrix only for tensors whose names contain this (repeatable).")
    var includeWeights: [String] = []

    @Option(name: .customLong("exclude-weights"), help: "Do not use the imatrix for tensors whose names contain this (repeatable).")
    var excludeWeights: [String] = []

    @Flag(name: .customLong("allow-requantize"), help: "Allow requantizing tensors that are already quantized.")
    var allowRequantize = false

    @Flag(name: .customLong("dry-run"), help: "Print the plan (tensor, type, bytes, bits per weight, total) without writing.")
    var dryRun = false

    @Option(name: .long, help: "BPE pre-tokenizer name when converting an HF checkpoint with an unrecognized tokenizer.")
    var pre: String?

    @Flag(name: .long, help: "Write even when the output's name says another format (a GGUF under .safetensors), or over an existing checkpoint directory (export). Inputs are never replaced.")
    var force = false

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    @Option(name: .long, help: "rtn (round to nearest; into GGUF with llama-quantize's rules), gptq or awq (calibrated).")
    var method: String = "rtn"

    @Option(name: .long, help: "Calibration text (.txt, .jsonl, .zst of either); repeatable.")
    var calibration: [String] = []

    @Option(name: .long, help: "Share of the calibration windows per --calibration file, in order (e.g. 7:3 for language:code).")
    var mix: String?

    @Option(name: .customLong("text-field"), help: "JSON field holding the text in .jsonl calibration files.")
    var textField: String = "text"

    @Option(name: .long, help: "Calibration windows.")
    var samples: Int = 128

    @Option(name: .customLong("seq-len"), help: "Tokens per calibration window.")
    var seqLen: Int = 512

    @Option(name: .long, help: "Seed for sampling the calibration windows.")
    var seed: UInt64 = 0

    @Flag(name: .customLong("act-order"), help: "GPTQ: quantize columns in order of decreasing Hessian diagonal (needs --static-groups for GGUF).")
    var actOrder = false

    @Flag(name: .customLong("static-groups"), help: "GPTQ: group parameters from the unmodified weights.")
    var staticGroups = false

    @Option(name: .long, help: "GPTQ damping, as a fraction of the mean Hessian diagonal (raised automatically if Cholesky fails).")
    var damp: Float = 0.01

    @Flag(name: .customLong("no-true-sequential"), help: "GPTQ: capture all linears of a layer in one pass instead of stage by stage.")
    var noTrueSequential = false

    func parseType(_ s: String, _ flag: String) throws -> GGMLType {
        guard let t = GGMLType.named(s) else { throw ValidationError("\(flag): unknown ggml type \(s)") }
        return t
    }

    func run() throws {
        try guarded {
            guard ["rtn", "gptq", "awq"].contains(method) else { throw ValidationError("--method must be rtn, gptq or awq (got \(method))") }
            if method != "rtn" {
                guard samples > 0, seqLen >= 8 else { throw ValidationError("--samples must be positive and --seq-len at least 8") }
                guard damp >= 0, damp < 1 else { throw ValidationError("--damp must be in [0, 1)") }
                guard !calibration.isEmpty else { throw ValidationError("--method \(method) needs --calibration FILE") }
            } else if !calibration.isEmpty {
                throw ValidationError("--calibration is for --method gptq or awq (round-to-nearest into GGUF uses --imatrix)")
            }
            _ = try mixWeights()
            if let n = awqSearchSamples, n <= 0 { throw ValidationError("--awq-search-samples must be positive") }
            if sym && asym { throw ValidationError("--sym and --asym exclude each other") }
            if resume && method == "rtn" { throw ValidationError("--resume is for --method gptq or awq (round-to-nearest has no per-layer state)") }
            if format != "gguf" { return try runPacked() }
            guard let type else { throw ValidationError("--type PRESET is required for --format gguf") }
            guard let preset = QuantPreset.named(type) else {
                throw ValidationError("--type \(type) is not a preset (\(QuantPreset.all.map(\.name).joined(separator: " ")))")
            }
            var o = GGUFQuantizer.Options(preset: preset)
            o.overrides.pure = pure
            o.overrides.outputTensorType = try outputTensorType.map { try parseType($0, "--output-tensor-type") }
            o.overrides.tokenEmbeddingType = try tokenEmbeddingType.map { try parseType($0, "--token-embedding-type") }
            o.overrides.leaveOutputTensor = leaveOutputTensor
            for tt in tensorType {
                guard let eq = tt.lastIndex(of: "="), eq != tt.startIndex else { throw ValidationError("--tensor-type \(tt): expected REGEX=TYPE") }
                o.overrides.tensorTypes.append((String(tt[..<eq]), try parseType(String(tt[tt.index(after: eq)...]), "--tensor-type")))
            }
            o.imatrixPath = imatrix
            o.includeWeights = includeWeights
            o.excludeWeights = excludeWeights
            o.allowRequantize = allowRequantize
            o.pre = pre
            if dryRun {
                let p = try GGUFQuantizer.plan(source, options: o)
                if json {
                    let rows: [JSONValue] = p.tensors.map {
                        .object([("name", .string($0.name)), ("ne", .array($0.ne.map { .int(Int64($0)) })), ("from", .string($0.from.name)),
                                 ("type", .string($0.to.name)), ("bytes", .int(Int64($0.bytes)))])
                    }
                    print(JSONValue.object([("preset", .string(preset.name)), ("tensors", .array(rows)), ("total_bytes", .int(Int64(p.totalBytes))),
                                            ("bits_per_weight", .double(p.bitsPerWeight)), ("fallbacks", .int(Int64(p.fallbacks.count)))]).serialized())
                } else {
                    for t in p.tensors {
                        print("\(t.name.padding(toLength: 32, withPad: " ", startingAt: 0)) \(t.ne.map(String.init).joined(separator: "x").padding(toLength: 14, withPad: " ", startingAt: 0)) \(t.from.name.padding(toLength: 6, withPad: " ", startingAt: 0)) -> \(t.to.name.padding(toLength: 7, withPad: " ", startingAt: 0)) \(t.bytes) bytes")
                    }
                    for f in p.fallbacks { print("fallback: \(f.name) \(f.from.name) -> \(f.to.name) (row length not a multiple of the block size)") }
                    print(String(format: "total: %d bytes, %.4f bits per weight (%@)", p.totalBytes, p.bitsPerWeight, preset.name))
                }
                return
            }
            guard let output else { throw ValidationError("-o OUTPUT is required (or --dry-run)") }
            try OutputConflicts.check(outputs: [.init(output, .gguf)], inputs: inputs(), force: force)
            let pr = ProgressPrinter()
            let r: GGUFQuantizer.Report
            var extra: [(String, JSONValue)] = []
            if method == "gptq" {
                var g = GPTQPipeline.Options()
                g.data = try calibrationSet()
                g.gptq.actOrder = actOrder; g.gptq.staticGroups = staticGroups; g.gptq.damp = damp; g.trueSequential = !noTrueSequential
                g.statePath = output; g.resume = resume; g.fingerprintExtra = "gguf \(preset.name) imatrix \(imatrix ?? "-")"
                let (qr, rep) = try GPTQPipeline.quantizeToGGUF(source: source, output: output, preset: preset, options: g, quantizeOptions: o, progress: pr.update)
                r = qr
                extra.append(("linears", ReportJSON.linears(rep)))
                if !json { print(ReportJSON.gptqSummary(rep)) }
            } else if method == "awq" {
                var a = try awqOptions()
                a.groupSize = groupSize ?? 32
                a.statePath = output; a.fingerprintExtra = "gguf \(preset.name) \(tensorType) \(pure)"
                let (qr, rep) = try AWQPipeline.quantizeToGGUF(source: source, output: output, options: a, quantizeOptions: o, progress: pr.update)
                r = qr
                extra.append(("layers", ReportJSON.awqLayers(rep)))
                if !json { print(ReportJSON.awqSummary(rep)) }
            } else {
                r = try GGUFQuantizer.quantize(source, to: output, options: o, progress: pr.update)
            }
            if json {
                print(JSONValue.object([("output", .string(r.output)), ("tensors", .int(Int64(r.tensors))), ("bytes", .int(Int64(r.bytes))),
                                        ("bits_per_weight", .double(r.bitsPerWeight))] + extra).serialized())
            } else {
                print(String(format: "wrote %@: %d tensors, %d bytes, %.4f bits per weight", r.output, r.tensors, r.bytes, r.bitsPerWeight))
            }
        }
    }

    /// Every file this command reads: the model, its imatrix and calibration files.
    func inputs() -> [String] {
        OutputConflicts.modelInputs(source) + (imatrix.map { [$0] } ?? []) + calibration
    }

    func mixWeights() throws -> [Double]? {
        guard let mix else { return nil }
        let w = try Corpus.parseMix(mix)
        guard w.count == calibration.count else { throw ValidationError("--mix \(mix) has \(w.count) weights for \(calibration.count) --calibration files") }
        return w
    }

    func calibrationSet() throws -> CalibrationSet {
        var d = CalibrationSet()
        d.calibration = calibration; d.textField = textField; d.samples = samples; d.seqLen = seqLen; d.seed = seed; d.mix = try mixWeights()
        return d
    }

    func awqOptions() throws -> AWQPipeline.Options {
        var a = AWQPipeline.Options()
        a.data = try calibrationSet()
        a.searchSamples = awqSearchSamples; a.clip = !noClip; a.duoScaling = !noDuoScaling
        a.resume = resume
        return a
    }

    /// --format gptq | awq | compressed-tensors
    func runPacked() throws {
        guard let layout = PackedLayout(rawValue: format) else { throw ValidationError("--format must be gguf, gptq, awq or compressed-tensors (got \(format))") }
        guard let output else { throw ValidationError("-o OUTPUT (a directory) is required") }
        try OutputConflicts.check(outputs: [.init(output, .checkpointDirectory)], inputs: inputs(), force: force)
        if type != nil { throw ValidationError("--type is a GGUF preset; packed formats take --bits, --group-size and --sym/--asym") }
        if imatrix != nil || dryRun || pure || !tensorType.isEmpty { throw ValidationError("--imatrix, --dry-run, --pure and --tensor-type apply to --format gguf") }
        guard [2, 3, 4, 8].contains(bits) else { throw ValidationError("--bits must be 2, 3, 4 or 8 for packed formats (got \(bits))") }
        guard let grid = IntegerQuantizer(rawValue: rtnGrid) else { throw ValidationError("--rtn-grid must be gptq or awq (got \(rtnGrid))") }
        var p = PackedQuantizer.Options()
        p.method = PackedQuantizer.Method(rawValue: method) ?? .rtn
        p.layout = layout
        p.scheme = IntegerScheme(bits: bits, groupSize: groupSize ?? 128, sym: sym || (!asym && p.method != .awq))
        p.rtnQuantizer = grid
        p.gptq.data = try calibrationSet()
        p.gptq.gptq.actOrder = actOrder; p.gptq.gptq.staticGroups = staticGroups; p.gptq.gptq.damp = damp; p.gptq.trueSequential = !noTrueSequential
        p.awq = try awqOptions()
        p.awq.statePath = output
        p.gptq.statePath = output; p.gptq.resume = resume
        let pr = ProgressPrinter()
        let r = try PackedQuantizer.quantize(source, to: output, options: p, progress: pr.update)
        let ck = r.checkpoint
        if json {
            var kv: [(String, JSONValue)] = [("output", .string(ck.dir)), ("format", .string(ck.checkpointFormat)), ("method", .string(method)),
                                             ("scheme", .string(p.scheme.description)), ("tensors", .int(Int64(ck.tensors))), ("bytes", .int(Int64(ck.bytes))),
                                             ("bits_per_weight", .double(ck.bitsPerWeight)), ("seconds", .double(r.seconds))]
            if !r.linears.isEmpty { kv.append(("linears", ReportJSON.linears(r.linears))) }
            if !r.awqLayers.isEmpty { kv.append(("layers", ReportJSON.awqLayers(r.awqLayers))) }
            print(JSONValue.object(kv).serialized())
        } else {
            if !r.linears.isEmpty { print(ReportJSON.gptqSummary(r.linears)) }
            if !r.awqLayers.isEmpty { print(ReportJSON.awqSummary(r.awqLayers)) }
            print(String(format: "wrote %@ (%@, %@, %@): %d tensors, %d bytes, %.4f bits per weight, %.1f s", ck.dir, ck.checkpointFormat, method,
                         p.scheme.description, ck.tensors, ck.bytes, ck.bitsPerWeight, r.seconds))
        }
    }
}
