import ModelFormats
import TensorCore

/// HF ↔ GGUF tensor names of Llama models, and the q/k row permutation llama.cpp applies.
public enum LlamaTensorNames {
    /// HF module suffix ↔ GGUF stem of every tensor inside a layer (from the architecture's tables).
    static let layerMap: [(hf: String, gguf: String)] = LlamaNorm.names + LlamaLinear.specs.map { ($0.hf, $0.gguf) }

    /// HF names that are dropped on conversion.
    public static func isIgnored(_ hf: String) -> Bool {
        hf.hasSuffix(".rotary_emb.inv_freq") || hf.hasSuffix(".attention.masked_bias") || hf.hasSuffix(".attention.bias")
    }

    /// The GGUF name of an HF tensor, or nil when it is not part of a Llama model.
    public static func gguf(_ hf: String) -> String? {
        switch hf {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let parts = hf.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]), layer >= 0 else { return nil }
        let rest = parts[3...].joined(separator: ".")
        for (h, g) in layerMap {
            if rest == h + ".weight" { return "blk.\(layer).\(g).weight" }
            if rest == h + ".bias" { return "blk.\(layer).\(g).bias" }
        }
        return nil
    }

    /// The HF name of a GGUF tensor, or nil.
    public static func hf(_ gguf: String) -> String? {
        switch gguf {
        case "token_embd.weight": return "model.embed_tokens.weight"
        case "output_norm.weight": return "model.norm.weight"
        case "output.weight": return "lm_head.weight"
        default: break
        }
        let parts = gguf.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]), layer >= 0 else { return nil }
        for (h, g) in layerMap where parts[2] == g {
            return "model.layers.\(layer).\(h).\(parts[3])"
        }
        return nil
    }

    /// The linear an HF weight or bias name belongs to ("model.layers.L.self_attn.q_proj.bias" → q).
    public static func linear(of hf: String) -> LlamaLinear? {
        guard let l = layer(of: hf), let dot = hf.lastIndex(of: ".") else { return nil }
        let prefix = "model.layers.\(l)."
        guard hf.hasPrefix(prefix) else { return nil }
        return LlamaLinear(hf: String(hf[hf.index(hf.startIndex, offsetBy: prefix.count)..<dot]))
    }

    /// The layer index of a `blk.N.` / `model.layers.N.` name.
    public static func layer(of name: String) -> Int? {
        let parts = name.split(separator: ".")
        if parts.count > 2, parts[0] == "blk" { return Int(parts[1]) }
        if parts.count > 3, parts[0] == "model", parts[1] == "layers" { return Int(parts[2]) }
        return nil
    }

    /// For q (heads = n_head) and k (heads = n_head_kv): `src[r]` is the HF row that lands at GGUF row r.
    /// Row (h, 2j+t) of the GGUF tensor is row (h, t·D/2 + j) of the HF one, D = rows / heads.
    public static func qkPermutation(rows: Int, heads: Int) throws -> [Int] {
        guard heads > 0, rows % heads == 0, (rows / heads) % 2 == 0 else {
            throw QKError("q/k permutation: \(rows) rows do not split into \(heads) heads of even size")
        }
        let d = rows / heads, half = d / 2
        var src = [Int](repeating: 0, count: rows)
        for h in 0..<heads {
            for j in 0..<half {
                for t in 0..<2 { src[h * d + 2 * j + t] = h * d + t * half + j }
            }
        }
        return src
    }

    /// The inverse: `src[r]` is the GGUF row that lands at HF row r.
    public static func qkInversePermutation(rows: Int, heads: Int) throws -> [Int] {
        let fwd = try qkPermutation(rows: rows, heads: heads)
        var inv = [Int](repeating: 0, count: rows)
        for (dst, s) in fwd.enumerated() { inv[s] = dst }
        return inv
    }

    /// Gathers whole rows: `out[r] = x[src[r]]` for rows of `rowLength` elements.
    public static func gatherRows<T>(_ x: [T], rowLength: Int, src: [Int]) -> [T] {
        var out = x
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                for (r, s) in src.enumerated() {
                    for c in 0..<rowLength { op[r * rowLength + c] = xp[s * rowLength + c] }
                }
            }
        }
        return out
    }

    /// Row-gathers raw bytes (quantized rows move whole too).
    public static func gatherRowBytes(_ x: UnsafeRawBufferPointer, rowBytes: Int, src: [Int]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: src.count * rowBytes)
        out.withUnsafeMutableBytes { op in
            for (r, s) in src.enumerated() {
                op.baseAddress!.advanced(by: r * rowBytes).copyMemory(from: x.baseAddress!.advanced(by: s * rowBytes), byteCount: rowBytes)
            }
        }
        return out
    }
}
