import XCTest
import TensorCore
@testable import ModelFormats

final class GGUFTests: XCTestCase {
    func testAllValueTypesAndNestedArraysRoundTrip() throws {
        let md: [(String, GGUFValue)] = [
            ("u8", .uint8(200)), ("i8", .int8(-5)), ("u16", .uint16(60000)), ("i16", .int16(-300)),
            ("u32", .uint32(4_000_000_000)), ("i32", .int32(-7)), ("f32", .float32(1.5)), ("bool", .bool(true)),
            ("str", .string("héllo\n")), ("u64", .uint64(1 << 40)), ("i64", .int64(-(1 << 40))), ("f64", .float64(-2.25)),
            ("arr", .array(.string, [.string("a"), .string("")])),
            ("nested", .array(.array, [.array(.int32, [.int32(1), .int32(2)]), .array(.int32, [])])),
            ("empty", .array(.float32, [])),
        ]
        let p = Fixtures.tmp("v.gguf")
        let w = try GGUFWriter(path: p, metadata: md, tensors: [("a", [32, 2], .q8_0), ("b", [3], .f32)])
        try w.writeTensor([UInt8](repeating: 1, count: 68))
        try w.writeTensor([UInt8](repeating: 2, count: 12))
        try w.finish()
        let g = try GGUFFile(path: p)
        XCTAssertEqual(g.version, 3)
        XCTAssertEqual(g.metadata.map(\.key), md.map(\.0))
        for (k, v) in md { XCTAssertEqual(g[k], v, k) }
        XCTAssertEqual(g.tensors.map(\.name), ["a", "b"])
        XCTAssertEqual(g.tensors[1].offset, 96)  // 68 padded to 32
        XCTAssertEqual(Array(g.bytes(of: g.tensors[1])), [UInt8](repeating: 2, count: 12))
        XCTAssertEqual(g.dataOffset % 32, 0)
        XCTAssertEqual(g.file.size, g.dataOffset + 96 + 32)  // last blob padded too
    }

    func testTypeTableMatchesGGML() {
        XCTAssertEqual(GGMLType.q4_K.typeSize, 144); XCTAssertEqual(GGMLType.q4_K.blockSize, 256)
        XCTAssertEqual(GGMLType.q6_K.typeSize, 210); XCTAssertEqual(GGMLType.iq4_XS.typeSize, 136)
        XCTAssertEqual(GGMLType.q5_1.typeSize, 24); XCTAssertEqual(GGMLType.tq1_0.typeSize, 54)
        XCTAssertEqual(GGMLType.bf16.rawValue, 30); XCTAssertEqual(GGMLType.mxfp4.typeSize, 17)
        XCTAssertNil(GGMLType(rawValue: 4)); XCTAssertNil(GGMLType(rawValue: 31))
        XCTAssertEqual(GGMLType.named("Q4_K"), .q4_K); XCTAssertEqual(GGMLType.iq4_NL.name, "IQ4_NL")
    }

    /// Builds a GGUF header by hand so each field can be broken.
    struct Raw {
        var version: UInt32 = 3
        var nTensors: UInt64?
        var nKV: UInt64?
        var kv: [(String, UInt32, (inout ByteWriter) -> Void)] = []
        var tensors: [(name: String, dims: [UInt64], type: UInt32, offset: UInt64)] = []
        var dataBytes = 0
        var magic: UInt32 = GGUF.magic
        func bytes() -> [UInt8] {
            var w = ByteWriter()
            w.u32(magic); w.u32(version)
            w.u64(nTensors ?? UInt64(tensors.count)); w.u64(nKV ?? UInt64(kv.count))
            for (k, t, v) in kv { w.u64(UInt64(k.utf8.count)); w.raw(Array(k.utf8)); w.u32(t); v(&w) }
            for t in tensors {
                w.u64(UInt64(t.name.utf8.count)); w.raw(Array(t.name.utf8)); w.u32(UInt32(t.dims.count))
                for d in t.dims { w.u64(d) }
                w.u32(t.type); w.u64(t.offset)
            }
            w.pad(to: 32)
            w.zeros(dataBytes)
            return w.bytes
        }
    }

