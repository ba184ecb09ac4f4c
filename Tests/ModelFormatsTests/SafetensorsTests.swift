import XCTest
import TensorCore
@testable import ModelFormats

final class SafetensorsTests: XCTestCase {
    /// A raw safetensors file from a header string and data bytes.
    static func raw(_ header: String, data: [UInt8] = [], lengthOverride: UInt64? = nil) -> [UInt8] {
        var w = ByteWriter()
        let h = Array(header.utf8)
        w.u64(lengthOverride ?? UInt64(h.count))
        w.raw(h)
        w.raw(data)
        return w.bytes
    }

    func testWriteThenReadRoundTrip() throws {
        let p = Fixtures.tmp("a.safetensors")
        let entries = [SafetensorsWriter.Entry(name: "w", dtype: .f32, shape: [2, 3]),
                       SafetensorsWriter.Entry(name: "b", dtype: .bf16, shape: [4])]
        let w: [Float] = [1, -2, 3.5, 0, 1e-3, -7]
        let b: [UInt16] = [0x3F80, 0xC000, 0x0000, 0x7F7F]
        try SafetensorsWriter.write(path: p, entries: entries) { k in
            k == 0 ? w.withUnsafeBytes { Array($0) } : b.withUnsafeBytes { Array($0) }
        }
        let f = try SafetensorsFile(path: p)
        XCTAssertEqual(f.tensors.map(\.name), ["b", "w"])  // sorted by name
        XCTAssertEqual(f.metadata, ["format": "pt"])
        XCTAssertEqual(f.tensor("w")?.shape, [2, 3])
        let ck = try SafetensorsCheckpoint(files: [f])
        XCTAssertEqual(try ck.floats("w"), w)
        XCTAssertEqual(try ck.floats("b"), [1, -2, 0, HalfFloat.bf16ToF32(0x7F7F)])
        // header is padded to 8 bytes
        let n = try Data(contentsOf: URL(fileURLWithPath: p)).prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual((8 + Int(n)) % 8, 0)
    }

    func testGoldenMicroModelReads() throws {
        let f = try SafetensorsFile(path: Fixtures.golden.appendingPathComponent("micro-llama-hf/model.safetensors").path)
        XCTAssertEqual(f.tensors.count, 21)
        XCTAssertEqual(f.tensor("model.embed_tokens.weight")?.shape, [32000, 32])
        XCTAssertEqual(f.tensor("model.layers.0.self_attn.k_proj.weight")?.dtype, .bf16)
    }

    func testShardedIndex() throws {
        let dir = Fixtures.tmp("shards")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let one: [Float] = [1, 2]
        try SafetensorsWriter.write(path: dir + "/model-00002-of-00002.safetensors", entries: [.init(name: "b", dtype: .f32, shape: [2])]) { _ in one.withUnsafeBytes { Array($0) } }
        try SafetensorsWriter.write(path: dir + "/model-00001-of-00002.safetensors", entries: [.init(name: "a", dtype: .f32, shape: [2])]) { _ in one.withUnsafeBytes { Array($0) } }
        let index = #"{"metadata": {}, "weight_map": {"b": "model-00002-of-00002.safetensors", "a": "model-00001-of-00002.safetensors"}}"#
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/model.safetensors.index.json", contents: Data(index.utf8)))
        let ck = try SafetensorsCheckpoint.open(dir)
        XCTAssertEqual(ck.names, ["a", "b"])
        XCTAssertEqual(try ck.floats("b"), one)
        // an index naming a tensor no shard holds is an error
        let bad = #"{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}}"#
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/model.safetensors.index.json", contents: Data(bad.utf8)))
        XCTAssertThrowsError(try SafetensorsCheckpoint.open(dir)) { XCTAssertTrue("\($0)".contains("tensor c is listed in the index but found in no shard"), "\($0)") }
    }

    func testMalformedFilesGiveSpecificErrors() {
        let f4 = [UInt8](repeating: 0, count: 16)
        let cases: [(String, [UInt8], String)] = [
            ("empty", [], "truncated"),
            ("short", [1, 2, 3], "truncated"),
            ("past-end", Self.raw("{}", lengthOverride: 1000), "runs past the end"),
            ("huge", Self.raw("{}", lengthOverride: 1 << 40), "cap"),
            ("bad-json", Self.raw("{\"a\": [1,"), "invalid JSON"),
            ("not-object", Self.raw("[1, 2]"), "not a JSON object"),
            ("dtype", Self.raw(#"{"t": {"dtype": "Q4", "shape": [4], "data_offsets": [0, 16]}}"#, data: f4), "unknown dtype Q4"),
            ("no-dtype", Self.raw(#"{"t": {"shape": [4], "data_offsets": [0, 16]}}"#, data: f4), "missing dtype"),
            ("neg-dim", Self.raw(#"{"t": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}"#, data: f4), "bad dimension"),
            ("range", Self.raw(#"{"t": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}}"#, data: f4), "outside the data area"),
            ("count", Self.raw(#"{"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}"#, data: f4), "needs 12 bytes but data_offsets span 16"),
            ("overlap", Self.raw(#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#, data: f4), "overlap"),
            ("utf8", Self.raw("{\"\u{00e9}\": 1}").enumerated().map { $0.offset == 10 ? 0xFF : $0.element }, "UTF-8"),
            ("overflow", Self.raw(#"{"t": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 16]}}"#, data: f4), "overflows"),
        ]
        for (name, bytes, expect) in cases {
            let p = Fixtures.write(bytes, name + ".safetensors")
            XCTAssertThrowsError(try SafetensorsFile(path: p), name) { e in
                let msg = "\(e)"
                XCTAssertTrue(msg.hasPrefix(p + ":"), "\(name): error does not name the file: \(msg)")
                XCTAssertTrue(msg.contains(expect), "\(name): expected '\(expect)' in: \(msg)")
            }
        }
    }
}
