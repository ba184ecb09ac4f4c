import ArgumentParser
import Calibration
import Evaluation
import Llama
import ModelFormats
import QuantKit
import Quantization

// Typed option values: parsed (and a typo refused, with the valid values listed) before any file is opened.
// Module-qualified names: these are conformances of other modules' types, made here where the CLI needs them.

extension QuantKit.PackedQuantizer.Method: ArgumentParser.ExpressibleByArgument {}
extension QuantKit.Exporter.OutDType: ArgumentParser.ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument.lowercased()) }
}

extension QuantKit.Converter.OutType: ArgumentParser.ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument.lowercased()) }
}

extension Quantization.IntegerQuantizer: ArgumentParser.ExpressibleByArgument {}

extension Evaluation.Perplexity.EvalProtocol: ArgumentParser.ExpressibleByArgument {}

extension Llama.ActivationRounding: ArgumentParser.ExpressibleByArgument {}

extension Calibration.AWQPipeline.SearchLoss: ArgumentParser.ExpressibleByArgument {}

extension Quantization.QuantPreset: ArgumentParser.ExpressibleByArgument {
    /// llama-quantize's names (any case), Q4_K/Q5_K/Q3_K for their _M presets, or an ftype number.
    public init?(argument: String) {
        guard let p = QuantPreset.named(argument) else { return nil }
        self = p
    }
    public static var allValueStrings: [String] { all.map(\.name) }
}

extension ModelFormats.GGMLType: ArgumentParser.ExpressibleByArgument {
    public init?(argument: String) {
        guard let t = GGMLType.named(argument) else { return nil }
        self = t
    }
    public static var allValueStrings: [String] { allCases.map { $0.name.lowercased() } }
}

/// What `quantize` writes.
enum OutputFormat: String, CaseIterable, ExpressibleByArgument {
    case gguf, gptq, awq
    case compressedTensors = "compressed-tensors"

    var packedLayout: PackedLayout? { PackedLayout(rawValue: rawValue) }
}

/// `imatrix`'s file format.
enum ImatrixFormat: String, CaseIterable, ExpressibleByArgument {
    case gguf, dat
}

/// A `--tensor-type REGEX=TYPE` override.
struct TensorTypeOverride {
    let pattern: String
    let type: GGMLType

    /// Parses REGEX=TYPE (the last `=` splits), naming what is wrong.
    static func parse(_ argument: String) throws -> TensorTypeOverride {
        guard let eq = argument.lastIndex(of: "="), eq != argument.startIndex else {
            throw ValidationError("--tensor-type \(argument): expected REGEX=TYPE")
        }
        let name = String(argument[argument.index(after: eq)...])
        guard let t = GGMLType.named(name) else { throw ValidationError("--tensor-type \(argument): unknown ggml type \(name)") }
        return TensorTypeOverride(pattern: String(argument[..<eq]), type: t)
    }
}

/// --force and --json: every command that writes a file.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Write even when the output's name says another format (a GGUF under .safetensors), or over an existing checkpoint directory (export). Inputs are never replaced.")
    var force = false

    @Flag(help: "Print one JSON document instead of text.")
    var json = false
}

/// Calibration windows for GPTQ and AWQ.
struct CalibrationOptions: ParsableArguments {
    @Option(help: "Calibration text (.txt, .jsonl, .zst of either); repeatable.")
    var calibration: [String] = []

    @Option(help: "Share of the calibration windows per --calibration file, in order (e.g. 7:3 for language:code).")
    var mix: String?

    @Option(name: .customLong("text-field"), help: "JSON field holding the text in .jsonl calibration files.")
    var textField: String = "text"

    @Option(help: "Calibration windows.")
    var samples: Int = 128

    @Option(name: .customLong("seq-len"), help: "Tokens per calibration window.")
    var seqLen: Int = 512

    @Option(help: "Seed for sampling the calibration windows.")
    var seed: UInt64 = 0

