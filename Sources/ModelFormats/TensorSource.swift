import Foundation
import TensorCore

/// Named tensors from one or more safetensors files (a single file or a sharded checkpoint).
public final class SafetensorsCheckpoint: @unchecked Sendable {
    public let files: [SafetensorsFile]
    /// Tensor names in converter order: shard files sorted by name, tensors sorted within each.
    public let names: [String]
    private let location: [String: (file: Int, tensor: SafetensorsTensor)]

    public init(files: [SafetensorsFile]) throws {
        self.files = files
        var loc: [String: (Int, SafetensorsTensor)] = [:]
        var order: [String] = []
        for (k, f) in files.enumerated() {
            for t in f.tensors {
                if loc[t.name] != nil { throw QKError(file: f.path, "tensor \(t.name) also appears in another shard") }
                loc[t.name] = (k, t)
                order.append(t.name)
            }
        }
        names = order
        location = loc
    }

    /// Opens `model.safetensors`, the shards of `model.safetensors.index.json`, or a single given file.
    public static func open(_ path: String) throws -> SafetensorsCheckpoint {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw QKError(file: path, "no such file or directory")
        }
        if !isDir.boolValue { return try SafetensorsCheckpoint(files: [SafetensorsFile(path: path)]) }
        let dir = URL(fileURLWithPath: path)
        let index = dir.appendingPathComponent("model.safetensors.index.json").path
        if FileManager.default.fileExists(atPath: index) {
            let j = try JSONParser.parse(file: index)
            guard let wm = j["weight_map"]?.object else { throw QKError(file: index, "missing \"weight_map\" object") }
            var parts = Set<String>()
            for (name, v) in wm {
                guard let s = v.string else { throw QKError(file: index, "weight_map[\(name)] is not a file name") }
                guard !s.contains("/"), !s.hasPrefix(".") else { throw QKError(file: index, "weight_map[\(name)] names a file outside the checkpoint: \(s)") }
                parts.insert(s)
            }
            var files: [SafetensorsFile] = []
            for p in parts.sorted() {
                let fp = dir.appendingPathComponent(p).path
                guard FileManager.default.fileExists(atPath: fp) else { throw QKError(file: index, "shard \(p) is missing") }
                files.append(try SafetensorsFile(path: fp))
            }
            let ck = try SafetensorsCheckpoint(files: files)
            // The index and the shards must agree.
            let indexed = Set(wm.map(\.0))
            let present = Set(ck.names)
            if let missing = indexed.subtracting(present).sorted().first {
                throw QKError(file: index, "tensor \(missing) is listed in the index but found in no shard")
            }
            if let extra = present.subtracting(indexed).sorted().first {
                throw QKError(file: index, "tensor \(extra) is in a shard but not in the index")
            }
            for (name, v) in wm where ck.location[name].map({ ck.files[$0.file].path.hasSuffix("/" + (v.string ?? "")) }) == false {
                throw QKError(file: index, "tensor \(name) is listed in \(v.string ?? "?") but stored in another shard")
            }
            return ck
        }
        let single = dir.appendingPathComponent("model.safetensors").path
        if FileManager.default.fileExists(atPath: single) { return try SafetensorsCheckpoint(files: [SafetensorsFile(path: single)]) }
        let others = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted()
        if !others.isEmpty { return try SafetensorsCheckpoint(files: others.map { try SafetensorsFile(path: dir.appendingPathComponent($0).path) }) }
        throw QKError(file: path, "no model.safetensors, model.safetensors.index.json or *.safetensors found")
    }

    public func info(_ name: String) -> SafetensorsTensor? { location[name]?.tensor }

    public func path(of name: String) -> String? { location[name].map { files[$0.file].path } }

    public func bytes(_ name: String) -> UnsafeRawBufferPointer? {
        guard let l = location[name] else { return nil }
        return files[l.file].bytes(of: l.tensor)
    }

    /// Rows `rows` of a tensor (first dimension) as f32: [rows.count × row length].
    public func floats(_ name: String, rows: Range<Int>) throws -> [Float] {
        guard let l = location[name] else { throw QKError("missing tensor \(name)") }
        let t = l.tensor
        guard t.dtype.isFloat else { throw QKError(file: files[l.file].path, "tensor \(name) has dtype \(t.dtype.rawValue), expected F32, F16 or BF16") }
        guard let first = t.shape.first, first > 0, rows.lowerBound >= 0, rows.upperBound <= first else {
            throw QKError(file: files[l.file].path, "rows \(rows) of tensor \(name) with shape \(t.shape)")
        }
        let rowLength = t.elementCount / first, b = files[l.file].bytes(of: t)
        let slice = UnsafeRawBufferPointer(rebasing: b[(rows.lowerBound * rowLength * t.dtype.size)..<(rows.upperBound * rowLength * t.dtype.size)])
        let n = rows.count * rowLength
        var out = [Float](repeating: 0, count: n)
        try out.withUnsafeMutableBufferPointer { try convertToF32(slice, dtype: t.dtype, count: n, into: $0.baseAddress!) }
        return out
    }

    /// The tensor as f32 (F32/F16/BF16/F64 sources).
    public func floats(_ name: String) throws -> [Float] {
        guard let l = location[name] else { throw QKError("missing tensor \(name)") }
        let t = l.tensor
        guard t.dtype.isFloat else { throw QKError(file: files[l.file].path, "tensor \(name) has dtype \(t.dtype.rawValue), expected F32, F16 or BF16") }
        let n = t.elementCount
        var out = [Float](repeating: 0, count: n)
        try out.withUnsafeMutableBufferPointer { try convertToF32(files[l.file].bytes(of: t), dtype: t.dtype, count: n, into: $0.baseAddress!) }
        return out
    }

    /// Lets the kernel drop the pages of a tensor already consumed.
    public func release(_ name: String) {
        guard let l = location[name] else { return }
        files[l.file].file.release(l.tensor.range)
    }
}
