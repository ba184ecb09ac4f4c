import Foundation
#if canImport(Glibc)
import Glibc
#endif
import ModelFormats
import Quantization
import TensorCore

/// Packed int checkpoints (GPTQ v1, AWQ GEMM, compressed-tensors pack-quantized): written from quantized linears
/// plus the model's other tensors, and read back (dequantized to f32 in HF layout) so `eval`, `generate` and `export`
/// take them like any checkpoint.
public enum PackedCheckpoint {
    /// How the linears were made, recorded in `quantization_config`.
    public struct Provenance {
        public var method = "rtn"
        public var damp: Float = 0.01
        public var actOrder = false
        public var staticGroups = false
        public var trueSequential = true
        /// GPTAQ's alpha when GPTQ ran with asymmetric calibration (nil: plain GPTQ).
        public var gptaqAlpha: Float? = nil
        public init() {}
    }

    public struct Report {
        public let dir: String
        public let tensors: Int
        public let bytes: Int
        public let bitsPerWeight: Double
        public let checkpointFormat: String
        public init(dir: String, tensors: Int, bytes: Int, bitsPerWeight: Double, checkpointFormat: String) {
            self.dir = dir
            self.tensors = tensors
            self.bytes = bytes
            self.bitsPerWeight = bitsPerWeight
            self.checkpointFormat = checkpointFormat
        }
    }

    /// The quantization_config of a checkpoint in `layout`.
    static func quantizationConfig(_ layout: PackedLayout, scheme s: IntegerScheme, provenance p: Provenance, v1: Bool) -> JSONValue {
        let g = JSONValue.int(Int64(s.groupSize))
        switch layout {
        case .gptq:
            // desc_act tells loaders the g_idx may be out of column order: with static groups it is not (act-order
            // changed only the order in which GPTQ quantized the columns), so kernels without act-order support serve
            let descAct = p.actOrder && !p.staticGroups
            let order = p.actOrder ? (p.staticGroups ? "static" : "group") : "none"
            return .object([("bits", .int(Int64(s.bits))), ("group_size", g), ("desc_act", .bool(descAct)), ("sym", .bool(s.sym)),
                            ("damp_percent", .double(Double("\(p.damp)") ?? Double(p.damp))), ("true_sequential", .bool(p.trueSequential)),
                            ("static_groups", .bool(p.staticGroups)), ("lm_head", .bool(false)), ("quant_method", .string("gptq")),
                            ("checkpoint_format", .string(v1 ? "gptq" : "gptq_v2")), ("pack_dtype", .string("int32")),
                            ("model_name_or_path", .null), ("model_file_base_name", .string("model")),
                            ("meta", .object([("quantizer", .array([.string("quantkit:\(QuantKitInfo.version)")])), ("method", .string(p.method)),
                                              ("act_order", .string(order))] +
                                             (p.gptaqAlpha.map { [("gptaq_alpha", .double(Double("\($0)") ?? Double($0)))] } ?? [])))])
        case .awq:
            return .object([("quant_method", .string("awq")), ("bits", .int(Int64(s.bits))), ("group_size", g),
                            ("zero_point", .bool(true)), ("version", .string("gemm")), ("modules_to_not_convert", .null)])
        case .compressedTensors:
            let weights: JSONValue = .object([("num_bits", .int(Int64(s.bits))), ("type", .string("int")), ("symmetric", .bool(s.sym)),
                                              ("strategy", .string(s.groupSize <= 0 ? "channel" : "group")),
                                              ("group_size", s.groupSize <= 0 ? .null : g), ("block_structure", .null), ("dynamic", .bool(false)),
                                              ("actorder", p.actOrder ? .string(p.staticGroups ? "weight" : "group") : .null),
                                              ("observer", .string("minmax")), ("observer_kwargs", .object([]))])
            return .object([("quant_method", .string("compressed-tensors")), ("format", .string("pack-quantized")),
                            ("quantization_status", .string("compressed")), ("ignore", .array([.string("lm_head")])),
                            ("config_groups", .object([("group_0", .object([("targets", .array([.string("Linear")])), ("weights", weights),
                                                                             ("input_activations", .null), ("output_activations", .null),
                                                                             ("format", .string("pack-quantized"))]))])),
                            ("kv_cache_scheme", .null), ("global_compression_ratio", .null),
                            ("version", .string("quantkit-\(QuantKitInfo.version)"))])
        }
    }

