import Foundation
import ModelFormats
import Quantization
import TensorCore

/// Round-to-nearest quantization into GGUF block types, as llama-quantize does it: tensor order
/// (weight_name_comparer), per-tensor types (presets, overrides, fallbacks), importance matrix, metadata.
public enum GGUFQuantizer {
    public struct Options {
        public var preset: QuantPreset
        public var overrides = TypeOverrides()
        public var imatrixPath: String?
        public var includeWeights: [String] = []
        public var excludeWeights: [String] = []
        public var allowRequantize = false
        public var pre: String?
        public init(preset: QuantPreset) { self.preset = preset }
    }

    public struct PlannedTensor {
        public let name: String
        public let ne: [Int]
        public let from: GGMLType
        public let to: GGMLType
        public var bytes: Int { ne.reduce(1, *) / to.blockSize * to.typeSize }
        public var elements: Int { ne.reduce(1, *) }
    }

    public struct Plan {
        public let source: QuantizeSource
        public let tensors: [PlannedTensor]
        public let metadata: [(String, GGUFValue)]
        public let imatrix: [String: [Float]]
        public let fallbacks: [(name: String, from: GGMLType, to: GGMLType)]
        public var totalBytes: Int { tensors.reduce(0) { $0 + $1.bytes } }
        public var bitsPerWeight: Double {
            let n = tensors.reduce(0) { $0 + $1.elements }
            return n > 0 ? Double(totalBytes * 8) / Double(n) : 0
        }
    }

