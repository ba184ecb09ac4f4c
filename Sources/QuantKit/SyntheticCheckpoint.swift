import Foundation
import Llama
import ModelFormats
import TensorCore

/// Random-weight checkpoints with the exact shapes of real models, for speed and memory measurements
/// at scale (no real weights of that size are reachable offline).
public enum SyntheticCheckpoint {
    public static let shapes: [String: LlamaConfig] = {
        var tiny = LlamaConfig(hiddenSize: 2048, intermediateSize: 5632, numLayers: 22, numHeads: 32, numKVHeads: 4, vocabSize: 32000)
        tiny.maxPositionEmbeddings = 2048; tiny.rmsNormEps = 1e-5; tiny.bosTokenId = 1; tiny.eosTokenIds = [2]
        var smol = LlamaConfig(hiddenSize: 576, intermediateSize: 1536, numLayers: 30, numHeads: 9, numKVHeads: 3, vocabSize: 49152)
        smol.maxPositionEmbeddings = 8192; smol.rmsNormEps = 1e-5; smol.ropeTheta = 100000; smol.tieWordEmbeddings = true
        var l7 = LlamaConfig(hiddenSize: 4096, intermediateSize: 11008, numLayers: 32, numHeads: 32, numKVHeads: 32, vocabSize: 32000)
        l7.maxPositionEmbeddings = 4096; l7.rmsNormEps = 1e-5; l7.bosTokenId = 1; l7.eosTokenIds = [2]
        return ["tinyllama-1.1b": tiny, "smollm2-135m": smol, "llama2-7b": l7,
                "qwen2.5-1.5b": qwen2(hidden: 1536, ffn: 8960, layers: 28, heads: 12),
                "micro-qwen2": qwen2(hidden: 32, ffn: 96, layers: 2, heads: 4)]
    }()

    /// Qwen2.5's shapes around the given sizes (two KV heads, its vocabulary, tied embeddings, q/k/v biases).
    static func qwen2(hidden: Int, ffn: Int, layers: Int, heads: Int) -> LlamaConfig {
        var c = LlamaConfig(hiddenSize: hidden, intermediateSize: ffn, numLayers: layers, numHeads: heads, numKVHeads: 2,
                            vocabSize: 151936)
        c.family = .qwen2
        c.architecture = "Qwen2ForCausalLM"
        c.maxPositionEmbeddings = 32768
        c.rmsNormEps = 1e-6
        c.ropeTheta = 1_000_000
        c.tieWordEmbeddings = true
        c.bosTokenId = 151643
        c.eosTokenIds = [151645]
        return c
    }

    /// HF tensor names and shapes of a Llama checkpoint (the architecture's table), sorted by name.
    public static func tensors(_ c: LlamaConfig) -> [(String, [Int])] {
        LlamaTensors.expected(c).map { ($0.name, $0.shape) }.sorted { $0.0 < $1.0 }
    }

    /// Writes config.json and bf16 weights (N shards with an index when `shards` > 1) into `dir`.
    /// Matrices are ~N(0, 0.02) with a few outliers, norms ~1: deterministic for a seed.
    public static func write(shape: String, to dir: String, shards: Int = 1, seed: UInt64 = 0, progress: ProgressCallback? = nil) throws {
        guard var c = shapes[shape] else { throw QKError("unknown shape \(shape) (known: \(shapes.keys.sorted().joined(separator: ", ")))") }
        c.torchDtype = "bfloat16"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try writeFileAtomically(dir + "/config.json", Array(c.json().serialized().utf8))
        let all = tensors(c)
        let total = all.reduce(0) { $0 + $1.1.reduce(1, *) * 2 }
        let per = (total + max(1, shards) - 1) / max(1, shards)
        var groups: [[(String, [Int])]] = [[]]
        var size = 0
        for t in all {
            let b = t.1.reduce(1, *) * 2
            if size + b > per, !groups[groups.count - 1].isEmpty, groups.count < shards { groups.append([]); size = 0 }
            groups[groups.count - 1].append(t); size += b
        }
        var weightMap: [(String, JSONValue)] = []
        var done = 0
        for (k, g) in groups.enumerated() {
            let name = groups.count == 1 ? "model.safetensors" : String(format: "model-%05ld-of-%05ld.safetensors", k + 1, groups.count)
            try SafetensorsWriter.write(path: dir + "/" + name, entries: g.map { .init(name: $0.0, dtype: .bf16, shape: $0.1) }) { i in
                progress?("synth \(g[i].0)", done, all.count); done += 1
                return values(g[i].0, count: g[i].1.reduce(1, *), seed: seed)
            }
            for t in g { weightMap.append((t.0, .string(name))) }
        }
        if groups.count > 1 {
            let idx: JSONValue = .object([("metadata", .object([("total_size", .int(Int64(total)))])), ("weight_map", .object(weightMap))])
            try writeFileAtomically(dir + "/model.safetensors.index.json", Array(idx.serialized().utf8))
        }
    }

    /// bf16 bytes of one tensor from a per-tensor splitmix64 stream, one stream per 64 Ki values (the same bytes
    /// on any machine and thread count: golden files are made from them).
    static func values(_ name: String, count: Int, seed: UInt64) -> [UInt8] {
        let isNorm = name.hasSuffix("norm.weight")
        let isBias = name.hasSuffix(".bias")
        var h: UInt64 = seed &+ 0x9E37_79B9_7F4A_7C15
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        var out = [UInt8](repeating: 0, count: count * 2)
        let per = 65536
        let chunks = (count + per - 1) / per
        out.withUnsafeMutableBytes { raw in
            nonisolated(unsafe) let p = raw.baseAddress!.assumingMemoryBound(to: UInt16.self)
            Parallel.forRanges(chunks) { r in
                for c in r {
                    var s = h &+ UInt64(c) &* 0xD1B5_4A32_D192_ED03
                    for i in (c * per)..<min(count, (c + 1) * per) {
                        s &+= 0x9E37_79B9_7F4A_7C15
                        var z = s
                        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                        z ^= z >> 31
                        // sum of 4 uniform bytes-pairs ≈ normal (Irwin–Hall), mean 0, sd ≈ 0.02
                        let a = Float(z & 0xffff) + Float((z >> 16) & 0xffff) + Float((z >> 32) & 0xffff) + Float(z >> 48)
                        var v = (a / 65535 - 2) * 0.0346
                        if z & 0x3ff == 0 { v *= 12 }  // ~0.1% outliers
                        if isNorm { v = 1 + v * 2.5 }
                        if isBias { v *= 10 }  // Qwen2's q/k/v biases are large beside its weights
                        p[i] = HalfFloat.f32ToBF16(v).littleEndian
                    }
                }
            }
        }
        return out
    }
}
