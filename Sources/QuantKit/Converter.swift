import Checkpoints
import Foundation
import Llama
import ModelFormats
import Quantization
import TensorCore
import Tokenizers


/// HF checkpoint → GGUF, as llama.cpp's convert_hf_to_gguf.py writes it for Llama models.
public enum Converter {
    public enum OutType: String, CaseIterable, Sendable {
        case f32, f16, bf16, q8_0, auto
    }

    public struct TensorPlan {
        public let hfName: String
        public let ggufName: String
        public let type: GGMLType
        public let ne: [Int]
        /// Heads for the q/k row permutation, when this is q_proj or k_proj.
        public let permuteHeads: Int?
    }

    public struct Plan {
        public let checkpoint: HFCheckpoint
        public let fileType: Int
        public let tensors: [TensorPlan]
        public let metadata: [(String, GGUFValue)]
        /// rope_freqs.weight values for llama3 rope scaling.
        public let ropeFreqs: [Float]?
    }

    public static func fileType(_ t: OutType, firstDType: DType?) -> (OutType, Int) {
        switch t {
        case .f32: return (.f32, 0)
        case .f16: return (.f16, 1)
        case .bf16: return (.bf16, 32)
        case .q8_0: return (.q8_0, 7)
        case .auto:
            switch firstDType {
            case .f16?: return (.f16, 1)
            case .bf16?: return (.bf16, 32)
            default: return (.f32, 0)
            }
        }
    }