    /// The quantized linears of a checkpoint being made, held until it is written: codes of up to 4 bits two to a byte,
    /// and with a spill file the codes wait on disk instead of in memory (a 7B model's 6.5 G codes are 3.2 GB even so).
    /// `write` takes each out as it packs it.
    public final class Linears {
        struct Held {
            let rows: Int, cols: Int, scheme: IntegerScheme
            /// The packed codes: in `codes`, or at `offset` in the spill file.
            let codes: [UInt8]?, offset: Int, count: Int
            let scales: [Float], zeros: [Int32], gIdx: [Int32]
        }
        private var held: [String: Held] = [:]
        private let spillPath: String?
        private var spill: Int32 = -1
        private var spillEnd = 0
        /// Whether some linear has a zero point of 0 (GPTQ v1 cannot hold it).
        public private(set) var hasZeroPoint0 = false

        /// `spillPath`: a scratch file for the codes (unlinked as soon as it is open, so nothing is left behind even on
        /// a signal), or nil to hold them in memory.
        public init(spillPath: String? = nil) throws {
            self.spillPath = spillPath
            if let spillPath {
                spill = PartialFiles.scratchFile(spillPath)
                guard spill >= 0 else { throw QKError(file: spillPath, "cannot create the scratch file for quantized linears") }
            }
        }

        deinit {
            if spill >= 0 { close(spill) }
        }

        public var modules: [String] { Array(held.keys) }

        public func add(_ module: String, _ q: QuantizedLinear) throws {
            var codes = q.codes
            if q.scheme.bits <= 4 {
                codes = [UInt8](repeating: 0, count: (q.codes.count + 1) / 2)
                for i in q.codes.indices { codes[i / 2] |= (q.codes[i] & 0xf) << (4 * UInt8(i % 2)) }
            }
            if q.zeros.contains(0) { hasZeroPoint0 = true }
            var offset = 0
            if spill >= 0 {
                offset = spillEnd
                let written = codes.withUnsafeBytes { pwrite(spill, $0.baseAddress, $0.count, off_t(offset)) }
                guard written == codes.count else { throw QKError(file: spillPath ?? "", "cannot write quantized codes (disk full?)") }
                spillEnd += codes.count
            }
            held[module] = Held(rows: q.rows, cols: q.cols, scheme: q.scheme, codes: spill >= 0 ? nil : codes, offset: offset,
                                count: codes.count, scales: q.scales, zeros: q.zeros, gIdx: q.gIdx)
        }

        /// The linear of `module`, no longer held.
        public func take(_ module: String) throws -> QuantizedLinear? {
            guard let h = held.removeValue(forKey: module) else { return nil }
            var stored = h.codes ?? [UInt8](repeating: 0, count: h.count)
            if h.codes == nil {
                let got = stored.withUnsafeMutableBytes { pread(spill, $0.baseAddress, h.count, off_t(h.offset)) }
                guard got == h.count else { throw QKError(file: spillPath ?? "", "cannot read back quantized codes") }
            }
            var codes = stored
            if h.scheme.bits <= 4 {
                let n = h.rows * h.cols
                codes = [UInt8](repeating: 0, count: n)
                stored.withUnsafeBufferPointer { p in
                    for i in 0..<n { codes[i] = (p[i / 2] >> (4 * UInt8(i % 2))) & 0xf }
                }
            }
            stored = []
            return QuantizedLinear(rows: h.rows, cols: h.cols, scheme: h.scheme, codes: codes, scales: h.scales, zeros: h.zeros, gIdx: h.gIdx)
        }
    }