    @Flag(name: .customLong("no-window-bos"),
          help: "Calibration windows without a leading BOS even when the vocabulary adds one (by default they start with it, as inference does).")
    var noWindowBOS = false

    func validate() throws {
        guard samples > 0, seqLen >= 8 else { throw ValidationError("--samples must be positive and --seq-len at least 8") }
        _ = try mixWeights()
    }

    func mixWeights() throws -> [Double]? {
        guard let mix else { return nil }
        let w: [Double]
        do { w = try Corpus.parseMix(mix) } catch { throw ValidationError("\(error)") }
        guard w.count == calibration.count else {
            throw ValidationError("--mix \(mix) has \(w.count) weights for \(calibration.count) --calibration files")
        }
        return w
    }

    func set() throws -> CalibrationSet {
        var d = CalibrationSet()
        d.calibration = calibration
        d.textField = textField
        d.samples = samples
        d.seqLen = seqLen
        d.seed = seed
        d.bos = !noWindowBOS
        d.mix = try mixWeights()
        return d
    }
}

/// The `checkpoint_format` of a packed GPTQ checkpoint.
enum GPTQCheckpointFormat: String, CaseIterable, ExpressibleByArgument {
    case gptq
    case gptqV2 = "gptq_v2"
}

/// The integer scheme of packed checkpoints.
struct IntegerSchemeOptions: ParsableArguments {
    @Option(help: "Packed formats: bits per weight (2, 3, 4 or 8; AWQ GEMM: 4).")
    var bits: Int = 4

    @Option(name: .customLong("group-size"), parsing: .unconditional,
            help: "Packed formats: input columns per scale group (-1: per channel). AWQ into GGUF: the group of its weight statistic (default 32, the ggml block).")
    var groupSize: Int?

    @Flag(name: .customLong("sym"), help: "Packed formats: symmetric (no zero point). Default for rtn and gptq.")
    var sym = false

    @Flag(name: .customLong("asym"), help: "Packed formats: with a zero point. Default for awq.")
    var asym = false

    @Option(name: .customLong("rtn-grid"), help: "RTN into packed formats: gptq (min-max grid including 0) or awq (AutoAWQ's quantizer).")
    var rtnGrid: IntegerQuantizer = .gptq

    @Option(name: .customLong("checkpoint-format"),
            help: "--format gptq: gptq (v1, zero points stored minus 1 and floored at 1, as GPTQModel writes) or gptq_v2.")
    var checkpointFormat: GPTQCheckpointFormat = .gptq

    func validate() throws {
        if sym && asym { throw ValidationError("--sym and --asym exclude each other") }
    }

    func scheme(for method: PackedQuantizer.Method) -> IntegerScheme {
        IntegerScheme(bits: bits, groupSize: groupSize ?? 128, sym: sym || (!asym && method != .awq))
    }
}

/// GGUF tensor types: llama-quantize's preset, overrides and importance matrix.
struct GGUFTypeOptions: ParsableArguments {
    @Option(help: "Preset (llama-quantize name or ftype number); required for --format gguf.")
    var type: QuantPreset?

    @Flag(help: "Disable the per-tensor mixture: every quantizable tensor gets the preset's type.")
    var pure = false

    @Option(name: .customLong("output-tensor-type"), help: "Type for output.weight.")
    var outputTensorType: GGMLType?

    @Option(name: .customLong("token-embedding-type"), help: "Type for token_embd.weight.")
    var tokenEmbeddingType: GGMLType?

    @Option(name: .customLong("tensor-type"), help: "REGEX=TYPE override (repeatable; first match wins).",
            transform: TensorTypeOverride.parse)
    var tensorType: [TensorTypeOverride] = []

    @Flag(name: .customLong("leave-output-tensor"), help: "Keep output.weight as it is.")
    var leaveOutputTensor = false

    @Option(help: "Importance matrix (llama.cpp GGUF imatrix or legacy .dat).")
    var imatrix: String?

