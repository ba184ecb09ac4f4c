import ArgumentParser
import Foundation
import ModelFormats
import QuantKit

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Turn a GGUF file or a packed checkpoint (GPTQ, AWQ, compressed-tensors) into a plain HF checkpoint directory (dequantized safetensors, config.json, tokenizer files).",
        discussion: """
        Examples:
          quantkit export SmolLM2-135M-Instruct.Q4_1.gguf -o models/smollm2-135m-instruct
          quantkit export model-q8_0.gguf -o model-hf --dtype f32
          quantkit export smollm2-gptq-w4g64 -o smollm2-gptq-w4g64-bf16
        """
    )

    @Argument(help: "GGUF file, or a packed checkpoint directory.")
    var source: String

    @Option(name: .shortAndLong, help: "Output directory.")
    var output: String

    @Option(help: "Weight dtype: bf16, f16 or f32.")
    var dtype: Exporter.OutDType = .bf16

    @OptionGroup
    var out: OutputOptions

    func run() throws {
        try guarded {
            try OutputConflicts.check(outputs: [.init(output, .exportDirectory)], inputs: OutputConflicts.modelInputs(source), force: out.force)
            let p = ProgressPrinter()
            let r = try Exporter.export(source, to: output, dtype: dtype, replace: out.force, progress: p.update)
            if out.json {
                print(JSONValue.object([("output", .string(r.dir)), ("tensors", .int(Int64(r.tensors))), ("bytes", .int(Int64(r.bytes)))]).serialized())
            } else {
                print("wrote \(r.dir): \(r.tensors) tensors, \(r.bytes) bytes of weights")
            }
        }
    }
}