    func testMalformedFilesGiveSpecificErrors() {
        let ok = Raw(tensors: [("t", [32, 1], 0, 0)], dataBytes: 128)
        var cases: [(String, Raw, String)] = []
        var r = ok; r.magic = 0x1234_5678; cases.append(("magic", r, "not a GGUF file"))
        r = ok; r.version = 1; cases.append(("v1", r, "GGUF v1 is no longer supported"))
        r = ok; r.version = 9; cases.append(("v9", r, "unsupported GGUF version 9"))
        r = ok; r.nKV = 1 << 60; cases.append(("kv-count", r, "metadata count"))
        r = ok; r.nTensors = 1 << 60; cases.append(("t-count", r, "tensor count"))
        r = ok; r.kv = [("k", 8, { $0.u64(1 << 50) })]; cases.append(("strlen", r, "runs past the end"))
        r = ok; r.kv = [("k", 99, { $0.u32(0) })]; cases.append(("vtype", r, "bad value type 99"))
        r = ok; r.kv = [("k", 9, { $0.u32(4); $0.u64(1 << 40) })]; cases.append(("arrlen", r, "cannot fit"))
        r = ok; r.kv = [("k", 4, { $0.u32(1) }), ("k", 4, { $0.u32(2) })]; cases.append(("dupkey", r, "duplicate metadata key k"))
        r = ok; r.kv = [("general.alignment", 4, { $0.u32(3) })]; cases.append(("align", r, "power of 2"))
        r = ok; r.tensors = [("t", [1, 1, 1, 1, 1], 0, 0)]; cases.append(("dims", r, "5 dimensions"))
        r = ok; r.tensors = [(String(repeating: "n", count: 64), [32], 0, 0)]; cases.append(("name", r, "at most 63"))
        r = ok; r.tensors = [("t", [32], 4, 0)]; cases.append(("type", r, "unknown or removed ggml type id 4"))
        r = ok; r.tensors = [("t", [33], 8, 0)]; cases.append(("block", r, "not a multiple of Q8_0's block size 32"))
        r = ok; r.tensors = [("t", [32], 0, 64)]; cases.append(("offset", r, "offset 64, expected 0"))
        r = ok; r.dataBytes = 16; cases.append(("data-eof", r, "truncated: tensor data ends"))
        r = ok; r.tensors = [("t", [UInt64(Int64.max), 4], 0, 0)]; cases.append(("overflow", r, "overflows"))
        r = ok; r.tensors = [("t", [32], 0, 0), ("t", [32], 0, 128)]; cases.append(("dupname", r, "duplicate tensor name t"))
        r = ok; r.kv = [("k", 7, { $0.u8(2) })]; cases.append(("bool", r, "not 0 or 1"))
        r = ok; r.kv = [("k", 9, { w in w.u32(9); w.u64(1); for _ in 0..<10 { w.u32(9); w.u64(1) }; w.u32(4); w.u64(0) })]
        cases.append(("nesting", r, "nested deeper"))
        for (name, raw, expect) in cases {
            let p = Fixtures.write(raw.bytes(), name + ".gguf")
            XCTAssertThrowsError(try GGUFFile(path: p), name) { e in
                XCTAssertTrue("\(e)".hasPrefix(p + ":"), "\(name): error does not name the file: \(e)")
                XCTAssertTrue("\(e)".contains(expect), "\(name): expected '\(expect)' in: \(e)")
            }
        }
        // Truncated anywhere in the header: always an error, never a crash.
        let full = ok.bytes()
        for n in stride(from: 0, to: 60, by: 3) {
            XCTAssertThrowsError(try GGUFFile(path: Fixtures.write(Array(full.prefix(n)), "trunc\(n).gguf")))
        }
        XCTAssertNoThrow(try GGUFFile(path: Fixtures.write(full, "ok.gguf")))
    }
}