    /// Writes `dir`: model.safetensors (packed linears by module name, every other tensor of `source` in its own
    /// dtype, or `replaced` values where given, e.g. AWQ's rescaled norms), config.json with quantization_config,
    /// quantize_config.json for GPTQ, and the tokenizer files of the source.
    /// `gptqV2`: a GPTQ layout written as `checkpoint_format: gptq_v2` (zero points stored as they are) instead of v1.
    public static func write(dir: String, source: HFCheckpoint, layout: PackedLayout, scheme: IntegerScheme,
                             linears: Linears, replaced: [String: [Float]] = [:], provenance: Provenance, gptqV2: Bool = false,
                             progress: ProgressCallback? = nil) throws -> Report {
        // GPTQ v1 stores zero − 1, so it cannot hold a zero point of 0: the quantizer floors zeros at 1 for it
        // (`IntegerScheme.zeroFloor`); the format never changes with the data
        let v1 = layout != .gptq || !gptqV2
        if layout == .gptq && v1 && linears.hasZeroPoint0 {
            throw QKError("a linear has a zero point of 0, which GPTQ v1 cannot store: quantize with a zero floor of 1 or write gptq_v2")
        }
        for m in linears.modules where source.weights.info(m + ".weight") == nil {
            throw QKError("quantized linear \(m) is not in the source checkpoint")
        }
        // plan: (name, dtype, shape, bytes producer)
        var plan: [(name: String, dtype: DType, shape: [Int], make: () throws -> [UInt8])] = []
        var params = 0, weightBytes = 0
        for name in source.weights.names.sorted() {
            guard let info = source.weights.info(name) else { continue }
            let module = name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : name
            if let q = try linears.take(module) {
                if let why = layout.unsupported(q, v1: v1) { throw QKError("\(module): \(why)") }
                params += q.rows * q.cols
                for (suffix, t) in try layout.pack(q, v1: v1) {
                    guard let dt = DType(rawValue: t.dtype) else { throw QKError("internal: dtype \(t.dtype)") }
                    plan.append((module + "." + suffix, dt, t.shape, { t.bytes }))
                    weightBytes += t.bytes.count
                }
                continue
            }
            // AWQ-scaled norms (`replaced`) keep f16 precision, not bf16's 8 bits: such a checkpoint is f16 throughout, with
            // torch_dtype float16 to match (as AutoAWQ saves); otherwise the source's float type (f32 → f16)
            let dtype: DType = !replaced.isEmpty || info.dtype == .f32 ? .f16 : info.dtype
            guard dtype.isFloat else { throw QKError(file: source.dir, "tensor \(name) is \(info.dtype.rawValue); expected floating point") }
            params += info.elementCount
            weightBytes += info.elementCount * dtype.size
            let count = info.elementCount
            plan.append((name, dtype, info.shape, {
                let v: [Float]
                if let r = replaced[name] {
                    guard r.count == count else { throw QKError("internal: replacement for \(name) has \(r.count) values, expected \(count)") }
                    v = r
                } else {
                    if dtype == info.dtype, let b = source.weights.bytes(name) { return Array(b) }
                    v = try source.weights.floats(name)
                }
                if dtype == .f16, let i = v.firstIndex(where: { abs($0) > 65504 }) {
                    throw QKError(file: source.dir, "tensor \(name) holds \(v[i]) at \(i), beyond f16's range: it cannot be stored in this f16 checkpoint")
                }
                return try GGMLCodec.quantize(dtype == .bf16 ? .bf16 : .f16, v, rowLength: info.shape.last ?? count)
            }))
        }
        let out = try OutputDirectory(path: dir)
        let d = URL(fileURLWithPath: out.partialPath)
        try SafetensorsWriter.write(path: d.appendingPathComponent("model.safetensors").path,
                                    entries: plan.map { SafetensorsWriter.Entry(name: $0.name, dtype: $0.dtype, shape: $0.shape) }) { k in
            progress?("write \(plan[k].name)", k, plan.count)
            return try plan[k].make()
        }
        // config.json: the source's, with quantization_config
        let qc = quantizationConfig(layout, scheme: scheme, provenance: provenance, v1: v1)
        guard case var .object(cfg) = try JSONParser.parse(file: source.dir + "/config.json") else { throw QKError(file: source.dir + "/config.json", "not a JSON object") }
        cfg.removeAll { $0.0 == "quantization_config" }
        // AWQ kernels are fp16, and AWQ-scaled norms are stored at f16
        if layout == .awq || !replaced.isEmpty {
            cfg.removeAll { $0.0 == "torch_dtype" }
            cfg.append(("torch_dtype", .string("float16")))
        }
        cfg.append(("quantization_config", qc))
        try writeFileAtomically(d.appendingPathComponent("config.json").path, Array(JSONValue.object(cfg).serialized().utf8))
        if layout == .gptq { try writeFileAtomically(d.appendingPathComponent("quantize_config.json").path, Array(qc.serialized().utf8)) }
        try copyTokenizerFiles(from: source.dir, to: out)
        try out.commit()
        progress?("write", plan.count, plan.count)
        return Report(dir: dir, tensors: plan.count, bytes: weightBytes, bitsPerWeight: Double(weightBytes * 8) / Double(max(1, params)),
                      checkpointFormat: layout == .gptq ? (v1 ? "gptq" : "gptq_v2") : layout.rawValue)
    }
}

/// Copies the tokenizer and generation files of an HF checkpoint directory (those present) into `out`.
public func copyTokenizerFiles(from dir: String, to out: OutputDirectory) throws {
    for f in ["tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"] {
        let src = dir + "/" + f
        guard FileManager.default.fileExists(atPath: src) else { continue }
        try writeFileAtomically(out.file(f), Array(try Data(contentsOf: URL(fileURLWithPath: src))))
    }
}

/// Reads the linears of a packed checkpoint (by its config.json's quantization_config) back to f32.
public struct PackedReader {
    public let layout: PackedLayout
    public let bits: Int, groupSize: Int, sym: Bool, v1: Bool
    let weights: SafetensorsCheckpoint

