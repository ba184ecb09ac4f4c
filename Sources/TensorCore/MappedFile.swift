#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. Empty files map to an empty buffer.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let base: UnsafeMutableRawPointer?

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        if fd < 0 { throw QKError(file: path, "cannot open (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw QKError(file: path, "cannot stat (\(String(cString: strerror(errno))))") }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw QKError(file: path, "is a directory, expected a file") }
        size = Int(st.st_size)
        if size == 0 {
            base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        if p == MAP_FAILED || p == nil { throw QKError(file: path, "cannot map \(size) bytes (\(String(cString: strerror(errno))))") }
        base = p
        // tensors are read front to back: ask for read-ahead
        _ = madvise(p, size, Int32(MADV_SEQUENTIAL))
        _ = madvise(p, size, Int32(MADV_WILLNEED))
    }

    deinit {
        if let base { munmap(base, size) }
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    /// The bytes in `range`, which the caller has already checked lies inside the file.
    public func slice(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
    }

    /// Tells the kernel the pages of `range` are no longer needed (keeps RSS bounded when streaming).
    public func release(_ range: Range<Int>) {
        guard let base, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (range.lowerBound / page) * page
        let end = min(size, padTo(range.upperBound, page))
        if end > start { madvise(base + start, end - start, Int32(MADV_DONTNEED)) }
    }
}
