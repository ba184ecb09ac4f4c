import ArgumentParser
import Foundation
import QuantKit

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a random-weight bf16 checkpoint with a real model's shapes (for benchmarks).",
        discussion: "Example: quantkit synth tinyllama-1.1b -o bench-out/tinyllama-synth --shards 2",
        shouldDisplay: false
    )

    @Argument(help: "Shape: tinyllama-1.1b, smollm2-135m, llama2-7b, qwen2.5-1.5b or micro-qwen2.")
    var shape: String

    @Option(name: .shortAndLong, help: "Output directory.")
    var output: String

    @Option(help: "Number of safetensors shards.")
    var shards: Int = 1

    @Option(help: "Random seed.")
    var seed: UInt64 = 0

    func run() throws {
        try guarded {
            let p = ProgressPrinter()
            try SyntheticCheckpoint.write(shape: shape, to: output, shards: shards, seed: seed, progress: p.update)
            print("wrote \(output)")
        }
    }
}
