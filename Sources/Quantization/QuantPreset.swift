import ModelFormats
import TensorCore

/// llama-quantize's presets (llama_ftype): the file type id written to `general.file_type` and the default
/// tensor type the per-tensor rules start from.
public struct QuantPreset: Equatable, Sendable {
    public let name: String
    public let ftype: Int
    public let defaultType: GGMLType

    public static let all: [QuantPreset] = [
        .init(name: "F32", ftype: 0, defaultType: .f32), .init(name: "F16", ftype: 1, defaultType: .f16),
        .init(name: "BF16", ftype: 32, defaultType: .bf16), .init(name: "Q8_0", ftype: 7, defaultType: .q8_0),
        .init(name: "Q4_0", ftype: 2, defaultType: .q4_0), .init(name: "Q4_1", ftype: 3, defaultType: .q4_1),
        .init(name: "Q5_0", ftype: 8, defaultType: .q5_0), .init(name: "Q5_1", ftype: 9, defaultType: .q5_1),
        .init(name: "Q2_K", ftype: 10, defaultType: .q2_K), .init(name: "Q2_K_S", ftype: 21, defaultType: .q2_K),
        .init(name: "Q3_K_S", ftype: 11, defaultType: .q3_K), .init(name: "Q3_K_M", ftype: 12, defaultType: .q3_K),
        .init(name: "Q3_K_L", ftype: 13, defaultType: .q3_K), .init(name: "Q4_K_S", ftype: 14, defaultType: .q4_K),
        .init(name: "Q4_K_M", ftype: 15, defaultType: .q4_K), .init(name: "Q5_K_S", ftype: 16, defaultType: .q5_K),
        .init(name: "Q5_K_M", ftype: 17, defaultType: .q5_K), .init(name: "Q6_K", ftype: 18, defaultType: .q6_K),
        .init(name: "IQ4_NL", ftype: 25, defaultType: .iq4_NL), .init(name: "IQ4_XS", ftype: 30, defaultType: .iq4_XS),
        .init(name: "TQ1_0", ftype: 36, defaultType: .tq1_0), .init(name: "TQ2_0", ftype: 37, defaultType: .tq2_0),
    ]

    /// By name (case-insensitive, as llama-quantize accepts them) or by ftype number; "Q4_K" means Q4_K_M.
    public static func named(_ s: String) -> QuantPreset? {
        let u = s.uppercased()
        if let p = all.first(where: { $0.name == u }) { return p }
        if u == "Q4_K" { return named("Q4_K_M") }
        if u == "Q5_K" { return named("Q5_K_M") }
        if u == "Q3_K" { return named("Q3_K_M") }
        if let n = Int(u) { return all.first { $0.ftype == n } }
        return nil
    }
}

/// User overrides of the per-tensor choice (llama-quantize's options).
public struct TypeOverrides: Sendable {
    public var pure = false
    public var outputTensorType: GGMLType?
    public var tokenEmbeddingType: GGMLType?
    /// `--tensor-type REGEX=TYPE`, first match wins.
    public var tensorTypes: [(pattern: String, type: GGMLType)] = []
    public var leaveOutputTensor = false
    public init() {}
}

/// llama-quantize's per-tensor type choice (llama_tensor_get_type): category rules per preset, use_more_bits,
/// GQA rules, shape fallbacks, overrides. Tensors must be visited in the output (comparer) order, since the
/// attn_v / ffn_down rules count tensors as they go.
public struct TensorTypePolicy {
    public let preset: QuantPreset
    public let overrides: TypeOverrides
    let nLayer: Int
    let nGQA: Int
    let hasImatrix: Bool
    let hasTiedEmbeddings: Bool
    let nAttentionWV: Int
    var iAttentionWV = 0
    var iFfnDown = 0
    public private(set) var fallbacks: [(name: String, from: GGMLType, to: GGMLType)] = []
    let regexes: [(NSRegularExpressionBox, GGMLType)]

    public init(preset: QuantPreset, overrides: TypeOverrides, tensorNames: [String], nLayer: Int, nHead: Int, nHeadKV: Int,
                hasImatrix: Bool) throws {
        self.preset = preset
        self.overrides = overrides
        self.nLayer = nLayer
        self.nGQA = nHeadKV > 0 ? nHead / nHeadKV : 1
        self.hasImatrix = hasImatrix
        self.hasTiedEmbeddings = !tensorNames.contains("output.weight")
        self.nAttentionWV = tensorNames.filter { $0.contains("attn_v.weight") || $0.contains("attn_qkv.weight") || $0.contains("attn_kv_b.weight") }.count
        regexes = try overrides.tensorTypes.map { (try NSRegularExpressionBox($0.pattern), $0.type) }
    }

    enum Category { case output, tokenEmbd, attnV, attnK, attnQ, attnOutput, ffnUp, ffnGate, ffnDown, other }

    static func category(_ name: String) -> Category {
        if name == "output.weight" { return .output }
        if name == "token_embd.weight" { return .tokenEmbd }
        if name.contains("attn_qkv.weight") || name.contains("attn_kv_b.weight") || name.contains("attn_v.weight") { return .attnV }
        if name.contains("attn_k.weight") { return .attnK }
        if name.contains("attn_q.weight") { return .attnQ }
        if name.contains("attn_output.weight") { return .attnOutput }
        if name.contains("ffn_up") { return .ffnUp }
        if name.contains("ffn_gate") { return .ffnGate }
        if name.contains("ffn_down") { return .ffnDown }
        return .other
    }

