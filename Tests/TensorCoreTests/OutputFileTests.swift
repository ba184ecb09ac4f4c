import TestScratch
import XCTest
@testable import TensorCore

final class OutputFileTests: XCTestCase {
    func tmp() -> String { Scratch.path("out") }

    func testCommitRenamesIntoPlace() throws {
        let p = tmp()
        let f = try OutputFile(path: p)
        try f.write([1, 2, 3])
        try f.writeZeros(2)
        XCTAssertTrue(FileManager.default.fileExists(atPath: p + ".partial"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: p))
        try f.commit()
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: p)), Data([1, 2, 3, 0, 0]))
        XCTAssertFalse(FileManager.default.fileExists(atPath: p + ".partial"))
        try FileManager.default.removeItem(atPath: p)
    }

    func testDroppedWithoutCommitLeavesNothing() throws {
        let p = tmp()
        do {
            let f = try OutputFile(path: p)
            try f.write([UInt8](repeating: 7, count: 10 << 20))  // past the buffer: really on disk
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: p + ".partial"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: p))
    }

    func testRemoveAllPartialsForSignals() throws {
        let p = tmp()
        let f = try OutputFile(path: p)
        try f.write([1])
        try f.flush()
        let removed = PartialFiles.removeAll()
        XCTAssertEqual(removed, [p + ".partial"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: p + ".partial"))
        f.abort()
    }

    func testMissingDirectoryIsAnError() {
        XCTAssertThrowsError(try OutputFile(path: "/nonexistent-dir-qk/x.gguf")) { e in
            XCTAssertTrue("\(e)".contains("does not exist"), "\(e)")
        }
    }

    func testCheckedArithmetic() {
        XCTAssertEqual(try Checked.product([2, 3, 4], "t"), 24)
        XCTAssertThrowsError(try Checked.product([Int.max / 2, 3], "t"))
        XCTAssertThrowsError(try Checked.product([2, -1], "t"))
    }
}
