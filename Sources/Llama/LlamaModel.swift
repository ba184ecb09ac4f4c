import Foundation
import ModelFormats
import Quantization
import TensorCore

/// Where a model's tensors come from, by HF name: their shapes (checked before any work) and their values as f32 in
/// HF layout ([out, in] row-major, q/k rows in rotate-half order), made when asked for.
public struct LlamaTensorSource {
    /// The HF shape of a tensor, nil when the source does not hold it.
    public var shape: (String) -> [Int]?
    /// The values of a tensor the source holds.
    public var floats: (String) throws -> [Float]
    /// Rows of a 2-D tensor, without making the rest (nil: sliced from `floats`).
    public var rows: ((String, Range<Int>) throws -> [Float])?
    /// Lets the kernel drop a memory-mapped tensor's pages once it is made f32 (they are read again if asked for).
    public var release: ((String) -> Void)?
    /// A 2-D tensor as the source stores it (GGUF blocks, bf16 …), rows in HF order; nil for a tensor (or, without
    /// the closure, a source) that has no such form.
    public var stored: ((String) throws -> StoredMatrix?)?
    public init(shape: @escaping (String) -> [Int]?, floats: @escaping (String) throws -> [Float],
                rows: ((String, Range<Int>) throws -> [Float])? = nil, release: ((String) -> Void)? = nil,
                stored: ((String) throws -> StoredMatrix?)? = nil) {
        self.shape = shape
        self.floats = floats
        self.rows = rows
        self.release = release
        self.stored = stored
    }
}

/// Llama weights: the embeddings, final norm and head as f32, and the decoder layers made f32 from their stored form
/// (memory-mapped safetensors, GGUF blocks, packed ints) one at a time, when a layer is asked for — so a pass that
/// runs layer by layer holds one layer's f32 weights, not the model's.
public final class LlamaWeights {
    /// One decoder layer's weights, f32, HF layout.
    public struct Layer {
        /// By `LlamaNorm`: [hidden] each.
        public var norms: [[Float]]
        /// By `LlamaLinear`: [out × in] each.
        public var linears: [[Float]]
        /// By `LlamaLinear`: [out] each, empty for a linear without a bias.
        public var biases: [[Float]]
        /// By `LlamaLinear`: the weights as the file stores them, where the layer holds that form instead of f32
        /// (then that linear's `linears` entry is empty).
        public var stored: [StoredMatrix?]

        public init(norms: [[Float]], linears: [[Float]], biases: [[Float]]? = nil, stored: [StoredMatrix?]? = nil) {
            self.norms = norms
            self.linears = linears
            self.biases = biases ?? Array(repeating: [], count: LlamaLinear.allCases.count)
            self.stored = stored ?? Array(repeating: nil, count: LlamaLinear.allCases.count)
        }

        /// The bias of a linear ([out], empty when it has none).
        public func bias(_ l: LlamaLinear) -> [Float] { biases[l.rawValue] }

        /// Layer `l`'s norms and biases by HF name: the one-dimensional tensors (AWQ's folds change them too).
        public func vectors(layer l: Int) -> [(name: String, values: [Float])] {
            LlamaNorm.allCases.map { ($0.hfName(layer: l), self[$0]) }
                + LlamaLinear.allCases.filter { !bias($0).isEmpty }.map { ($0.biasHFName(layer: l), bias($0)) }
        }

        // _modify yields the stored array in place: `L[.v][i] /= s` must not copy the matrix per element
        public subscript(_ n: LlamaNorm) -> [Float] {
            get { norms[n.rawValue] }
            _modify { yield &norms[n.rawValue] }
        }

        public subscript(_ l: LlamaLinear) -> [Float] {
            get { linears[l.rawValue] }
            _modify { yield &linears[l.rawValue] }
        }
    }

