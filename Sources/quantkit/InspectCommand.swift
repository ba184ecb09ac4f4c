import ArgumentParser
import Foundation
import QuantKit

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show metadata, tensors (name, shape, type, bytes), totals and bits per weight of a GGUF file, safetensors file or HF directory.",
        discussion: """
        Examples:
          quantkit inspect model.gguf
          quantkit inspect models/smollm2-135m-instruct --json
        """
    )

    @Argument(help: "GGUF file, .safetensors file or HF checkpoint directory.")
    var path: String

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        try guarded {
            let r = try Inspector.inspect(path)
            print(json ? r.json().serialized() : r.text())
        }
    }
}
