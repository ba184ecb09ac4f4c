import CBLAS
import Foundation
import Quantization

public enum QuantKitInfo {
    public static let version = "0.1.0"

    /// The OpenBLAS core in use (e.g. "SkylakeX", "Prescott").
    public static func blasCore() -> String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    public static func versionString() -> String {
        "quantkit \(version) (OpenBLAS core: \(blasCore()))"
    }
}