    public static func plan(_ ck: HFCheckpoint, outType: OutType, pre: String? = nil) throws -> Plan {
        let c = ck.config
        let names = ck.weights.names.filter { !LlamaTensorNames.isIgnored($0) }
        let (resolved, ftype) = fileType(outType, firstDType: names.first.flatMap { ck.weights.info($0)?.dtype })
        let matType: GGMLType
        switch resolved {
        case .f32, .auto: matType = .f32
        case .f16: matType = .f16
        case .bf16: matType = .bf16
        case .q8_0: matType = .q8_0
        }

        var tensors: [TensorPlan] = []
        var ropeFreqs: [Float]?
        // lm_head's shape is checked even when tied (a checkpoint may carry it anyway)
        var untied = c
        untied.tieWordEmbeddings = false
        let expected = Dictionary(uniqueKeysWithValues: LlamaTensors.expected(untied).map { ($0.name, $0.shape) })
        if let rs = c.ropeScaling, rs.type.lowercased() == "llama3" {
            let f = llama3RopeFactors(c, rs)
            ropeFreqs = f
            tensors.append(TensorPlan(hfName: "", ggufName: "rope_freqs.weight", type: .f32, ne: [f.count], permuteHeads: nil))
        }
        for name in names {
            guard let info = ck.weights.info(name) else { continue }
            guard let g = LlamaTensorNames.gguf(name) else {
                throw QKError(file: ck.weights.path(of: name) ?? ck.dir, "cannot map tensor \(name) to a llama GGUF tensor")
            }
            guard info.dtype.isFloat else {
                throw QKError(file: ck.weights.path(of: name) ?? ck.dir, "tensor \(name) has dtype \(info.dtype.rawValue); convert reads F32, F16 and BF16 weights")
            }
            guard !info.shape.isEmpty, info.shape.count <= 4 else {
                throw QKError(file: ck.weights.path(of: name) ?? ck.dir, "tensor \(name) has \(info.shape.count) dimensions")
            }
            try checkShape(name, info.shape, c, expected: expected, file: ck.weights.path(of: name) ?? ck.dir)
            let ne = Array(info.shape.reversed())
            var type = matType
            if info.shape.count <= 1 || g.hasSuffix("_norm.weight") || !g.hasSuffix(".weight") { type = .f32 }
            if type.isQuantized && ne[0] % type.blockSize != 0 { type = .f16 }  // gguf-py's QuantError fallback
            let heads = LlamaTensorNames.linear(of: name)?.permutedHeads(c)
            tensors.append(TensorPlan(hfName: name, ggufName: g, type: type, ne: ne, permuteHeads: heads))
        }
        let present = Set(tensors.map(\.hfName))
        for (name, _) in LlamaTensors.expected(c) where !present.contains(name) {
            let why = name == "lm_head.weight" ? " (tie_word_embeddings is false)" : ""
            throw QKError(file: ck.dir, "missing tensor \(name)\(why)")
        }

        let totalParams = tensors.reduce(0) { $0 + $1.ne.reduce(1, *) }
        let a = c.family.gguf   // the hyper-parameter keys' prefix
        var md: [(String, GGUFValue)] = [("general.architecture", .string(a)), ("general.type", .string("model"))]
        var gm = GeneralMetadata.fromModelId(URL(fileURLWithPath: ck.dir).standardizedFileURL.lastPathComponent, totalParams: totalParams)
        if gm.sizeLabel == nil, totalParams > 0 { gm.sizeLabel = GeneralMetadata.sizeLabel(parameters: totalParams) }
        md += gm.keys()
        md += [
            (a + ".block_count", .uint32(UInt32(c.numLayers))),
            (a + ".context_length", .uint32(UInt32(c.maxPositionEmbeddings ?? 2048))),
            (a + ".embedding_length", .uint32(UInt32(c.hiddenSize))),
            (a + ".feed_forward_length", .uint32(UInt32(c.intermediateSize))),
            (a + ".attention.head_count", .uint32(UInt32(c.numHeads))),
            (a + ".attention.head_count_kv", .uint32(UInt32(c.numKVHeads))),
        ]
        if let rs = c.ropeScaling, let f = rs.factor {
            if rs.type == "linear" {
                md += [(a + ".rope.scaling.type", .string("linear")), (a + ".rope.scaling.factor", .float32(Float(f)))]
            } else if rs.type == "yarn" {
                md += [(a + ".rope.scaling.type", .string("yarn")), (a + ".rope.scaling.factor", .float32(Float(f)))]
                if let o = rs.originalMaxPositionEmbeddings { md.append((a + ".rope.scaling.original_context_length", .uint32(UInt32(o)))) }
            }
        }
        md += [
            (a + ".rope.freq_base", .float32(Float(c.ropeTheta))),
            (a + ".attention.layer_norm_rms_epsilon", .float32(Float(c.rmsNormEps))),
        ]
        // llama.cpp's converter: key/value length always for Llama, only from an explicit head_dim otherwise; vocab size
        // and RoPE dimensions for Llama only
        if c.family == .llama || c.headDimExplicit {
            md += [(a + ".attention.key_length", .uint32(UInt32(c.headDim))), (a + ".attention.value_length", .uint32(UInt32(c.headDim)))]
        }
        md.append(("general.file_type", .uint32(UInt32(ftype))))
        if c.family == .llama {
            md += [(a + ".vocab_size", .uint32(UInt32(c.vocabSize))), (a + ".rope.dimension_count", .uint32(UInt32(c.headDim)))]
        }
        md.append(("general.quantization_version", .uint32(2)))
        if let p = pre, !TokenizerMetadata.knownPre.contains(p) {
            throw QKError("--pre \(p) is not a pre-tokenizer llama.cpp knows (\(TokenizerMetadata.knownPre.joined(separator: ", ")))")
        }
        md += try TokenizerMetadata.fromHF(dir: ck.dir, vocabSize: c.vocabSize, preOverride: pre)
        return Plan(checkpoint: ck, fileType: ftype, tensors: tensors, metadata: md, ropeFreqs: ropeFreqs)
    }

    /// Every tensor of the checkpoint against config.json: the shape it implies, and a layer below num_hidden_layers
    /// (a tensor beyond it would be copied into an output no loader reads as the model).
    static func checkShapes(_ ck: HFCheckpoint) throws {
        var untied = ck.config
        untied.tieWordEmbeddings = false
        let expected = Dictionary(uniqueKeysWithValues: LlamaTensors.expected(untied).map { ($0.name, $0.shape) })
        for name in ck.weights.names {
            guard let info = ck.weights.info(name) else { continue }
            try checkShape(name, info.shape, ck.config, expected: expected, file: ck.weights.path(of: name) ?? ck.dir)
        }
    }

