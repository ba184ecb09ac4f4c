import XCTest
@testable import ModelFormats

final class JSONTests: XCTestCase {
    func parse(_ s: String) throws -> JSONValue { try JSONParser.parse(Data(s.utf8), file: "t.json") }

    func testKeepsOrderIntsBoolsAndEscapes() throws {
        let v = try parse(#"{"b": 1, "a": [true, null, 2.5, -3, 1e3], "s": "x\n\u00e9\ud83d\ude00\"", "big": 9007199254740993}"#)
        XCTAssertEqual(v.object?.map(\.0), ["b", "a", "s", "big"])
        XCTAssertEqual(v["b"], .int(1))
        XCTAssertEqual(v["a"], .array([.bool(true), .null, .double(2.5), .int(-3), .double(1000)]))
        XCTAssertEqual(v["s"]?.string, "x\né😀\"")
        XCTAssertEqual(v["big"], .int(9_007_199_254_740_993))
    }

    func testRoundTripThroughSerializer() throws {
        let v = try parse(#"{"k": [1, 2.0, "q\"\\\t", {"z": false}], "e": {}}"#)
        XCTAssertEqual(try parse(v.serialized(indent: 2)), v)
        XCTAssertEqual(try parse(v.serialized(indent: 0)), v)
    }

    func testErrorsNameFileAndOffset() {
        for bad in ["{", "[1,]", "{\"a\" 1}", "\"abc", "tru", "{\"a\":1} x", "[\"\u{01}\"]"] {
            XCTAssertThrowsError(try parse(bad)) { e in
                XCTAssertTrue("\(e)".hasPrefix("t.json: invalid JSON at byte"), "\(bad): \(e)")
            }
        }
    }

    func testDeepNestingIsAnErrorNotACrash() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        XCTAssertThrowsError(try parse(deep))
    }
}