    /// nil when the config has no quantization_config (a plain checkpoint).
    public init?(configPath: String, weights: SafetensorsCheckpoint) throws {
        let cfg = try JSONParser.parse(file: configPath)
        guard let qc = cfg["quantization_config"], !qc.isNull else { return nil }
        guard let method = qc["quant_method"]?.string else { throw QKError(file: configPath, "quantization_config has no quant_method") }
        switch method {
        case "gptq":
            layout = .gptq
            guard let b = qc["bits"]?.int, let g = qc["group_size"]?.int else { throw QKError(file: configPath, "gptq quantization_config needs bits and group_size") }
            bits = b; groupSize = g; sym = qc["sym"]?.bool ?? true
            let fmt = qc["checkpoint_format"]?.string ?? "gptq"
            guard fmt == "gptq" || fmt == "gptq_v2" else { throw QKError(file: configPath, "gptq checkpoint_format \(fmt) is not supported (gptq, gptq_v2)") }
            v1 = fmt == "gptq"
        case "awq":
            layout = .awq
            guard let b = qc["bits"]?.int ?? qc["w_bit"]?.int, let g = qc["group_size"]?.int ?? qc["q_group_size"]?.int else {
                throw QKError(file: configPath, "awq quantization_config needs bits and group_size")
            }
            let version = qc["version"]?.string?.lowercased() ?? "gemm"
            guard version == "gemm" else { throw QKError(file: configPath, "AWQ version \(version) is not supported (gemm)") }
            bits = b; groupSize = g; sym = !(qc["zero_point"]?.bool ?? true); v1 = false
        case "compressed-tensors":
            layout = .compressedTensors
            let fmt = qc["format"]?.string ?? ""
            guard fmt == "pack-quantized" else { throw QKError(file: configPath, "compressed-tensors format \(fmt) is not supported (pack-quantized)") }
            guard let groups = qc["config_groups"]?.object, groups.count == 1, let w = groups[0].1["weights"] else {
                throw QKError(file: configPath, "compressed-tensors: expected exactly one config group with weights")
            }
            guard w["type"]?.string == "int", let b = w["num_bits"]?.int else { throw QKError(file: configPath, "compressed-tensors: only int weights are supported") }
            bits = b; groupSize = w["group_size"]?.int ?? -1; sym = w["symmetric"]?.bool ?? true; v1 = false
        default:
            throw QKError(file: configPath, "quant_method \(method) is not supported (gptq, awq, compressed-tensors)")
        }
        self.weights = weights
    }

    func raw(_ name: String) throws -> RawTensor? {
        guard let info = weights.info(name), let b = weights.bytes(name) else { return nil }
        return RawTensor(dtype: info.dtype.rawValue, shape: info.shape, bytes: Array(b))
    }

    /// Whether module `m` (e.g. "model.layers.0.self_attn.q_proj") is stored packed.
    public func isPacked(_ m: String) -> Bool { weights.info(m + "." + layout.marker) != nil }

    /// The integer codes of module `m`.
    public func linear(_ m: String) throws -> QuantizedLinear {
        let q = try layout.unpack(bits: bits, groupSize: groupSize, sym: sym, v1: v1, name: m) { try raw(m + "." + $0) }
        for (i, s) in q.scales.enumerated() where !s.isFinite {
            throw QKError(file: weights.path(of: m + "." + layout.marker) ?? m, "\(m): scale \(i) is \(s)")
        }
        return q
    }

    /// A tensor by HF name: packed linears dequantized, everything else read as stored.
    public func floats(_ name: String) throws -> [Float]? {
        if name.hasSuffix(".weight") {
            let m = String(name.dropLast(".weight".count))
            if isPacked(m) { return try linear(m).dequantized() }
        }
        return weights.info(name) == nil ? nil : try weights.floats(name)
    }

    /// Parameters and stored bytes of everything but the packing metadata (g_idx, weight_shape).
    public func sizes() throws -> (params: Int, bytes: Int) {
        var params = 0, bytes = 0
        for n in weights.names {
            guard let info = weights.info(n) else { continue }
            if n.hasSuffix(".g_idx") || n.hasSuffix(".weight_shape") || n.hasSuffix(".weight_g_idx") { continue }
            bytes += info.range.count
            if n.hasSuffix("." + layout.marker) {
                let m = String(n.dropLast(layout.marker.count + 1))
                let q = try linear(m)
                params += q.rows * q.cols
            } else if info.dtype.isFloat && !n.hasSuffix(".scales") && !n.hasSuffix(".weight_scale") {
                params += info.elementCount
            }
        }
        return (params, bytes)
    }
}