    static func checkShape(_ name: String, _ shape: [Int], _ c: LlamaConfig, expected: [String: [Int]], file: String) throws {
        if let w = expected[name], w != shape {
            throw QKError(file: file, "tensor \(name) has shape \(shape), config.json implies \(w)")
        }
        if let l = LlamaTensorNames.layer(of: name), l >= c.numLayers {
            throw QKError(file: file, "tensor \(name) belongs to layer \(l) but num_hidden_layers is \(c.numLayers)")
        }
    }

    static func llama3RopeFactors(_ c: LlamaConfig, _ rs: RopeScaling) -> [Float] {
        let dim = c.headDim
        let base = Float(c.ropeTheta)
        let factor = rs.factor ?? 8, low = rs.lowFreqFactor ?? 1, high = rs.highFreqFactor ?? 4
        let old = Double(rs.originalMaxPositionEmbeddings ?? 8192)
        let lowWave = old / low, highWave = old / high
        return stride(from: 0, to: dim, by: 2).map { i -> Float in
            let freq = Double(1 / powf(base, Float(i) / Float(dim)))
            let wavelen = 2 * Double.pi / freq
            if wavelen < highWave { return 1 }
            if wavelen > lowWave { return Float(factor) }
            let smooth = (old / wavelen - low) / (high - low)
            return Float(1 / ((1 - smooth) / factor + smooth))
        }
    }

    public struct Report {
        public let output: String
        public let tensors: Int
        public let bytes: Int
        public let fileType: Int
    }

    /// Converts `source` to the GGUF file `output` (written as `output.partial`, renamed when complete).
    public static func convert(_ source: String, to output: String, outType: OutType, pre: String? = nil,
                               progress: ProgressCallback? = nil) throws -> Report {
        let ck = try HFCheckpoint.open(source)
        let p = try plan(ck, outType: outType, pre: pre)
        let writer = try GGUFWriter(path: output, metadata: p.metadata, tensors: p.tensors.map { ($0.ggufName, $0.ne, $0.type) })
        // Encoding (CPU) of tensor k+1 overlaps writing (I/O) of tensor k: one tensor in flight.
        var total = 0
        let queue = DispatchQueue(label: "quantkit.convert.encode")
        /// The tensor in flight; the semaphore orders the producer's write before the consumer's read.
        final class Slot: @unchecked Sendable { var value: (Int, Result<Encoded, Error>)? }
        let slot = Slot()
        let ready = DispatchSemaphore(value: 0)
        nonisolated(unsafe) let plan = p, checkpoint = ck
        func start(_ k: Int) {
            guard k < plan.tensors.count else { return }
            queue.async {
                slot.value = (k, Result { try encode(plan.tensors[k], ck: checkpoint, ropeFreqs: plan.ropeFreqs) })
                ready.signal()
            }
        }
        start(0)
        for (k, t) in p.tensors.enumerated() {
            progress?("convert \(t.ggufName)", k, p.tensors.count)
            ready.wait()
            guard let (pk, r) = slot.value, pk == k else { throw QKError("internal: conversion pipeline out of order") }
            slot.value = nil
            let enc = try r.get()
            start(k + 1)
            switch enc {
            case let .borrowed(b): try writer.writeTensor(b); total += b.count
            case let .owned(b): try writer.writeTensor(b); total += b.count
            }
            if !t.hfName.isEmpty { ck.weights.release(t.hfName) }
        }
        try writer.finish()
        progress?("convert", p.tensors.count, p.tensors.count)
        return Report(output: output, tensors: p.tensors.count, bytes: total, fileType: p.fileType)
    }

    /// A tensor's GGUF bytes: the mapped source bytes as they are, or newly encoded ones.
    enum Encoded {
        case borrowed(UnsafeRawBufferPointer)
        case owned([UInt8])
    }

