import Foundation
import ModelFormats
import Quantization
import TensorCore

/// Encodes a tensor into a ggml block type a block of rows at a time: each worker decodes its rows into its own
/// f32 scratch, checks them for NaN/Inf and encodes them straight into the output. No f32 copy of the whole tensor
/// is made, and the scratch buffers live as long as the encoder (no page faults per tensor). Rows are encoded
/// independently, so the bytes do not depend on the block size or the thread count.
final class RowBlockEncoder {
    /// Values decoded per block of rows (at least one row).
    static let blockElements = 1 << 16

    private var scratch: [UnsafeMutablePointer<Float>] = []  // per worker: [blockRows × rowLength] f32
    private var scratchCapacity = 0

    deinit { for p in scratch { p.deallocate() } }

    /// Encodes the `rowCount` rows of `rows` as `type` into `y` ([rowCount × type.rowBytes(rowLength)] bytes).
    /// Throws the source's error for the first non-finite input value, else the validation error for the first
    /// block whose f16 scale overflowed (prefixed "tensor NAME:", as other encoding errors).
    func encode(_ rows: QuantizeSource.Rows, rowCount: Int, type: GGMLType, imatrix: [Float]?,
                into y: UnsafeMutableRawPointer, tensor name: String) throws {
        let n = rows.rowLength
        do { try GGMLCodec.checkEncodable(type, rowLength: n) } catch let e as QKError { throw QKError("tensor \(name): \(e.message)") }
        if let im = imatrix, im.count != n { throw QKError("tensor \(name): importance matrix has \(im.count) values for rows of \(n)") }
        let blockRows = max(1, Self.blockElements / n)
        reserveScratch(blockRows * n)
        let rowBytes = type.rowBytes(n), blocksPerRow = n / type.blockSize
        let lock = NSLock()
        nonisolated(unsafe) var firstBadValue = Int.max, firstBadScale = Int.max
        nonisolated(unsafe) let (work, dst) = (scratch, y)
        Parallel.forBlocksWithWorker(rowCount, block: blockRows) { w, r in
            let x = work[w]
            if let bad = rows.read(r, x) {
                lock.lock(); firstBadValue = min(firstBadValue, bad); lock.unlock()
                return
            }
            let out = dst + r.lowerBound * rowBytes
            if let imatrix {
                imatrix.withUnsafeBufferPointer {
                    GGMLCodec.encodeRows(type, x, rows: r.count, rowLength: n, imatrix: $0.baseAddress, into: out)
                }
            } else {
                GGMLCodec.encodeRows(type, x, rows: r.count, rowLength: n, imatrix: nil, into: out)
            }
            if let bad = GGMLCodec.firstNonFiniteScale(type, UnsafeRawPointer(out), blocks: r.count * blocksPerRow) {
                lock.lock(); firstBadScale = min(firstBadScale, r.lowerBound * blocksPerRow + bad); lock.unlock()
            }
        }
        if firstBadValue != .max { throw rows.nonFinite(firstBadValue) }
        if firstBadScale != .max { throw QKError("tensor \(name): \(GGMLCodec.scaleValidationError(type, block: firstBadScale).message)") }
    }

    private func reserveScratch(_ count: Int) {
        let workers = max(1, Parallel.threads)
        if count <= scratchCapacity && scratch.count == workers { return }
        for p in scratch { p.deallocate() }
        scratchCapacity = max(count, scratchCapacity)
        scratch = (0..<workers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: scratchCapacity) }
    }
}

/// Writes a GGUF's tensor data on a background queue, so the next tensor is encoded while the previous one is
/// written. Two output buffers take turns; a buffer is handed out again only once its write has finished.
final class OverlappedTensorWriter {
    private let writer: GGUFWriter
    private let queue = DispatchQueue(label: "quantkit.tensor-writer")
    private var buffers: [(pointer: UnsafeMutableRawPointer, capacity: Int)?] = [nil, nil]
    private let free = [DispatchSemaphore(value: 1), DispatchSemaphore(value: 1)]
    private var turn = 0
    private let lock = NSLock()
    private var failure: Error?

    init(_ writer: GGUFWriter) { self.writer = writer }

    deinit {
        queue.sync {}
        for b in buffers { b?.pointer.deallocate() }
    }

    /// The next output buffer, with room for `bytes`, once no pending write uses it.
    func nextBuffer(_ bytes: Int) throws -> (index: Int, pointer: UnsafeMutableRawPointer) {
        let k = turn
        turn = 1 - turn
        free[k].wait()
        if let e = firstFailure() { free[k].signal(); throw e }
        if let b = buffers[k], b.capacity >= bytes { return (k, b.pointer) }
        buffers[k]?.pointer.deallocate()
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(1, bytes), alignment: 64)
        buffers[k] = (p, max(1, bytes))
        return (k, p)
    }

    /// Queues the write of `bytes` bytes of buffer `index` (from `nextBuffer`) as the next tensor's data.
    func write(buffer index: Int, bytes: Int) {
        guard let b = buffers[index] else { free[index].signal(); return }
        nonisolated(unsafe) let p = b.pointer
        queue.async { [self] in
            run { try writer.writeTensor(UnsafeRawBufferPointer(start: p, count: bytes)) }
            free[index].signal()
        }
    }

    /// Returns buffer `index` unwritten (its tensor failed).
    func giveBack(_ index: Int) { free[index].signal() }

    /// Queues the write of `bytes` (memory that stays valid until the write has run, e.g. a mapped source tensor).
    func write(unowned bytes: UnsafeRawBufferPointer) {
        nonisolated(unsafe) let b = bytes
        queue.async { [self] in run { try writer.writeTensor(b) } }
    }

    /// Queues the write of `bytes` (kept alive by the closure) as the next tensor's data.
    func write(_ bytes: [UInt8]) {
        queue.async { [self] in run { try writer.writeTensor(bytes) } }
    }

    /// Queues work to run after the writes queued so far (e.g. releasing source pages).
    func after(_ body: @escaping () -> Void) { queue.async(execute: body) }

    /// Waits for every write, then completes the file.
    func finish() throws {
        queue.sync {}
        if let e = firstFailure() { throw e }
        try writer.finish()
    }

    private func run(_ body: () throws -> Void) {
        if firstFailure() != nil { return }
        do { try body() } catch {
            lock.lock(); if failure == nil { failure = error }; lock.unlock()
        }
    }

    private func firstFailure() -> Error? { lock.lock(); defer { lock.unlock() }; return failure }
}
