import ArgumentParser
import Foundation
import QuantKit

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Turn a GGUF file into an HF checkpoint directory (dequantized safetensors, config.json, tokenizer files).",
        discussion: """
        Examples:
          quantkit export SmolLM2-135M-Instruct.Q4_1.gguf -o models/smollm2-135m-instruct
          quantkit export model-q8_0.gguf -o model-hf --dtype f32
        """
    )

    @Argument(help: "GGUF file.")
    var source: String

    @Option(name: .shortAndLong, help: "Output directory.")
    var output: String

    @Option(name: .long, help: "Weight dtype: bf16, f16 or f32.")
    var dtype: String = "bf16"

    func run() throws {
        try guarded {
            guard let d = Exporter.OutDType(rawValue: dtype.lowercased()) else {
                throw ValidationError("--dtype must be bf16, f16 or f32 (got \(dtype))")
            }
            let p = ProgressPrinter()
            let r = try Exporter.export(source, to: output, dtype: d, progress: p.update)
            print("wrote \(r.dir): \(r.tensors) tensors, \(r.bytes) bytes of weights")
        }
    }
}