    /// llama.cpp's weight_name_comparer: by layer number (−1 outside `blk.`), then by name bytes.
    public static func comparerOrder(_ a: String, _ b: String) -> Bool {
        func layer(_ s: String) -> Int {
            guard s.hasPrefix("blk.") else { return -1 }
            let digits = s.dropFirst(4).prefix { $0.isNumber }
            guard !digits.isEmpty, s.dropFirst(4 + digits.count).first == "." else { return -1 }
            return Int(digits) ?? -1
        }
        let la = layer(a), lb = layer(b)
        if la != lb { return la < lb }
        return Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8))
    }

    public static func plan(_ source: String, options o: Options) throws -> Plan {
        let src = try QuantizeSource.open(source, pre: o.pre)
        let ordered = src.tensors.sorted { comparerOrder($0.name, $1.name) }

        var weights: [String: [Float]] = [:]
        var imatrixKV: [(String, GGUFValue)] = []
        if let ip = o.imatrixPath {
            if !o.includeWeights.isEmpty && !o.excludeWeights.isEmpty {
                throw QKError("--include-weights and --exclude-weights cannot be used together")
            }
            let im = try ImatrixFile.load(path: ip)
            if !im.isLegacy && !im.hasMetadata { throw QKError(file: ip, "missing imatrix metadata (imatrix.datasets, chunk_count, chunk_size)") }
            for name in im.entries.keys {
                if o.excludeWeights.contains(where: { name.contains($0) }) { continue }
                if !o.includeWeights.isEmpty && !o.includeWeights.contains(where: { name.contains($0) }) { continue }
                weights[name] = im.weights(name)
            }
            if !weights.isEmpty {
                imatrixKV.append(("quantize.imatrix.file", .string(ip)))
                if let d = im.datasets.first { imatrixKV.append(("quantize.imatrix.dataset", .string(String(d.utf8.prefix(127)) ?? d))) }
                imatrixKV.append(("quantize.imatrix.entries_count", .uint32(UInt32(weights.count))))
                imatrixKV.append(("quantize.imatrix.chunks_count", .uint32(UInt32(max(0, im.chunkCount)))))
            }
        }
        if weights.isEmpty && o.preset.name == "Q2_K_S" {
            throw QKError("Q2_K_S needs an importance matrix (--imatrix FILE), as in llama-quantize")
        }
        var policy = try TensorTypePolicy(preset: o.preset, overrides: o.overrides, tensorNames: ordered.map(\.name),
                                          nLayer: src.nLayer, nHead: src.nHead, nHeadKV: src.nHeadKV, hasImatrix: !weights.isEmpty)
        var planned: [PlannedTensor] = []
        for t in ordered {
            let to = policy.type(for: t.name, ne: t.ne, current: t.type)
            guard GGMLCodec.encodable.contains(to) || to == t.type else {
                throw QKError("tensor \(t.name): quantkit cannot write \(to.name)")
            }
            if to != t.type && t.type.isQuantized && !o.allowRequantize {
                throw QKError(file: source, "tensor \(t.name) is already \(t.type.name); requantizing is disabled (pass --allow-requantize)")
            }
            if to != t.type, let w = weights[t.name], w.count != t.ne[0] * (t.ne.count > 2 ? t.ne[2] : 1), t.name != "token_embd.weight" {
                throw QKError("imatrix size \(w.count) is different from tensor size \(t.ne[0]) for \(t.name)")
            }
            planned.append(PlannedTensor(name: t.name, ne: t.ne, from: t.type, to: to))
        }
        var md = src.metadata.filter {
            $0.0 != "general.quantization_version" && $0.0 != "general.file_type" && !$0.0.hasPrefix("split.")
        }
        md.append(("general.quantization_version", .uint32(2)))
        md.append(("general.file_type", .uint32(UInt32(o.preset.ftype))))
        md += imatrixKV
        return Plan(source: src, tensors: planned, metadata: md, imatrix: weights, fallbacks: policy.fallbacks)
    }

    public struct Report {
        public let output: String
        public let tensors: Int
        public let bytes: Int
        public let bitsPerWeight: Double
        public let fallbacks: Int
    }

    /// `replacements`: encoded bytes to write instead of round-to-nearest for some tensors (GGUF name → type, bytes);
    /// used only when the planned type matches.
    public static func quantize(_ source: String, to output: String, options: Options, replacements: [String: (GGMLType, [UInt8])] = [:],
                                progress: ProgressCallback? = nil) throws -> Report {
        let p = try plan(source, options: options)
        let src = p.source
        let out = OverlappedTensorWriter(try GGUFWriter(path: output, metadata: p.metadata, tensors: p.tensors.map { ($0.name, $0.ne, $0.to) }))
        let encoder = RowBlockEncoder()
        let byName = Dictionary(uniqueKeysWithValues: src.tensors.map { ($0.name, $0) })
        for (k, t) in p.tensors.enumerated() {
            progress?("quantize \(t.name) → \(t.to.name)", k, p.tensors.count)
            guard let st = byName[t.name] else { throw QKError("missing tensor \(t.name)") }
            if let (rt, bytes) = replacements[t.name], rt == t.to {
                out.write(bytes)
            } else if t.to == t.from, let raw = try src.bytes(st) {
                out.write(unowned: raw)
            } else {
                let im = p.imatrix[t.name].map { Array($0.prefix(t.ne[0])) }
                if let rows = try src.rows(st), rows.rowLength == t.ne[0] {
                    // row blocks decoded, checked and encoded in one pass, into a reused buffer
                    let (b, y) = try out.nextBuffer(t.bytes)
                    do {
                        try encoder.encode(rows, rowCount: t.elements / t.ne[0], type: t.to, imatrix: im, into: y, tensor: t.name)
                    } catch { out.giveBack(b); throw error }
                    out.write(buffer: b, bytes: t.bytes)
                } else {
                    let x = try src.floats(st)
                    do {
                        out.write(try GGMLCodec.quantize(t.to, x, rowLength: t.ne[0], imatrix: im))
                    } catch let e as QKError {
                        throw QKError("tensor \(t.name): \(e.message)")
                    }
                }
            }
            out.after { src.done(st) }
        }
        try out.finish()
        progress?("quantize", p.tensors.count, p.tensors.count)
        return Report(output: output, tensors: p.tensors.count, bytes: p.totalBytes, bitsPerWeight: p.bitsPerWeight, fallbacks: p.fallbacks.count)
    }
}
