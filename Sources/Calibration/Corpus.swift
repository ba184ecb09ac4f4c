import CZstd
import Foundation
import ModelFormats
import TensorCore

/// Calibration text from `.txt`, `.jsonl` (one JSON object per line, text in `textField`), and `.zst`-compressed
/// versions of both (streamed through libzstd).
public enum Corpus {
    public static func read(_ path: String, textField: String = "text") throws -> String {
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        var name = path
        if path.hasSuffix(".zst") {
            data = try decompressZstd(data, file: path)
            name = String(path.dropLast(4))
        }
        if name.hasSuffix(".jsonl") {
            var parts: [String] = []
            var lineNo = 0
            for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
                lineNo += 1
                let j = try JSONParser.parse(Data(line), file: "\(path) line \(lineNo)")
                guard let t = j[textField]?.string else { throw QKError(file: path, "line \(lineNo) has no string field \"\(textField)\" (--text-field)") }
                parts.append(t)
            }
            return parts.joined(separator: "\n\n")
        }
        guard let s = String(data: data, encoding: .utf8) else { throw QKError(file: path, "is not UTF-8 text") }
        return s
    }

    /// Streaming zstd decompression (frames of unknown size are fine).
    public static func decompressZstd(_ input: Data, file: String) throws -> Data {
        guard let ds = ZSTD_createDStream() else { throw QKError(file: file, "cannot create a zstd stream") }
        defer { ZSTD_freeDStream(ds) }
        ZSTD_initDStream(ds)
        var out = Data()
        let chunk = ZSTD_DStreamOutSize()
        var buf = [UInt8](repeating: 0, count: chunk)
        try input.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
            var inb = ZSTD_inBuffer(src: src.baseAddress, size: src.count, pos: 0)
            var last = 0
            while true {
                var filled = 0
                try buf.withUnsafeMutableBytes { b in
                    var outb = ZSTD_outBuffer(dst: b.baseAddress, size: chunk, pos: 0)
                    let r = ZSTD_decompressStream(ds, &outb, &inb)
                    if ZSTD_isError(r) != 0 { throw QKError(file: file, "zstd: \(String(cString: ZSTD_getErrorName(r)))") }
                    last = r
                    filled = outb.pos
                    out.append(b.bindMemory(to: UInt8.self).baseAddress!, count: outb.pos)
                }
                // done when all input is consumed and the decoder did not fill the output buffer
                if inb.pos == inb.size && filled < chunk { break }
            }
            if last != 0 { throw QKError(file: file, "zstd: truncated input") }
        }
        return out
    }

    /// `count` windows of `length` tokens from `tokens`, starts drawn uniformly with a seeded generator
    /// (splitmix64): the same seed always gives the same windows.
    public static func sample(_ tokens: [Int32], count: Int, length: Int, seed: UInt64) throws -> [[Int32]] {
        guard length > 0, count > 0 else { throw QKError("--samples and --seq-len must be positive") }
        guard tokens.count > length else { throw QKError("the calibration text has \(tokens.count) tokens; --seq-len \(length) needs more") }
        var s = seed
        func next() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let span = UInt64(tokens.count - length)
        return (0..<count).map { _ in
            let start = Int(next() % (span + 1))
            return Array(tokens[start..<(start + length)])
        }
    }

    /// Splits `total` windows over sources in proportion to `weights` (largest remainder, ties to the earlier
    /// source): 128 at 7:3 gives [90, 38].
    public static func mixCounts(total: Int, weights: [Double]) throws -> [Int] {
        guard !weights.isEmpty, weights.allSatisfy({ $0 >= 0 && $0.isFinite }), weights.reduce(0, +) > 0 else {
            throw QKError("--mix needs non-negative weights with a positive sum (e.g. 7:3)")
        }
        let sum = weights.reduce(0, +)
        let exact = weights.map { Double(total) * $0 / sum }
        var counts = exact.map { Int($0.rounded(.down)) }
        let order = exact.indices.sorted { (exact[$0] - Double(counts[$0]), -$0) > (exact[$1] - Double(counts[$1]), -$1) }
        for i in order.prefix(total - counts.reduce(0, +)) { counts[i] += 1 }
        return counts
    }

    /// Parses "7:3" (or "70,30").
    public static func parseMix(_ s: String) throws -> [Double] {
        let parts = s.split(whereSeparator: { $0 == ":" || $0 == "," }).map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { throw QKError("--mix \(s): expected weights like 7:3") }
        return parts.map { $0! }
    }
}
