import ArgumentParser
import Evaluation
import Foundation
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
        """
    )

    @Argument(help: "Reference model.")
    var reference: String

    @Argument(help: "Candidate models.")
    var candidates: [String] = []

    @Option(name: .long, help: "Text file to score.")
    var text: String

    @Option(name: .long, help: "Tokens per chunk.")
    var ctx: Int = 512

    @Option(name: .long, help: "Number of chunks (default: all).")
    var chunks: Int?

    @Option(name: .customLong("protocol"), help: "llama.cpp (score the second half of each chunk) or paper (every token of each window).")
    var proto: Perplexity.EvalProtocol = .llamaCpp

    @Option(name: .long, help: "Also write the results as JSON to this file.")
    var json: String?

    @Option(name: .long, help: "Also write an HTML report with plots to this file.")
    var report: String?

    @Flag(name: .long, help: "Write even when the output's name says another format (a GGUF under .safetensors), or over an existing checkpoint directory (export). Inputs are never replaced.")
    var force = false

    func validate() throws {
        if let c = chunks, c < 1 { throw ValidationError("--chunks must be at least 1") }
        guard ctx >= 8 else { throw ValidationError("--ctx must be at least 8") }
    }

    func run() throws {
        try guarded {
            var outputs: [OutputConflicts.Output] = []
            if let json { outputs.append(.init(json, .file("a JSON report"), option: "--json")) }
            if let report { outputs.append(.init(report, .file("an HTML report"), option: "--report")) }
            let inputs = ([reference] + candidates).flatMap(OutputConflicts.modelInputs) + [text]
            try OutputConflicts.check(outputs: outputs, inputs: inputs, force: force)
            let pr = ProgressPrinter()
            let r = try Evaluator.run(reference: reference, candidates: candidates, textFile: text, ctx: ctx, chunks: chunks, protocol: proto, progress: pr.update)
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
