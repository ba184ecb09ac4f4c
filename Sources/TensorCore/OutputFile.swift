#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Partial outputs that exist right now, so a signal handler can remove them.
public enum PartialFiles {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var paths: Set<String> = []

    nonisolated(unsafe) private static var directories: Set<String> = []

    static func add(_ p: String) { lock.lock(); paths.insert(p); lock.unlock() }
    static func remove(_ p: String) { lock.lock(); paths.remove(p); lock.unlock() }
    static func addDirectory(_ p: String) { lock.lock(); directories.insert(p); lock.unlock() }
    static func removeDirectory(_ p: String) { lock.lock(); directories.remove(p); lock.unlock() }

    /// Unlinks every partial output (called on SIGINT/SIGTERM). Returns the removed paths.
    @discardableResult public static func removeAll() -> [String] {
        lock.lock(); let all = Array(paths), dirs = Array(directories); paths.removeAll(); directories.removeAll(); lock.unlock()
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
        fd = open(partialPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd < 0 { throw QKError(file: partialPath, "cannot create (\(String(cString: strerror(errno))))") }
        PartialFiles.add(partialPath)
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
        if rename(partialPath, path) != 0 {
            let msg = String(cString: strerror(errno))
            abort()
            throw QKError(file: path, "cannot rename the finished output into place (\(msg))")
        }
        PartialFiles.remove(partialPath)
        done = true
    }

    /// Closes and removes the partial file.
    public func abort() {
        if fd >= 0 { close(fd); fd = -1 }
        unlink(partialPath)
        PartialFiles.remove(partialPath)
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
        do { try fm.createDirectory(atPath: partialPath, withIntermediateDirectories: true) } catch {
            throw QKError(file: partialPath, "cannot create the output directory: \(error.localizedDescription)")
        }
        PartialFiles.addDirectory(partialPath)
    }

    deinit { if !done { abort() } }

    /// A file inside the (partial) directory.
    public func file(_ name: String) -> String { partialPath + "/" + name }

    public func commit() throws {
        if replacesFiles && FileManager.default.fileExists(atPath: path) {
            for f in try FileManager.default.contentsOfDirectory(atPath: partialPath) {
                guard rename(partialPath + "/" + f, path + "/" + f) == 0 else {
                    throw QKError(file: path + "/" + f, "cannot replace it: \(String(cString: strerror(errno)))")
                }
            }
            try? FileManager.default.removeItem(atPath: partialPath)
            PartialFiles.removeDirectory(partialPath)
            done = true
            return
        }
        guard rename(partialPath, path) == 0 else { throw QKError(file: path, "cannot rename \(partialPath) to it: \(String(cString: strerror(errno)))") }
        PartialFiles.removeDirectory(partialPath)
        done = true
    }

    public func abort() {
        try? FileManager.default.removeItem(atPath: partialPath)
        PartialFiles.removeDirectory(partialPath)
        done = true
    }
}
