extension Array where Element == Float {
    /// `count` floats with no initial values, for buffers written in full before they are read (GEMM outputs with
    /// beta 0, normed rows): zero-filling megabytes per layer only to overwrite them shows up in the forward pass.
    @inlinable public static func uninitialized(count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }
}