    /// Encodes one planned tensor. Same type in and out moves the mapped bytes as they are; bf16 → f16 converts
    /// bits directly; anything else goes through f32.
    static func encode(_ t: TensorPlan, ck: HFCheckpoint, ropeFreqs: [Float]?) throws -> Encoded {
        if t.hfName.isEmpty, let f = ropeFreqs {
            return .owned(try GGMLCodec.quantize(.f32, f, rowLength: f.count))
        }
        guard let info = ck.weights.info(t.hfName), let src = ck.weights.bytes(t.hfName) else { throw QKError("missing tensor \(t.hfName)") }
        let file = ck.weights.path(of: t.hfName) ?? ck.dir
        let rowLength = t.ne[0]
        let perm = try t.permuteHeads.map { try LlamaTensorNames.qkPermutation(rows: info.shape[0], heads: $0) }
        let sameType = (info.dtype == .bf16 && t.type == .bf16) || (info.dtype == .f16 && t.type == .f16) || (info.dtype == .f32 && t.type == .f32)
        if sameType || (info.dtype == .bf16 && t.type == .f16) {
            if let bad = firstNonFiniteRaw(src, dtype: info.dtype) {
                throw nonFiniteValueError(file: file, tensor: t.hfName, element: bad)
            }
        }
        if sameType {
            if let perm, info.shape.count == 2 {
                return .owned(LlamaTensorNames.gatherRowBytes(src, rowBytes: rowLength * info.dtype.size, src: perm))
            }
            return .borrowed(src)
        }
        var out: [UInt8]
        if info.dtype == .bf16 && t.type == .f16 {
            out = bf16ToF16(src)
        } else {
            var x = [Float](repeating: 0, count: info.elementCount)
            try x.withUnsafeMutableBufferPointer { try convertToF32(src, dtype: info.dtype, count: info.elementCount, into: $0.baseAddress!) }
            if let bad = x.withUnsafeBufferPointer({ GGMLCodec.firstNonFinite($0) }) {
                throw nonFiniteValueError(file: file, tensor: t.hfName, element: bad)
            }
            if let perm { x = LlamaTensorNames.gatherRows(x, rowLength: rowLength, src: perm) }
            out = try GGMLCodec.quantize(t.type, x, rowLength: rowLength)
        }
        if info.dtype == .bf16 && t.type == .f16, let perm, info.shape.count == 2 {
            out = out.withUnsafeBytes { LlamaTensorNames.gatherRowBytes($0, rowBytes: rowLength * 2, src: perm) }
        }
        return .owned(out)
    }

    /// bf16 → f16 bits (exact widening, then round-to-nearest-even), in parallel.
    static func bf16ToF16(_ src: UnsafeRawBufferPointer) -> [UInt8] {
        let n = src.count / 2
        var out = [UInt8](repeating: 0, count: n * 2)
        out.withUnsafeMutableBytes { o in
            nonisolated(unsafe) let dst = o.baseAddress!.assumingMemoryBound(to: UInt16.self)
            nonisolated(unsafe) let s = src.baseAddress!
            Parallel.forRanges(n, minChunk: 1 << 16) { r in
                for i in r {
                    let b = UInt16(littleEndian: s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    dst[i] = HalfFloat.f32ToF16Fast(HalfFloat.bf16ToF32(b)).littleEndian
                }
            }
        }
        return out
    }

    static func firstNonFiniteRaw(_ b: UnsafeRawBufferPointer, dtype: DType) -> Int? {
        switch dtype {
        case .bf16:
            for k in 0..<(b.count / 2) where (b.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self) & 0x7f80) == 0x7f80 { return k }
        case .f16:
            for k in 0..<(b.count / 2) where (b.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self) & 0x7c00) == 0x7c00 { return k }
        case .f32:
            for k in 0..<(b.count / 4) where (b.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self) & 0x7f80_0000) == 0x7f80_0000 { return k }
        default: break
        }
        return nil
    }
}