    @Option(name: .customLong("include-weights"), help: "Use the imatrix only for tensors whose names contain this (repeatable).")
    var includeWeights: [String] = []

    @Option(name: .customLong("exclude-weights"), help: "Do not use the imatrix for tensors whose names contain this (repeatable).")
    var excludeWeights: [String] = []

    @Flag(name: .customLong("allow-requantize"), help: "Allow requantizing tensors that are already quantized.")
    var allowRequantize = false

    @Flag(name: .customLong("dry-run"), help: "Print the plan (tensor, type, bytes, bits per weight, total) without writing.")
    var dryRun = false

    /// Whether any option here was given (packed formats take none of them).
    var anyGiven: Bool {
        type != nil || pure || outputTensorType != nil || tokenEmbeddingType != nil || !tensorType.isEmpty || leaveOutputTensor
            || imatrix != nil || !includeWeights.isEmpty || !excludeWeights.isEmpty || allowRequantize || dryRun
    }

    func options(preset: QuantPreset, pre: String?) -> GGUFQuantizer.Options {
        var o = GGUFQuantizer.Options(preset: preset)
        o.overrides.pure = pure
        o.overrides.outputTensorType = outputTensorType
        o.overrides.tokenEmbeddingType = tokenEmbeddingType
        o.overrides.leaveOutputTensor = leaveOutputTensor
        o.overrides.tensorTypes = tensorType.map { ($0.pattern, $0.type) }
        o.imatrixPath = imatrix
        o.includeWeights = includeWeights
        o.excludeWeights = excludeWeights
        o.allowRequantize = allowRequantize
        o.pre = pre
        return o
    }
}

/// GPTQ's own settings.
struct GPTQOptions: ParsableArguments {
    @Flag(name: .customLong("act-order"), inversion: .prefixedNo,
          help: """
              GPTQ: quantize columns in order of decreasing Hessian diagonal. Default: act-order with static groups \
              (groups in column order, their parameters from the unmodified weights; no g_idx, desc_act=False: no cost \
              at run time) — llm-compressor's default actorder=static; GGUF blocks always take it. --act-order alone on \
              packed formats: groups in act-order with a g_idx (desc_act=True, AutoGPTQ's act-order). --no-act-order: \
              the stored column order (the original GPTQ code and transformers' GPTQConfig).
              """)
    var actOrder: Bool?

    @Flag(name: .customLong("static-groups"),
          help: "GPTQ: group parameters from the unmodified weights (as the default act-order does; with --act-order on a packed format it keeps desc_act=False).")
    var staticGroups = false

    @Option(help: "GPTQ damping, as a fraction of the mean Hessian diagonal (raised automatically if Cholesky fails).")
    var damp: Float = 0.01

    @Flag(name: .customLong("no-true-sequential"), help: "GPTQ: capture all linears of a layer in one pass instead of stage by stage.")
    var noTrueSequential = false

    @Flag(name: .customLong("updated-group-params"),
          help: "GPTQ, packed groups smaller than 128: scale and zero from the weights as updated so far, not the reference's stale copy (helped symmetric, hurt asymmetric on SmolLM2).")
    var updatedGroupParams = false

    @Flag(help: """
              GPTQ: asymmetric calibration (GPTAQ, GPTQModel's gptaq=True): each linear's target is its output on the \
              full-precision model's inputs, not on the inputs the layers quantized before it give; a second set of \
              residual streams runs through the unquantized layers (one more forward pass, twice the streams' memory).
              """)
    var gptaq = false

    @Option(name: .customLong("gptaq-alpha"),
            help: "GPTAQ: the fraction of the asymmetry correction applied (GPTQModel's gptaq_alpha). (default: 0.25)")
    var gptaqAlpha: Float?

    func validate() throws {
        guard damp >= 0, damp < 1 else { throw ValidationError("--damp must be in [0, 1)") }
        if let a = gptaqAlpha {
            guard gptaq else { throw ValidationError("--gptaq-alpha needs --gptaq") }
            guard a.isFinite, a > 0, a <= 1 else { throw ValidationError("--gptaq-alpha must be in (0, 1] (got \(a))") }
        }
    }

