import ArgumentParser
import Checkpoints
import Foundation
import ModelFormats
import TensorCore

/// `quantkit tokenize`: llama-tokenize's job, for checking a converted model's tokenizer.
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the token ids (and pieces) a model's tokenizer gives a text, as llama-tokenize does.",
        discussion: """
        Examples:
          quantkit tokenize model.gguf --prompt "Hello world"
          quantkit tokenize models/smollm2-135m-instruct --file notes.txt --ids
        """
    )

    @Argument(help: "GGUF file or HF checkpoint directory.")
    var model: String

    @Option(name: .long, help: "The text to tokenize.")
    var prompt: String?

    @Option(name: .customLong("file"), help: "Read the text from this file instead.")
    var file: String?

    @Flag(name: .long, help: "Print only the ids, as a list ([1, 2, 3]).")
    var ids = false

    @Flag(name: .customLong("no-bos"), help: "Do not add the BOS token (or other special tokens the vocabulary adds).")
    var noBos = false

    @Flag(name: .customLong("no-parse-special"), help: "Treat special-token text (e.g. <|im_start|>) as plain text.")
    var noParseSpecial = false

    @Flag(name: .long, help: "Print JSON: ids and pieces.")
    var json = false

    func validate() throws {
        guard (prompt == nil) != (file == nil) else { throw ValidationError("give exactly one of --prompt and --file") }
    }

    func run() throws {
        try guarded {
            let text: String
            if let file {
                guard let d = FileManager.default.contents(atPath: file), let t = String(data: d, encoding: .utf8) else {
                    throw QKError(file: file, "cannot read the text (UTF-8)")
                }
                text = t
            } else {
                text = prompt ?? ""
            }
            let tok = try LoadedModel.tokenizer(model)
            let out = tok.encode(text, addSpecial: !noBos, parseSpecial: !noParseSpecial)
            if json {
                let pieces = out.map { tok.decode([$0]) }
                let j: JSONValue = .object([("ids", .array(out.map { .int(Int64($0)) })), ("pieces", .array(pieces.map { .string($0) }))])
                print(j.serialized())
            } else if ids {
                print("[" + out.map(String.init).joined(separator: ", ") + "]")
            } else {
                for id in out { print("\(String(id).leftPad(6)) -> '\(tok.decode([id]))'") }
            }
        }
    }
}

private extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
