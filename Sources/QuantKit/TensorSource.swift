import Checkpoints
import Foundation
import Llama
import ModelFormats
import Quantization
import TensorCore

/// Tensors to quantize, from a GGUF file or straight from an HF checkpoint (the converter's plan, in memory).
public struct QuantizeSource {
    public struct Tensor {
        public let name: String
        public let ne: [Int]
        public let type: GGMLType
    }

    public let path: String
    public let metadata: [(String, GGUFValue)]
    public let tensors: [Tensor]
    public let nLayer: Int, nHead: Int, nHeadKV: Int
    let bytesOf: (Tensor) throws -> UnsafeRawBufferPointer?
    let floatsOf: (Tensor) throws -> [Float]
    let rowsOf: (Tensor) throws -> Rows?
    let release: (Tensor) -> Void

    /// A tensor read a block of rows at a time, from any thread: `read(rows, dst)` decodes those rows (in GGUF
    /// order) to f32 into `dst` and returns the index, in the stored tensor, of the first non-finite value among
    /// them; `nonFinite(index)` is the error to report for it.
    public struct Rows {
        public let rowLength: Int
        public let read: (Range<Int>, UnsafeMutablePointer<Float>) -> Int?
        public let nonFinite: (Int) -> QKError
    }

    /// The stored bytes when the tensor is already in `type` (copied as they are), else nil.
    public func bytes(_ t: Tensor) throws -> UnsafeRawBufferPointer? { try bytesOf(t) }
    public func floats(_ t: Tensor) throws -> [Float] { try floatsOf(t) }
    public func done(_ t: Tensor) { release(t) }
    /// The tensor as a row reader, or nil when it has to be read whole (`floats`).
    public func rows(_ t: Tensor) throws -> Rows? { try rowsOf(t) }

    public static func open(_ path: String, pre: String? = nil) throws -> QuantizeSource {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue {
            let m = try MappedFile(path: path)
            if m.size >= 4, m.bytes.loadUnaligned(as: UInt32.self) == GGUF.magic || path.hasSuffix(".gguf") {
                return try gguf(path)
            }
        }
        return try hf(path, pre: pre)
    }

    static func gguf(_ path: String) throws -> QuantizeSource {
        let g = try GGUFFile(path: path)
        let c = try LlamaConfig(gguf: g)
        let ts = g.tensors.map { Tensor(name: $0.name, ne: $0.ne, type: $0.type) }
        return QuantizeSource(
            path: path, metadata: g.metadata.map { ($0.key, $0.value) }, tensors: ts,
            nLayer: c.numLayers, nHead: c.numHeads, nHeadKV: c.numKVHeads,
            bytesOf: { t in g.tensor(t.name).map { g.bytes(of: $0) } },
            floatsOf: { t in
                guard let info = g.tensor(t.name) else { throw QKError(file: path, "missing tensor \(t.name)") }
                guard GGMLCodec.decodable.contains(info.type) else { throw QKError(file: path, "tensor \(t.name): cannot read \(info.type.name)") }
                let x = try GGMLCodec.dequantize(info.type, g.bytes(of: info), count: info.elementCount)
                if let bad = x.withUnsafeBufferPointer({ GGMLCodec.firstNonFinite($0) }) {
                    throw nonFiniteValueError(file: path, tensor: t.name, element: bad)
                }
                return x
            },
            rowsOf: { t in
                guard let info = g.tensor(t.name), GGMLCodec.decodable.contains(info.type), info.ne[0] > 0,
                      info.ne[0] % info.type.blockSize == 0 else { return nil }
                let n = info.ne[0], rowBytes = info.type.rowBytes(n), blocksPerRow = n / info.type.blockSize
                let data = g.bytes(of: info)
                guard let base = data.baseAddress, data.count >= info.elementCount / n * rowBytes else { return nil }
                nonisolated(unsafe) let p = base
                return Rows(rowLength: n, read: { r, dst in
                    GGMLCodec.decodeBlocks(info.type, p + r.lowerBound * rowBytes, dst, blocks: r.count * blocksPerRow)
                    return GGMLCodec.firstNonFinite(dst, count: r.count * n).map { r.lowerBound * n + $0 }
                }, nonFinite: { nonFiniteValueError(file: path, tensor: t.name, element: $0) })
            },
            release: { t in
                if let info = g.tensor(t.name) {
                    g.release(info)
                }
            })
    }

