import ArgumentParser
import Evaluation
import Foundation
import Llama
import QuantKit
import TensorCore

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Perplexity, KL divergence and top-1 agreement of candidates against a reference model on the same text.",
        discussion: """
        REF and CAND are HF checkpoint directories or GGUF files. llama.cpp's protocol by default (text tokenized once,
        non-overlapping chunks of --ctx tokens, BOS first in each chunk when the vocabulary adds BOS, second half scored);
        --protocol paper scores every token of each window.
        Examples:
          quantkit eval models/smollm2-135m-instruct smollm2-q4_k_m.gguf smollm2-q8_0.gguf --text wiki.test.raw --chunks 40
          quantkit eval ref.gguf cand.gguf --text wiki.test.raw --json eval.json
        KL-divergence base files are llama-perplexity's (--save-all-logits / --kl-divergence-base): --kld-base-out F saves
        the reference's log-probabilities while evaluating; --kld-base F evaluates candidates against such a file (from
        either tool) without the reference model or the text:
          quantkit eval ref.gguf --text wiki.test.raw --chunks 40 --kld-base-out ref.kld
          quantkit eval --kld-base ref.kld cand-q4_k_m.gguf cand-iq4_xs.gguf
        """
    )

    @Argument(help: "The reference model, then the candidate models (with --kld-base: candidates only).")
    var models: [String] = []

    @Option(name: .long, help: "Text file to score (not with --kld-base, whose file holds the tokens).")
    var text: String?

    @Option(name: .customLong("kld-base"), help: "Compare the candidates against this KL-divergence base file instead of a reference model.")
    var kldBase: String?

    @Option(name: .customLong("kld-base-out"), help: "Also save the reference's log-probabilities as a KL-divergence base file (llama-perplexity's format).")
    var kldBaseOut: String?

    @Option(name: .long, help: "Tokens per chunk.")
    var ctx: Int = 512

    @Option(name: .long, help: "Number of chunks (default: all).")
    var chunks: Int?

    @Option(name: .customLong("protocol"), help: "llama.cpp (score the second half of each chunk) or paper (every token of each window).")
    var proto: Perplexity.EvalProtocol = .llamaCpp

    @Option(name: .long, help: """
        How quantized weights meet the activations: exact (f32 activations; each product is that of the dequantized \
        row) or llama (rounded to int8 as llama.cpp rounds them before its dot products: per 32 values for \
        Q4_0/Q5_0/Q8_0 rows, per 256 for Q4_K/Q6_K; integer products, llama-perplexity's numbers up to float order; \
        integer tiles: AVX-512 VNNI, else AVX2).
        """)
    var activations: ActivationRounding = .exact

    @Option(name: .long, help: "Also write the results as JSON to this file.")
    var json: String?

    @Option(name: .long, help: "Also write an HTML report with plots to this file.")
    var report: String?

    @Flag(name: .long, help: "Write even when the output's name says another format (a GGUF under .safetensors), or over an existing checkpoint directory (export). Inputs are never replaced.")
    var force = false

    func validate() throws {
        if let c = chunks, c < 1 { throw ValidationError("--chunks must be at least 1") }
        guard ctx >= 8 else { throw ValidationError("--ctx must be at least 8") }
        if kldBase != nil {
            if models.isEmpty { throw ValidationError("--kld-base needs at least one candidate model") }
            if text != nil { throw ValidationError("--kld-base holds the tokens: drop --text") }
            if kldBaseOut != nil { throw ValidationError("--kld-base and --kld-base-out exclude each other") }
            if proto != .llamaCpp { throw ValidationError("--kld-base is llama-perplexity's file: use --protocol llama.cpp") }
        } else {
            if models.isEmpty { throw ValidationError("missing the reference model") }
            if text == nil { throw ValidationError("--text FILE is required (or --kld-base FILE)") }
            if kldBaseOut != nil && proto != .llamaCpp { throw ValidationError("--kld-base-out is llama-perplexity's file: use --protocol llama.cpp") }
        }
    }

    func run() throws {
        try guarded {
            var outputs: [OutputConflicts.Output] = []
            if let json { outputs.append(.init(json, .file("a JSON report"), option: "--json")) }
            if let report { outputs.append(.init(report, .file("an HTML report"), option: "--report")) }
            if let kldBaseOut { outputs.append(.init(kldBaseOut, .file("a KL-divergence base"), option: "--kld-base-out")) }
            let inputs = models.flatMap(OutputConflicts.modelInputs) + [text, kldBase].compactMap { $0 }
            try OutputConflicts.check(outputs: outputs, inputs: inputs, force: force)
            let pr = ProgressPrinter()
            let r: Evaluator.Report
            if let kldBase {
                r = try Evaluator.run(kldBase: kldBase, candidates: models, chunks: chunks, activations: activations,
                                      progress: pr.update)
            } else {
                r = try Evaluator.run(reference: models[0], candidates: Array(models.dropFirst()), textFile: text!, ctx: ctx, chunks: chunks,
                                      protocol: proto, kldBaseOut: kldBaseOut, activations: activations,
                                      progress: pr.update)
            }
            print(Evaluator.table(r), terminator: "")
            if let json { try writeFileAtomically(json, Array(Evaluator.json(r).serialized().utf8)) }
            if let report { try writeFileAtomically(report, Array(HTMLReport.render(r).utf8)) }
        }
    }
}

struct BLASSelfCheck: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "blas-selfcheck", abstract: "Check OpenBLAS sgemm against a reference.", shouldDisplay: false)
    func run() throws {
        print(BLAS.coreName)
        if !BLASCore.selfCheck() { throw ExitCode(1) }
    }
}