    public let config: LlamaConfig
    /// [vocab, hidden] f32 when the head is tied to it (or the model was built from arrays); otherwise the rows of the
    /// tokens a pass embeds are made from the source.
    private var embedTable: [Float]?
    public var norm: [Float]        // [hidden]
    public var lmHead: [Float]?     // [vocab, hidden]; nil when tied, or once `storedHead` holds the head
    private let source: LlamaTensorSource?
    /// Layers held as f32: every layer of a model built from arrays, the layers calibration replaced, and with
    /// `keepLayers` every layer once made.
    private var resident: [Layer?]
    /// Keep each layer once it is made (token-by-token generation runs every layer for every token).
    public var keepLayers = false
    /// Layers (and the head) keep their linears as the source stores them, where it can (`LlamaTensorSource.stored`),
    /// instead of making them f32: decoding then reads the file's bytes per token, not four bytes per weight.
    public var storedLinears = false
    /// How stored linears meet the activations when decoding (StoredMatrix.multiply with up to 4 rows).
    public var activationRounding = ActivationRounding.exact
    /// The head as the source stores it, once `holdStoredHead` made it; the forward pass then runs the head from it.
    public private(set) var storedHead: StoredMatrix?
    /// Makes the layers instead of the source (`replacingLayers`).
    private var provider: ((Int) throws -> Layer)? = nil

    /// A model whose layers are all given as f32 (tests, small models).
    public convenience init(config: LlamaConfig, embed: [Float], norm: [Float], lmHead: [Float]?, layers: [Layer]) {
        self.init(config: config, embed: embed, norm: norm, lmHead: lmHead, source: nil, resident: layers)
    }

    private init(config: LlamaConfig, embed: [Float]?, norm: [Float], lmHead: [Float]?, source: LlamaTensorSource?, resident: [Layer?]) {
        self.config = config
        self.embedTable = embed
        self.norm = norm
        self.lmHead = lmHead
        self.resident = resident
        self.source = source
    }

    /// Checks that `source` holds every tensor of the architecture with its shape (before any work), then loads the
    /// embeddings, final norm and head; the layers are made when asked for.
    public static func load(config c: LlamaConfig, source: LlamaTensorSource) throws -> LlamaWeights {
        // an untied config without lm_head reads as tied (as before: transformers would initialize one at random)
        var c = c
        if !c.tieWordEmbeddings && source.shape("lm_head.weight") == nil { c.tieWordEmbeddings = true }
        for (name, want) in LlamaTensors.expected(c) {
            guard let got = source.shape(name) else { throw QKError("missing tensor \(name)") }
            guard got == want else {
                throw QKError("tensor \(name) has shape \(got), expected \(want) from the config")
            }
        }
        func req(_ n: String) throws -> [Float] {
            let t = try source.floats(n)
            guard let s = source.shape(n), t.count == s.reduce(1, *) else { throw QKError("tensor \(n) has \(t.count) values") }
            return t
        }
        let head = c.tieWordEmbeddings ? nil : try req("lm_head.weight")
        let embed = c.tieWordEmbeddings ? try req("model.embed_tokens.weight") : nil   // tied: it is the head
        return LlamaWeights(config: c, embed: embed, norm: try req("model.norm.weight"), lmHead: head, source: source,
                            resident: Array(repeating: nil, count: c.numLayers))
    }

    /// The embedding rows of `tokens` (ids checked by the caller): [T × hidden].
    public func embedding(_ tokens: [Int32]) throws -> [Float] {
        let H = config.hiddenSize
        var x = [Float](repeating: 0, count: tokens.count * H)
        if let e = embedTable {
            e.withUnsafeBufferPointer { e in
                for t in 0..<tokens.count { for i in 0..<H { x[t * H + i] = e[Int(tokens[t]) * H + i] } }
            }
            return x
        }
        guard let source else { throw QKError("the model has no embeddings") }
        let name = "model.embed_tokens.weight"
        // a source that cannot make single rows makes the table once for all of `tokens`
        let table = source.rows == nil ? try source.floats(name) : nil
        for (t, id) in tokens.enumerated() {
            let r = Int(id)..<(Int(id) + 1)
            let row = try table.map { Array($0[(r.lowerBound * H)..<(r.upperBound * H)]) } ?? source.rows!(name, r)
            guard row.count == H else { throw QKError("embedding row \(id) has \(row.count) values, expected \(H)") }
            for i in 0..<H { x[t * H + i] = row[i] }
        }
        return x
    }