    /// Whether llama-quantize quantizes this tensor at all.
    public func allowsQuantization(_ name: String, nDims: Int) -> Bool {
        if nDims < 2 || !name.hasSuffix("weight") { return false }
        if name.contains("_norm.weight") || name.contains("ffn_gate_inp.weight") { return false }
        if overrides.leaveOutputTensor && name == "output.weight" { return false }
        for s in ["altup", "laurel", "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "attn_rel_b.weight", ".position_embd"] where name.contains(s) {
            return false
        }
        return name != "position_embd.weight" && name != "token_types.weight"
    }

    static func useMoreBits(_ i: Int, _ n: Int) -> Bool { i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2 }

    /// The type for the next tensor (call in output order). `current` is the tensor's type in the source.
    public mutating func type(for name: String, ne: [Int], current: GGMLType) -> GGMLType {
        guard allowsQuantization(name, nDims: ne.count) else { return current }
        let cat = Self.category(name)
        if let t = overrides.tokenEmbeddingType, cat == .tokenEmbd { return t }
        if let t = overrides.outputTensorType, cat == .output { return t }
        var t = preset.defaultType
        guard t.isQuantized else { return t }
        var manual = false
        for (re, rt) in regexes where re.matches(name) {
            t = rt; manual = true; break
        }
        if !manual && !overrides.pure { t = rules(name, ne: ne, cat: cat, t) }
        return fallback(name, ne: ne, t)
    }

    mutating func fallback(_ name: String, ne: [Int], _ target: GGMLType) -> GGMLType {
        let ncols = ne[0]
        guard ncols % target.blockSize != 0 else { return target }
        var r: GGMLType
        switch target {
        case .iq1_S, .iq1_M, .iq2_XXS, .iq2_XS, .iq2_S, .iq3_XXS, .iq3_S, .iq4_XS: r = .iq4_NL
        case .q2_K, .q3_K, .tq1_0, .tq2_0: r = .q4_0
        case .q4_K: r = .q5_0
        case .q5_K: r = .q5_1
        case .q6_K: r = .q8_0
        default: r = target
        }
        if ncols % r.blockSize != 0 { r = .f16 }
        fallbacks.append((name, target, r))
        return r
    }

    mutating func rules(_ name: String, ne: [Int], cat: Category, _ t0: GGMLType) -> GGMLType {
        var t = t0
        let p = preset.name
        if cat == .output || (hasTiedEmbeddings && cat == .tokenEmbd) {
            if ne[0] % t.blockSize != 0 { t = .q8_0 } else if t != .q8_0 { t = .q6_K }
        } else if cat == .tokenEmbd {
            if p == "TQ1_0" || p == "TQ2_0" { t = .q4_K }
        } else if cat == .attnV {
            if p == "Q2_K" { t = nGQA >= 4 ? .q4_K : .q3_K }
            else if p == "Q2_K_S" && nGQA >= 4 { t = .q4_K }
            else if p == "Q3_K_M" { t = iAttentionWV < 2 ? .q5_K : .q4_K }
            else if p == "Q3_K_L" { t = .q5_K }
            else if (p == "IQ4_NL" || p == "IQ4_XS") && nGQA >= 4 { t = .q5_K }
            else if (p == "Q4_K_M" || p == "Q5_K_M") && Self.useMoreBits(iAttentionWV, nAttentionWV) { t = .q6_K }
            else if p == "Q4_K_S" && iAttentionWV < 4 { t = .q5_K }
            iAttentionWV += 1
        } else if cat == .ffnDown {
            let i = iFfnDown, n = nLayer
            if p == "Q2_K" { t = .q3_K }
            else if p == "Q2_K_S" { if i < n / 8 { t = .q4_K } }
            else if p == "Q3_K_M" { t = i < n / 16 ? .q5_K : .q4_K }
            else if p == "Q3_K_L" { t = .q5_K }
            else if p == "Q4_K_M" { if Self.useMoreBits(i, n) { t = .q6_K } }
            else if i < n / 8 && (p == "IQ4_NL" || p == "IQ4_XS") && !hasImatrix { t = .q5_K }
            else if p == "Q5_K_M" && Self.useMoreBits(i, n) { t = .q6_K }
            else if p == "Q4_K_S" && i < n / 8 { t = .q5_K }
            else if (p == "Q4_0" || p == "Q5_0") && hasImatrix && i < n / 8 { t = p == "Q4_0" ? .q4_1 : .q5_1 }
            iFfnDown += 1
        } else if cat == .attnOutput {
            if p == "Q2_K" { t = .q3_K }
            else if p == "Q3_K_M" { t = .q4_K }
            else if p == "Q3_K_L" { t = .q5_K }
        }
        return t
    }
}

/// A compiled `--tensor-type` pattern (ECMAScript-style regex search, as std::regex_search).
public final class NSRegularExpressionBox: @unchecked Sendable {
    let re: NSRegularExpression
    public init(_ pattern: String) throws {
        do { re = try NSRegularExpression(pattern: pattern) } catch {
            throw QKError("--tensor-type: '\(pattern)' is not a valid regular expression")
        }
    }
    public func matches(_ s: String) -> Bool { re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil }
}

import Foundation