    /// Whether group parameters are fixed before the pass: asked for, or act-order (the default) into GGUF, whose
    /// blocks are fixed in column order, or by default into a packed checkpoint, where `--act-order` alone asks for
    /// g_idx groups.
    func staticGroups(gguf: Bool) -> Bool {
        staticGroups || (actOrder ?? true) && (gguf || actOrder == nil)
    }

    /// Act-order with static groups unless asked otherwise; `gguf`: the output is a GGUF file, else a packed checkpoint.
    func apply(to o: inout GPTQPipeline.Options, data: CalibrationSet, gguf: Bool) {
        o.data = data
        o.gptq.actOrder = actOrder ?? true
        o.gptq.staticGroups = staticGroups(gguf: gguf)
        o.gptq.damp = damp
        o.gptq.updatedGroupParams = updatedGroupParams
        o.gptq.gptaqAlpha = gptaqAlpha ?? Quantization.GPTQOptions().gptaqAlpha
        o.gptaq = gptaq
        o.trueSequential = !noTrueSequential
    }
}

/// AWQ's own settings.
struct AWQOptions: ParsableArguments {
    @Option(name: .customLong("awq-search-samples"), help: "AWQ: calibration windows used for the scale-search losses (default: all --samples).")
    var awqSearchSamples: Int?

    @Flag(inversion: .prefixedNo,
          help: "AWQ: the clip search after the scales (default: on for --method awq, as AutoAWQ; off for awq+gptq, as llm-compressor's AWQ: GPTQ would take the clipped weights as its target and never see the clip's error).")
    var clip: Bool?

    @Flag(name: .customLong("no-duo-scaling"), help: "AWQ: scales from activations alone (llm-awq) instead of activations and weights (AutoAWQ).")
    var noDuoScaling = false

    @Flag(name: .customLong("no-identity-candidate"),
          help: "AWQ: search the ratio grid alone, as AutoAWQ does (by default no scaling is a candidate too, so AWQ can decline to scale).")
    var noIdentityCandidate = false

    @Option(name: .customLong("awq-search-loss"),
            help: """
                AWQ: what a scale candidate of the q/k/v and gate/up groups is judged by: block (the attention or MLP \
                output on --awq-search-samples windows, as AutoAWQ and llm-compressor) or linear (the group's linears' \
                outputs over every window, through their input's Gram matrix: no block runs).
                """)
    var awqSearchLoss: AWQPipeline.SearchLoss?

    @Flag(name: .customLong("no-scale-judge"),
          help: """
              AWQ then GPTQ: keep AWQ's scales in every layer. By default each layer is quantized by GPTQ both with and \
              without them, and the one whose output is closer to the unquantized layer's (with --gptaq: to the \
              full-precision model's) is kept (twice GPTQ's time).
              """)
    var noScaleJudge = false

    func validate() throws {
        if let n = awqSearchSamples, n <= 0 { throw ValidationError("--awq-search-samples must be positive") }
    }

    /// Whether any AWQ option was given (they apply to --method awq and awq+gptq only).
    var anyGiven: Bool {
        awqSearchSamples != nil || clip != nil || noDuoScaling || noIdentityCandidate || awqSearchLoss != nil
    }

    /// For `method` awq or awq+gptq (whose default is no clip search: AWQ's scales feed GPTQ).
    func options(data: CalibrationSet, resume: Bool, method: PackedQuantizer.Method) -> AWQPipeline.Options {
        var a = AWQPipeline.Options()
        a.data = data
        a.searchSamples = awqSearchSamples
        a.searchLoss = awqSearchLoss ?? .block
        a.clip = clip ?? (method != .awqGPTQ)
        a.duoScaling = !noDuoScaling
        a.identityCandidate = !noIdentityCandidate
        a.judgeScales = !noScaleJudge
        a.resume = resume
        return a
    }
}
