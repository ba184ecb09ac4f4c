import ArgumentParser
import Checkpoints
import Foundation
import QuantKit
import TensorCore

@main
struct Quantkit: ParsableCommand {
    static func main() {
        // Commands that run the model (quantize for GPTQ / AWQ) get OpenBLAS's fast kernels (see BLASCore); others
        // start as they are.
        if let cmd = CommandLine.arguments.dropFirst().first, ["eval", "generate", "imatrix", "quantize", "--version", "bench-sgemm"].contains(cmd) {
            BLASCore.selectFastKernels()
        }
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "quantkit",
        abstract: "Convert Llama-family checkpoints to GGUF, quantize them, and measure what quantization cost.",
        version: QuantKitInfo.versionString(),
        subcommands: [Inspect.self, Tokenize.self, Convert.self, Export.self, Quantize.self, Imatrix.self, Eval.self, Generate.self, Synth.self, BLASSelfCheck.self, BenchSgemm.self, BenchTokenizer.self, BenchRowKernels.self, BenchWindows.self]
    )
}

/// Runs a command body: QKError becomes one line on stderr and exit code 1; SIGINT/SIGTERM remove partial outputs.
func guarded(_ body: () throws -> Void) throws {
    Signals.install()
    do {
        try body()
    } catch let e as QKError {
        PartialFiles.removeAll()
        FileHandle.standardError.write(Data("error: \(e.message)\n".utf8))
        throw ExitCode(1)
    }
}