    /// An HF checkpoint read as if converted at its own 16-bit type (`--type auto`): the values are the
    /// checkpoint's, exactly (bf16/f16 → f32 is exact).
    static func hf(_ path: String, pre: String?) throws -> QuantizeSource {
        let ck = try HFCheckpoint.open(path)
        let plan = try Converter.plan(ck, outType: .auto, pre: pre)
        var byName: [String: Converter.TensorPlan] = [:]
        for t in plan.tensors { byName[t.ggufName] = t }
        let ts = plan.tensors.map { Tensor(name: $0.ggufName, ne: $0.ne, type: $0.type) }
        return QuantizeSource(
            path: path, metadata: plan.metadata, tensors: ts,
            nLayer: ck.config.numLayers, nHead: ck.config.numHeads, nHeadKV: ck.config.numKVHeads,
            bytesOf: { _ in nil },
            floatsOf: { t in
                guard let p = byName[t.name] else { throw QKError("missing tensor \(t.name)") }
                if p.hfName.isEmpty { return plan.ropeFreqs ?? [] }
                guard let info = ck.weights.info(p.hfName), let src = ck.weights.bytes(p.hfName) else { throw QKError("missing tensor \(p.hfName)") }
                var x = [Float](repeating: 0, count: info.elementCount)
                try x.withUnsafeMutableBufferPointer { try convertToF32(src, dtype: info.dtype, count: info.elementCount, into: $0.baseAddress!) }
                if let bad = x.withUnsafeBufferPointer({ GGMLCodec.firstNonFinite($0) }) {
                    throw nonFiniteValueError(file: ck.weights.path(of: p.hfName) ?? path, tensor: p.hfName, element: bad)
                }
                if let h = p.permuteHeads {
                    x = LlamaTensorNames.gatherRows(x, rowLength: p.ne[0], src: try LlamaTensorNames.qkPermutation(rows: info.shape[0], heads: h))
                }
                return x
            },
            rowsOf: { t in
                guard let p = byName[t.name], !p.hfName.isEmpty, let info = ck.weights.info(p.hfName),
                      let src = ck.weights.bytes(p.hfName)?.baseAddress, info.dtype.isFloat, let n = p.ne.first, n > 0,
                      info.elementCount % n == 0, let file = ck.weights.path(of: p.hfName) else { return nil }
                let perm = try p.permuteHeads.map { try LlamaTensorNames.qkPermutation(rows: info.shape[0], heads: $0) }
                let rowBytes = n * info.dtype.size
                nonisolated(unsafe) let base = src
                return Rows(rowLength: n, read: { r, dst in
                    var first: Int?
                    for i in r {
                        let s = perm?[i] ?? i, y = dst + (i - r.lowerBound) * n
                        try? convertToF32(UnsafeRawBufferPointer(start: base + s * rowBytes, count: rowBytes), dtype: info.dtype, count: n, into: y)
                        if let j = GGMLCodec.firstNonFinite(y, count: n) { first = min(first ?? .max, s * n + j) }
                    }
                    return first
                }, nonFinite: { nonFiniteValueError(file: file, tensor: p.hfName, element: $0) })
            },
            release: { t in if let p = byName[t.name], !p.hfName.isEmpty { ck.weights.release(p.hfName) } })
    }
}

/// The error for a NaN or Inf in a source tensor (llama-quantize and convert refuse them): file, tensor, element index.
func nonFiniteValueError(file: String, tensor: String, element: Int) -> QKError {
    QKError(file: file, "tensor \(tensor) has a non-finite value (NaN or Inf) at element \(element)")
}
