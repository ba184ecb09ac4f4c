#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Partial outputs that exist right now, so a signal handler can remove them.
///
/// Making a partial output and recording it happen under one lock, and so do renaming it into place and forgetting
/// it; `removeAllForExit()` takes that lock and keeps it until the process exits. A signal arriving at any moment
/// therefore finds every partial output recorded, and no thread can make or rename one while they are being removed.
public enum PartialFiles {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var paths: Set<String> = []
    nonisolated(unsafe) private static var directories: Set<String> = []

    /// Runs `make` (which creates the partial file `p`) and records `p`, as one step.
    static func create<T>(_ p: String, directory: Bool = false, _ make: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        let made = try make()
        if directory { directories.insert(p) } else { paths.insert(p) }
        return made
    }

    /// Runs `finish` (which renames or removes the partial output `p`) and forgets `p`, as one step.
    static func finish<T>(_ p: String, directory: Bool = false, _ finish: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        if directory { directories.remove(p) } else { paths.remove(p) }
        return try finish()
    }

    /// Unlinks every partial output (after an error). Returns the removed paths.
    @discardableResult public static func removeAll() -> [String] {
        lock.lock()
        defer { lock.unlock() }
        return unlinkAll()
    }

    /// Unlinks every partial output and keeps the lock, so no other thread makes or renames one before the caller
    /// exits (SIGINT/SIGTERM). Returns the removed paths.
    public static func removeAllForExit() -> [String] {
        lock.lock()
        return unlinkAll()
    }

    /// Opens a new scratch file at `p` for reading and writing and unlinks its name at once (both under the lock), so
    /// it is gone when closed or when the process ends, however it ends. Returns the descriptor, or -1 with errno.
    public static func scratchFile(_ p: String) -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        let fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        if fd >= 0 { unlink(p) }
        return fd
    }

    private static func unlinkAll() -> [String] {
        let all = Array(paths)
        let dirs = Array(directories)
        paths.removeAll()
        directories.removeAll()
        for p in all { unlink(p) }
        for d in dirs { try? FileManager.default.removeItem(atPath: d) }
        return all + dirs
    }
}

/// A file written under `<path>.partial` and renamed to `path` only by `commit()`.
/// Dropping it without committing (an error was thrown) removes the partial file.
public final class OutputFile {
    public let path: String
    public let partialPath: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private let bufferLimit = 8 << 20
    public private(set) var written: Int = 0
    private var done = false
    /// Bytes handed to the kernel so far, and how far writeback has been started.
    private var flushed = 0
    private var advised = 0