    /// The head's weights [vocab × hidden]: lm_head, or the embeddings when tied (then always held as f32).
    public var headWeights: [Float] { lmHead ?? embedTable ?? [] }

    /// Makes `storedHead` (lm_head, or the embeddings when tied) when the source stores it; without such a source
    /// the head keeps running from `headWeights`.
    public func holdStoredHead() throws {
        guard storedHead == nil, let make = source?.stored,
              let h = try make(config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight") else { return }
        guard h.rows == config.vocabSize, h.cols == config.hiddenSize else {
            throw QKError("the head is [\(h.rows) × \(h.cols)], expected [\(config.vocabSize) × \(config.hiddenSize)]")
        }
        storedHead = h
        lmHead = nil   // the forward pass runs the head from `storedHead`: its f32 copy was a second one
    }

    /// The whole embedding table [vocab × hidden] as f32 (the head of a tied model; tests).
    public func embeddingTable() throws -> [Float] {
        if let e = embedTable { return e }
        guard let source else { throw QKError("the model has no embeddings") }
        return try source.floats("model.embed_tokens.weight")
    }

    /// The same model with its decoder layers made by `provider` (e.g. calibration's scaled layers, spilled to disk);
    /// embeddings, final norm and head shared.
    public func replacingLayers(_ provider: @escaping (Int) throws -> Layer) -> LlamaWeights {
        let w = LlamaWeights(config: config, embed: embedTable, norm: norm, lmHead: lmHead, source: source,
                             resident: Array(repeating: nil, count: config.numLayers))
        w.provider = provider
        return w
    }

    /// Tensor `n` of the source as f32, `count` values or an error; released from the source once read.
    private static func required(_ n: String, _ count: Int, _ source: LlamaTensorSource) throws -> [Float] {
        let t = try source.floats(n)
        source.release?(n)
        guard t.count == count else { throw QKError("tensor \(n) has \(t.count) values, expected \(count)") }
        return t
    }

    private static func biases(_ l: Int, _ config: LlamaConfig, _ source: LlamaTensorSource) throws -> [[Float]] {
        try LlamaLinear.allCases.map { lin in
            lin.hasBias(config) ? try required(lin.biasHFName(layer: l), lin.shape(config).rows, source) : []
        }
    }

    /// Layer l as f32: resident, or made from the source now.
    public func layer(_ l: Int) throws -> Layer {
        if let L = resident[l] { return L }
        if let provider { return try provider(l) }
        guard let source else { throw QKError("layer \(l) has no weights") }
        let req = { (n: String, count: Int) in try Self.required(n, count, source) }
        let norms = try LlamaNorm.allCases.map { try req($0.hfName(layer: l), config.hiddenSize) }
        let biases = try Self.biases(l, config, source)
        // each linear as stored (with `storedLinears`, where the source has that form) or as f32
        let stored = try LlamaLinear.allCases.map { lin -> StoredMatrix? in
            let name = lin.hfName(layer: l), (rows, cols) = lin.shape(config)
            guard storedLinears, let m = try source.stored?(name) else { return nil }
            source.release?(name)
            guard m.rows == rows, m.cols == cols else { throw QKError("tensor \(name) is [\(m.rows) × \(m.cols)], expected [\(rows) × \(cols)]") }
            return m
        }
        let linears = try LlamaLinear.allCases.map { lin in
            stored[lin.rawValue] != nil ? [] : try req(lin.hfName(layer: l), lin.shape(config).rows * lin.shape(config).cols)
        }
        let L = Layer(norms: norms, linears: linears, biases: biases, stored: stored)
        if keepLayers { resident[l] = L }
        return L
    }

    /// Replaces layer l (calibration's scaled or quantized copies); it stays resident.
    public func replaceLayer(_ l: Int, with L: Layer) {
        resident[l] = L
    }

    /// Loads from named f32 tensors in HF layout (all held by the caller already).
    public static func load(config c: LlamaConfig, tensors: [String: [Float]]) throws -> LlamaWeights {
        let shapes = Dictionary(uniqueKeysWithValues: LlamaTensors.expected(c).map { ($0.name, $0.shape) })
        return try load(config: c, source: LlamaTensorSource(
            shape: { n in tensors[n].flatMap { t in shapes[n].map { t.count == $0.reduce(1, *) ? $0 : [t.count] } } },
            floats: { n in guard let t = tensors[n] else { throw QKError("missing tensor \(n)") }; return t }))
    }

    /// An HF checkpoint (F32/F16/BF16 safetensors), read from its memory-mapped files when a layer is made.
    public static func load(hfCheckpoint ck: SafetensorsCheckpoint, config: LlamaConfig) throws -> LlamaWeights {
        for (name, _) in LlamaTensors.expected(config) {
            if let t = ck.info(name), !t.dtype.isFloat {
                throw QKError(file: ck.path(of: name) ?? name, "tensor \(name) has dtype \(t.dtype.rawValue), expected F32, F16 or BF16")
            }
        }
        return try load(config: config, source: LlamaTensorSource(
            shape: { ck.info($0)?.shape }, floats: { try ck.floats($0) }, rows: { try ck.floats($0, rows: $1) }, release: { ck.release($0) },
            stored: { n in
                // BF16 / F16 / F32 matrices as stored (HF row order already)
                guard let t = ck.info(n), t.shape.count == 2, let bytes = ck.bytes(n) else { return nil }
                let types: [DType: GGMLType] = [.bf16: .bf16, .f16: .f16, .f32: .f32]
                guard let type = types[t.dtype] else { return nil }   // F64: made f32 as before
                return try StoredMatrix(type: type, rows: t.shape[0], cols: t.shape[1], bytes: bytes)
            }))
    }

    /// A GGUF file of any type quantkit can dequantize, its blocks decoded when a layer is made; q/k rows are
    /// permuted back to HF order here, where GGUF is read.
    public static func load(gguf g: GGUFFile, config c: LlamaConfig) throws -> LlamaWeights {
        var byHF: [String: GGUFTensorInfo] = [:]
        for t in g.tensors { if let hf = LlamaTensorNames.hf(t.name) { byHF[hf] = t } }
        for (hf, t) in byHF where !GGMLCodec.decodable.contains(t.type) {
            throw QKError(file: g.path, "tensor \(t.name) (\(hf)) is \(t.type.name), which quantkit cannot dequantize")
        }
        return try load(config: c, source: LlamaTensorSource(
            shape: { byHF[$0].map { Array($0.ne.reversed()) } },
            floats: { n in
                guard let t = byHF[n] else { throw QKError(file: g.path, "missing tensor \(n)") }
                let x = try GGMLCodec.dequantize(t.type, g.bytes(of: t), count: t.elementCount)
                guard t.ne.count == 2, let (_, lin) = LlamaLinear.parse(hfName: n) else { return x }
                return try lin.fromGGUF(x, c)
            },
            rows: { n, r in
                // rows of a tensor GGUF stores in HF row order (the embeddings)
                guard let t = byHF[n], t.ne.count == 2, LlamaLinear.parse(hfName: n) == nil, r.upperBound <= t.ne[1] else {
                    throw QKError(file: g.path, "rows \(r) of tensor \(n)")
                }
                let rowBytes = t.type.rowBytes(t.ne[0]), b = g.bytes(of: t)
                let slice = UnsafeRawBufferPointer(rebasing: b[(r.lowerBound * rowBytes)..<(r.upperBound * rowBytes)])
                return try GGMLCodec.dequantize(t.type, slice, count: r.count * t.ne[0])
            },
            release: { n in if let t = byHF[n] { g.release(t) } },
            stored: { n in
                guard let t = byHF[n], t.ne.count == 2 else { throw QKError(file: g.path, "tensor \(n) is not a matrix") }
                let (rows, cols) = (t.ne[1], t.ne[0])
                let order = try LlamaTensorNames.linear(of: n)?.permutedHeads(c).map {
                    try LlamaTensorNames.qkInversePermutation(rows: rows, heads: $0)
                }
                return try StoredMatrix(type: t.type, rows: rows, cols: cols, bytes: g.bytes(of: t), rowOrder: order)
            }))
    }
}
