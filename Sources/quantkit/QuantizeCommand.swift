import ArgumentParser
import Calibration
import Foundation
import ModelFormats
import QuantKit
import Quantization
import TensorCore

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

    @Option(name: .shortAndLong, help: "Output GGUF path (a directory for packed formats).")
    var output: String?

    @Option(help: "What to write: gguf (llama.cpp block types), gptq (GPTQ v1 packed), awq (AWQ GEMM packed) or compressed-tensors (pack-quantized).")
    var format: OutputFormat = .gguf

    @Option(help: "rtn (round to nearest; into GGUF with llama-quantize's rules), gptq, awq or awq+gptq (AWQ's scales, then GPTQ; calibrated).")
    var method: PackedQuantizer.Method = .rtn

    @OptionGroup(title: "GGUF types")
    var gguf: GGUFTypeOptions

    @OptionGroup(title: "Packed integer scheme")
    var scheme: IntegerSchemeOptions

    @OptionGroup(title: "Calibration (GPTQ, AWQ)")
    var calib: CalibrationOptions

    @OptionGroup(title: "GPTQ")
    var gptq: GPTQOptions

    @OptionGroup(title: "AWQ")
    var awq: AWQOptions

    @Flag(help: "GPTQ/AWQ: continue an interrupted run from the per-layer state kept in OUTPUT.state/ (same bytes as an uninterrupted run).")
    var resume = false

    @Option(help: "BPE pre-tokenizer name when converting an HF checkpoint with an unrecognized tokenizer.")
    var pre: String?

    @OptionGroup
    var out: OutputOptions

    /// Checks across the option groups, before any file is opened.
    func validate() throws {
        if method == .rtn {
            if !calib.calibration.isEmpty {
                throw ValidationError("--calibration is for --method gptq or awq (round-to-nearest into GGUF uses --imatrix)")
            }
            if resume { throw ValidationError("--resume is for --method gptq or awq (round-to-nearest has no per-layer state)") }
        } else if calib.calibration.isEmpty {
            throw ValidationError("--method \(method.rawValue) needs --calibration FILE")
        }
        if awq.anyGiven && method != .awq && method != .awqGPTQ {
            throw ValidationError("--awq-search-samples, --clip/--no-clip, --no-duo-scaling, --no-identity-candidate and "
                                  + "--awq-search-loss are for --method awq or awq+gptq")
        }
        if awq.noScaleJudge && method != .awqGPTQ {
            throw ValidationError("--no-scale-judge is for --method awq+gptq (the judge runs GPTQ with and without AWQ's scales)")
        }
        if gptq.gptaq && method != .gptq && method != .awqGPTQ {
            throw ValidationError("--gptaq is for --method gptq or awq+gptq")
        }
        if scheme.checkpointFormat != .gptq && format != .gptq {
            throw ValidationError("--checkpoint-format is for --format gptq")
        }
        if gptq.updatedGroupParams && (format == .gguf || gptq.staticGroups(gguf: false)) {
            // static groups (the default act-order) fix every group's parameters before the pass; into GGUF the flag
            // would do nothing (ggml blocks set during the pass already take the updated weights)
            throw ValidationError("--updated-group-params is for packed formats with groups set during the pass: give --no-act-order, or --act-order without --static-groups")
        }
        if format == .gguf {
            if gguf.type == nil { throw ValidationError("--type PRESET is required for --format gguf") }
            if output == nil && !gguf.dryRun { throw ValidationError("-o OUTPUT is required (or --dry-run)") }
            return
        }
        if gguf.type != nil { throw ValidationError("--type is a GGUF preset; packed formats take --bits, --group-size and --sym/--asym") }
        if gguf.anyGiven {
            throw ValidationError("--imatrix, --dry-run, --pure, --tensor-type and the other GGUF type options apply to --format gguf")
        }
        guard [2, 3, 4, 8].contains(scheme.bits) else {
            throw ValidationError("--bits must be 2, 3, 4 or 8 for packed formats (got \(scheme.bits))")
        }
        if output == nil { throw ValidationError("-o OUTPUT (a directory) is required") }
    }

    func run() throws {
        try guarded {
            // calibration allocates the large buffers HeapPolicy keeps for reuse
            if method != .rtn { HeapPolicy.reuseLargeBlocks() }
            if let layout = format.packedLayout { return try runPacked(layout) }
            let preset = gguf.type!
            let o = gguf.options(preset: preset, pre: pre)
            if gguf.dryRun { return try printPlan(preset, o) }
            let output = output!
            try OutputConflicts.check(outputs: [.init(output, .gguf)], inputs: inputs(), force: out.force)
            let pr = ProgressPrinter()
            let r: GGUFQuantizer.Report
            var extra: [(String, JSONValue)] = []
            let times = PhaseTimes()
            let t0 = PhaseTimes.now()
            switch method {
            case .gptq:
                var g = try gptqOptions(preset, output: output)
                g.times = times
                let (qr, rep) = try GPTQPipeline.quantizeToGGUF(source: source, output: output, preset: preset, options: g,
                                                                quantizeOptions: o, progress: pr.update)
                r = qr
                extra.append(("linears", ReportJSON.linears(rep)))
                if !out.json { print(ReportJSON.gptqSummary(rep)) }
            case .awq:
                var a = awq.options(data: try calib.set(), resume: resume, method: method)
                a.times = times
                a.groupSize = scheme.groupSize ?? 32
                a.statePath = output
                a.fingerprintExtra = "gguf \(preset.name) \(gguf.tensorType.map { "\($0.pattern)=\($0.type.name)" }) \(gguf.pure)"
                let (qr, rep) = try AWQPipeline.quantizeToGGUF(source: source, output: output, options: a, quantizeOptions: o,
                                                               progress: pr.update)
                r = qr
                extra.append(("layers", ReportJSON.awqLayers(rep)))
                if !out.json { print(ReportJSON.awqSummary(rep)) }
            case .awqGPTQ:
                var g = try gptqOptions(preset, output: output)
                g.times = times
                var a = awq.options(data: try calib.set(), resume: resume, method: method)
                a.times = times
                a.groupSize = scheme.groupSize ?? 32
                let (qr, rep, layers) = try AWQThenGPTQ.quantizeToGGUF(source: source, output: output, preset: preset, gptq: g, awq: a,
                                                                        quantizeOptions: o, progress: pr.update)
                r = qr
                extra += [("layers", ReportJSON.awqLayers(layers)), ("linears", ReportJSON.linears(rep))]
                if !out.json {
                    print(ReportJSON.awqSummary(layers))
                    print(ReportJSON.gptqSummary(rep))
                }
            case .rtn:
                r = try GGUFQuantizer.quantize(source, to: output, options: o, progress: pr.update)
            }
            let seconds = PhaseTimes.now() - t0
            if out.json {
                print(JSONValue.object([("output", .string(r.output)), ("tensors", .int(Int64(r.tensors))), ("bytes", .int(Int64(r.bytes))),
                                        ("bits_per_weight", .double(r.bitsPerWeight)), ("seconds", .double(seconds)),
                                        ("phases", ReportJSON.phases(times))] + extra).serialized())
            } else {
                print(String(format: "wrote %@: %ld tensors, %ld bytes, %.4f bits per weight", r.output, r.tensors, r.bytes, r.bitsPerWeight))
                if method != .rtn { print(ReportJSON.timeSummary(seconds: seconds, times)) }
            }
        }
    }

    /// GPTQ's options for a GGUF output (its resume state beside it).
    func gptqOptions(_ preset: QuantPreset, output: String) throws -> GPTQPipeline.Options {
        var g = GPTQPipeline.Options()
        gptq.apply(to: &g, data: try calib.set(), gguf: true)
        g.statePath = output
        g.resume = resume
        g.fingerprintExtra = "gguf \(preset.name) imatrix \(gguf.imatrix ?? "-")"
        return g
    }

    /// --dry-run: the tensor plan, as text or JSON.
    func printPlan(_ preset: QuantPreset, _ o: GGUFQuantizer.Options) throws {
        let p = try GGUFQuantizer.plan(source, options: o)
        if out.json {
            let rows: [JSONValue] = p.tensors.map {
                .object([("name", .string($0.name)), ("ne", .array($0.ne.map { .int(Int64($0)) })), ("from", .string($0.from.name)),
                         ("type", .string($0.to.name)), ("bytes", .int(Int64($0.bytes)))])
            }
            print(JSONValue.object([("preset", .string(preset.name)), ("tensors", .array(rows)), ("total_bytes", .int(Int64(p.totalBytes))),
                                    ("bits_per_weight", .double(p.bitsPerWeight)), ("fallbacks", .int(Int64(p.fallbacks.count)))]).serialized())
            return
        }
        for t in p.tensors {
            let shape = t.ne.map(String.init).joined(separator: "x")
            print("\(t.name.padding(toLength: 32, withPad: " ", startingAt: 0)) \(shape.padding(toLength: 14, withPad: " ", startingAt: 0)) "
                  + "\(t.from.name.padding(toLength: 6, withPad: " ", startingAt: 0)) -> \(t.to.name.padding(toLength: 7, withPad: " ", startingAt: 0)) "
                  + "\(t.bytes) bytes")
        }
        for f in p.fallbacks { print("fallback: \(f.name) \(f.from.name) -> \(f.to.name) (row length not a multiple of the block size)") }
        print(String(format: "total: %ld bytes, %.4f bits per weight (%@)", p.totalBytes, p.bitsPerWeight, preset.name))
    }

    /// Every file this command reads: the model, its imatrix and calibration files.
    func inputs() -> [String] {
        OutputConflicts.modelInputs(source) + (gguf.imatrix.map { [$0] } ?? []) + calib.calibration
    }

    /// --format gptq | awq | compressed-tensors
    func runPacked(_ layout: PackedLayout) throws {
        let output = output!
        try OutputConflicts.check(outputs: [.init(output, .checkpointDirectory)], inputs: inputs(), force: out.force)
        var p = PackedQuantizer.Options()
        p.method = method
        p.layout = layout
        p.scheme = scheme.scheme(for: method)
        p.rtnQuantizer = scheme.rtnGrid
        p.gptqV2 = scheme.checkpointFormat == .gptqV2
        let data = try calib.set()
        gptq.apply(to: &p.gptq, data: data, gguf: false)
        p.gptq.statePath = output
        p.gptq.resume = resume
        p.awq = awq.options(data: data, resume: resume, method: method)
        p.awq.statePath = output
        let times = PhaseTimes()
        p.times = times
        let pr = ProgressPrinter()
        let r = try PackedQuantizer.quantize(source, to: output, options: p, progress: pr.update)
        let ck = r.checkpoint
        if out.json {
            var kv: [(String, JSONValue)] = [("output", .string(ck.dir)), ("format", .string(ck.checkpointFormat)), ("method", .string(method.rawValue)),
                                             ("scheme", .string(p.scheme.description)), ("tensors", .int(Int64(ck.tensors))), ("bytes", .int(Int64(ck.bytes))),
                                             ("bits_per_weight", .double(ck.bitsPerWeight)), ("seconds", .double(r.seconds)),
                                             ("phases", ReportJSON.phases(times))]
            if !r.linears.isEmpty { kv.append(("linears", ReportJSON.linears(r.linears))) }
            if !r.awqLayers.isEmpty { kv.append(("layers", ReportJSON.awqLayers(r.awqLayers))) }
            print(JSONValue.object(kv).serialized())
        } else {
            if !r.linears.isEmpty { print(ReportJSON.gptqSummary(r.linears)) }
            if !r.awqLayers.isEmpty { print(ReportJSON.awqSummary(r.awqLayers)) }
            print(String(format: "wrote %@ (%@, %@, %@): %ld tensors, %ld bytes, %.4f bits per weight", ck.dir, ck.checkpointFormat, method.rawValue,
                         p.scheme.description, ck.tensors, ck.bytes, ck.bitsPerWeight))
            print(ReportJSON.timeSummary(seconds: r.seconds, times))
        }
    }
}
