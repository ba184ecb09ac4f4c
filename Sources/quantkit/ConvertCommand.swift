import ArgumentParser
import Foundation
import ModelFormats
import QuantKit

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert an HF checkpoint (directory, .safetensors file, sharded index or HF-cache model id) to GGUF.",
        discussion: """
        Examples:
          quantkit convert models/smollm2-135m-instruct -o smollm2-bf16.gguf --type bf16
          quantkit convert TinyLlama/TinyLlama-1.1B-Chat-v1.0 -o tinyllama-f16.gguf
        """
    )

    @Argument(help: "HF checkpoint: directory, .safetensors file, or ORG/NAME in the HF cache.")
    var source: String

    @Option(name: .shortAndLong, help: "Output GGUF path.")
    var output: String

    @Option(help: "Tensor type of the matrices: f32, f16, bf16, q8_0 or auto (the checkpoint's own 16-bit type).")
    var type: Converter.OutType = .f16

    @Option(name: .long, help: "BPE pre-tokenizer name to write when the tokenizer is not recognized (e.g. llama-bpe, smollm, gpt2).")
    var pre: String?

    @OptionGroup
    var out: OutputOptions

    func run() throws {
        try guarded {
            try OutputConflicts.check(outputs: [.init(output, .gguf)], inputs: OutputConflicts.modelInputs(source), force: out.force)
            let p = ProgressPrinter()
            let r = try Converter.convert(source, to: output, outType: type, pre: pre, progress: p.update)
            if out.json {
                print(JSONValue.object([("output", .string(r.output)), ("tensors", .int(Int64(r.tensors))), ("bytes", .int(Int64(r.bytes))),
                                        ("file_type", .int(Int64(r.fileType)))]).serialized())
            } else {
                print("wrote \(r.output): \(r.tensors) tensors, \(r.bytes) bytes of tensor data")
            }
        }
    }
}