    public init(path: String) throws {
        self.path = path
        self.partialPath = path + ".partial"
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty {
            var isDir: ObjCBool = false
            if !FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) || !isDir.boolValue {
                throw QKError(file: path, "output directory \(dir) does not exist")
            }
        }
        let partial = partialPath
        fd = try PartialFiles.create(partial) {
            let fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            if fd < 0 { throw QKError(file: partial, "cannot create (\(String(cString: strerror(errno))))") }
            return fd
        }
        buffer.reserveCapacity(bufferLimit)
    }

    deinit { if !done { abort() } }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if bytes.count >= bufferLimit {
            try flush()
            try writeAll(bytes)
        } else {
            buffer.append(contentsOf: bytes)
            if buffer.count >= bufferLimit { try flush() }
        }
        written += bytes.count
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    public func writeZeros(_ n: Int) throws {
        if n > 0 { try write([UInt8](repeating: 0, count: n)) }
    }

    public func flush() throws {
        if buffer.isEmpty { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Starts writeback of what is written so far (Linux does it for POSIX_FADV_DONTNEED), in 64 MiB steps, so the
    /// final fsync has little left to wait for and the page cache does not fill up with the output.
    private func startWriteback() {
        if flushed - advised >= 64 << 20 {
            _ = posix_fadvise(fd, off_t(advised), off_t(flushed - advised), Int32(POSIX_FADV_DONTNEED))
            advised = flushed
        }
    }

    private func writeAll(_ b: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < b.count {
            let n = Glibc.write(fd, b.baseAddress! + off, b.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                throw QKError(file: partialPath, "write failed (\(String(cString: strerror(errno))))")
            }
            off += n
        }
        flushed += b.count
        startWriteback()
    }

    /// Flushes, syncs and renames the partial file into place.
    public func commit() throws {
        try flush()
        if fsync(fd) != 0 { throw QKError(file: partialPath, "fsync failed (\(String(cString: strerror(errno))))") }
        close(fd)
        fd = -1
        let renamed = PartialFiles.finish(partialPath) { rename(partialPath, path) == 0 ? nil : String(cString: strerror(errno)) }
        if let msg = renamed {
            abort()
            throw QKError(file: path, "cannot rename the finished output into place (\(msg))")
        }
        done = true
    }

    /// Closes and removes the partial file.
    public func abort() {
        if fd >= 0 { close(fd); fd = -1 }
        PartialFiles.finish(partialPath) { _ = unlink(partialPath) }
        done = true
    }
}

/// Writes a small file atomically (partial name, then rename).
public func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws {
    let f = try OutputFile(path: path)
    try f.write(bytes)
    try f.commit()
}

/// An output directory built under `PATH.partial` and renamed to PATH only when complete (packed checkpoints).
/// PATH must not exist, or be an empty directory: quantkit does not delete a directory it did not make.
public final class OutputDirectory {
    public let path: String
    public let partialPath: String
    /// PATH may already hold files: on commit the new files are renamed over them one by one (export --force).
    public let replacesFiles: Bool
    private var done = false

    /// Throws when PATH cannot be used (checked again when the directory is made; call early to fail fast).
    public static func check(_ path: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw QKError(file: path, "exists and is not a directory") }
            guard (try? FileManager.default.contentsOfDirectory(atPath: path))?.isEmpty == true else {
                throw QKError(file: path, "exists and is not empty; choose a new output directory or remove it")
            }
        }
    }

    public init(path: String, replacesFiles: Bool = false) throws {
        let fm = FileManager.default
        self.path = path
        self.replacesFiles = replacesFiles
        partialPath = path + ".partial"
        var isDir: ObjCBool = false
        if replacesFiles && fm.fileExists(atPath: path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw QKError(file: path, "exists and is not a directory") }
        } else {
            try Self.check(path)
            if fm.fileExists(atPath: path) { try fm.removeItem(atPath: path) }
        }
        if fm.fileExists(atPath: partialPath) { try fm.removeItem(atPath: partialPath) }   // left by a killed run
        let partial = partialPath
        try PartialFiles.create(partial, directory: true) {
            do { try fm.createDirectory(atPath: partial, withIntermediateDirectories: true) } catch {
                throw QKError(file: partial, "cannot create the output directory: \(error.localizedDescription)")
            }
        }
    }

    deinit { if !done { abort() } }

    /// A file inside the (partial) directory.
    public func file(_ name: String) -> String { partialPath + "/" + name }

    public func commit() throws {
        try PartialFiles.finish(partialPath, directory: true) {
            if replacesFiles && FileManager.default.fileExists(atPath: path) {
                for f in try FileManager.default.contentsOfDirectory(atPath: partialPath) {
                    guard rename(partialPath + "/" + f, path + "/" + f) == 0 else {
                        throw QKError(file: path + "/" + f, "cannot replace it: \(String(cString: strerror(errno)))")
                    }
                }
                try? FileManager.default.removeItem(atPath: partialPath)
            } else {
                guard rename(partialPath, path) == 0 else {
                    throw QKError(file: path, "cannot rename \(partialPath) to it: \(String(cString: strerror(errno)))")
                }
            }
        }
        done = true
    }

    public func abort() {
        PartialFiles.finish(partialPath, directory: true) { try? FileManager.default.removeItem(atPath: partialPath) }
        done = true
    }
}
