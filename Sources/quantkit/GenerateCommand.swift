import ArgumentParser
import Checkpoints
import Foundation
import Llama
import ModelFormats
import QuantKit

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A quick look at what a (quantized) model says: greedy by default, or --temperature/--top-p with a --seed.",
        discussion: """
        Examples:
          quantkit generate models/smollm2-135m-instruct --prompt "What is the capital of France?" --chat
          quantkit generate smollm2-q4_k_m.gguf --prompt "Once upon a time" --max-tokens 40 --temperature 0.8 --top-p 0.9 --seed 1
        """
    )

    @Argument(help: "HF checkpoint directory or GGUF file.")
    var model: String

    @Option(name: .long, help: "Prompt text.")
    var prompt: String

    @Flag(name: .long, help: "Wrap the prompt in the model's chat template.")
    var chat = false

    @Option(name: .long, help: "System message for --chat.")
    var system: String?

    @Option(name: .customLong("max-tokens"), help: "Tokens to generate.")
    var maxTokens: Int = 64

    @Option(name: .long, help: "Sampling temperature (0 = greedy).")
    var temperature: Float = 0

    @Option(name: .customLong("top-p"), help: "Nucleus sampling threshold.")
    var topP: Float = 1

    @Option(name: .long, help: "Random seed for sampling.")
    var seed: UInt64 = 0

    @Option(name: .long, help: """
        How quantized weights meet the activations: exact (f32 activations; each product is that of the dequantized \
        row) or llama (rounded to int8 as llama.cpp rounds them: per 32 values for Q4_0/Q5_0/Q8_0 rows, per 256 for \
        Q4_K/Q6_K; integer products, faster decoding; prompts take the row kernels too).
        """)
    var activations: ActivationRounding = .exact

    @Flag(name: .long, help: "Print the prompt and generated token ids as JSON instead of text.")
    var ids = false

    @Flag(name: .long, help: "Print JSON: the generated text, prompt and output token ids, tokens per second (overall and decoding).")
    var json = false

    func run() throws {
        try guarded {
            guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be at least 1") }
            guard temperature >= 0, topP > 0, topP <= 1 else { throw ValidationError("--temperature must be ≥ 0 and --top-p in (0, 1]") }
            let m = try LoadedModel.load(model)
            var o = Generator.Options()
            o.maxTokens = maxTokens; o.temperature = temperature; o.topP = topP; o.seed = seed; o.chat = chat; o.system = system
            o.activations = activations
            let t0 = Date()
            var firstToken: Date?   // the prompt has run and the first token is picked: decoding starts
            let r = try Generator.generate(m, prompt: prompt, options: o) { _ in if firstToken == nil { firstToken = Date() } }
            let end = Date()
            let secs = end.timeIntervalSince(t0)
            if json {
                // decoding: the tokens after the first, over the time after the first (llama.cpp's "eval time")
                let decodeSecs = firstToken.map { end.timeIntervalSince($0) } ?? 0
                let decoded = max(0, r.output.count - 1)
                print(JSONValue.object([("text", .string(m.tokenizer.decode(r.output, skipSpecial: true))),
                                        ("prompt_ids", .array(r.prompt.map { .int(Int64($0)) })), ("output_ids", .array(r.output.map { .int(Int64($0)) })),
                                        ("seconds", .double(secs)), ("tokens_per_second", .double(Double(r.output.count) / max(secs, 1e-9))),
                                        ("prompt_seconds", .double(firstToken.map { $0.timeIntervalSince(t0) } ?? secs)),
                                        ("decode_tokens_per_second", .double(decoded > 0 ? Double(decoded) / max(decodeSecs, 1e-9) : 0))]).serialized())
            } else if ids {
                print(#"{"prompt": [\#(r.prompt.map(String.init).joined(separator: ", "))], "output": [\#(r.output.map(String.init).joined(separator: ", "))]}"#)
            } else {
                print(m.tokenizer.decode(r.output, skipSpecial: true))
            }
        }
    }
}
