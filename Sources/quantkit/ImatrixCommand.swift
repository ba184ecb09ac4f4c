import ArgumentParser
import Calibration
import Checkpoints
import Foundation
import ModelFormats
import QuantKit

struct Imatrix: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Importance matrix (Σx² per input column of every linear layer) over calibration text, in llama.cpp's imatrix format.",
        discussion: """
        Examples:
          quantkit imatrix models/smollm2-135m-instruct --calibration ../shared/data/wikitext-2-raw/wiki.valid.raw -o smollm2.imatrix.gguf --chunks 64
          quantkit quantize models/smollm2-135m-instruct -o smollm2-q4_0-imat.gguf --type Q4_0 --imatrix smollm2.imatrix.gguf
        """
    )

    @Argument(help: "HF checkpoint directory or GGUF file.")
    var model: String

    @Option(name: .long, help: "Calibration text file.")
    var calibration: String

    @Option(name: .shortAndLong, help: "Output path.")
    var output: String

    @Option(name: .long, help: "Tokens per chunk.")
    var ctx: Int = 512

    @Option(name: .long, help: "Number of chunks (default: all).")
    var chunks: Int?

    @Option(name: .customLong("output-format"), help: "gguf (llama-imatrix's current format) or dat (its legacy one).")
    var outputFormat: ImatrixFormat = .gguf

    @Flag(name: .customLong("process-output"), help: "Also collect output.weight (a head tied to the embeddings has none, as in llama-imatrix).")
    var processOutput = false

    @OptionGroup
    var out: OutputOptions

    @Flag(name: .long, help: "Continue an interrupted run from the sums kept in OUTPUT.state/ (same bytes as an uninterrupted run).")
    var resume = false

    func validate() throws {
        guard ctx >= 8 else { throw ValidationError("--ctx must be at least 8") }
        if let n = chunks, n <= 0 { throw ValidationError("--chunks must be positive") }
    }

    func run() throws {
        try guarded {
            let kind: OutputConflicts.Kind = outputFormat == .gguf ? .gguf : .file("an imatrix .dat file")
            try OutputConflicts.check(outputs: [.init(output, kind)], inputs: OutputConflicts.modelInputs(model) + [calibration], force: out.force)
            let m = try LoadedModel.load(model)
            let text = try String(contentsOfFile: calibration, encoding: .utf8)
            var o = ImatrixCollector.Options()
            o.ctx = ctx; o.chunks = chunks; o.processOutput = processOutput
            o.statePath = output; o.resume = resume
            let pr = ProgressPrinter()
            let r = try ImatrixCollector.collect(model: m, text: text, options: o, progress: pr.update)
            let dataset = calibration
            if outputFormat == .dat { try ImatrixCollector.writeDat(r, dataset: dataset, to: output) }
            else { try ImatrixCollector.writeGGUF(r, dataset: dataset, to: output) }
            ResumeState.finish(output: output)
            if out.json {
                print(JSONValue.object([("output", .string(output)), ("entries", .int(Int64(r.sums.count))), ("chunks", .int(Int64(r.chunks))),
                                        ("chunk_size", .int(Int64(ctx)))]).serialized())
            } else {
                print("wrote \(output): \(r.sums.count) entries, \(r.chunks) chunks of \(ctx) tokens")
            }
        }
    }
}
