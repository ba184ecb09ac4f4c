// swift-tools-version:5.9
import PackageDescription

let package = Package(
    name: "quantkit",
    products: [
        .executable(name: "quantkit", targets: ["quantkit"]),
        .library(name: "QuantKit", targets: ["QuantKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
    ],
    targets: [
        // System libraries, found through pkg-config.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CMalloc"),

        // Layers, each depending only on the ones below it.
        // Kernels in C: dot products of stored weight rows (decoding) with AVX2/FMA/F16C intrinsics, f32 activations
        // (FMA) and int8 ones (pmaddubsw: 32 byte products per instruction, which Swift's SIMD types do not reach),
        // and an AVX-512 f32 matrix product (TensorCore's BLAS.gemmNT); per-function target attributes, called only
        // where /proc/cpuinfo lists what they use, so a binary built elsewhere runs on any x86-64.
        .target(name: "CRowKernels"),
        .target(name: "TensorCore", dependencies: ["CBLAS", "CMalloc", "CRowKernels"]),
        .target(name: "ModelFormats", dependencies: ["TensorCore"]),
        .target(name: "Tokenizers", dependencies: ["TensorCore", "ModelFormats"]),
        .target(name: "Quantization", dependencies: ["TensorCore", "ModelFormats"]),
        // Dot products of stored weight rows (decoding) for baseline x86-64, in Swift: the reference kernels.
        .target(name: "RowKernels", dependencies: ["TensorCore"]),
        .target(name: "Llama", dependencies: ["TensorCore", "ModelFormats", "Quantization", "RowKernels",
                                              "CRowKernels"]),
        // Model files on disk (HF, packed int, GGUF) as a runnable model.
        .target(name: "Checkpoints", dependencies: ["TensorCore", "ModelFormats", "Quantization", "Tokenizers", "Llama"]),
        // Calibration text and the layer-wise methods that use it (GPTQ, AWQ, imatrix).
        .target(name: "Calibration", dependencies: ["CZstd", "TensorCore", "ModelFormats", "Quantization", "Tokenizers", "Llama", "Checkpoints"]),
        .target(name: "Evaluation", dependencies: ["TensorCore", "ModelFormats", "Llama", "Tokenizers", "Checkpoints"]),
        // The jobs: convert, quantize (GGUF and packed), export, generate, inspect.
        .target(name: "QuantKit", dependencies: ["CBLAS", "TensorCore", "ModelFormats", "Quantization", "Tokenizers", "Llama", "Checkpoints",
                                                 "Evaluation", "Calibration"]),
        // Fuzz targets for the readers, and their driver (libFuzzer under Scripts/fuzz, a corpus replayer otherwise).
        .target(name: "FuzzTargets", dependencies: ["TensorCore", "ModelFormats", "Quantization", "Tokenizers", "Llama"]),
        .executableTarget(name: "quantkit-fuzz", dependencies: ["FuzzTargets"]),
        .executableTarget(name: "quantkit", dependencies: [
            "Calibration", "Checkpoints", "Evaluation", "Llama", "RowKernels",
            "QuantKit", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Per-process scratch directories for the tests, removed at exit.
        .target(name: "TestScratch", path: "Tests/TestScratch"),
        .testTarget(name: "TensorCoreTests", dependencies: ["TestScratch", "TensorCore"]),
        .testTarget(name: "ModelFormatsTests", dependencies: ["TestScratch", "ModelFormats", "TensorCore"]),
        .testTarget(name: "TokenizersTests", dependencies: ["TestScratch", "Tokenizers", "ModelFormats", "TensorCore"]),
        .testTarget(name: "LlamaTests", dependencies: ["TestScratch", "Llama", "ModelFormats", "TensorCore", "Quantization", "RowKernels",
                                                        "CRowKernels"]),
        .testTarget(name: "EvaluationTests", dependencies: ["TestScratch", "Evaluation", "Checkpoints", "Llama", "ModelFormats", "TensorCore"]),
        .testTarget(name: "CalibrationTests", dependencies: ["TestScratch", "Calibration", "TensorCore", "CZstd"]),
        .testTarget(name: "QuantizationTests", dependencies: ["TestScratch", "Quantization", "ModelFormats", "TensorCore"]),
        .testTarget(name: "QuantKitTests", dependencies: ["TestScratch", "QuantKit", "Calibration", "Checkpoints", "Evaluation", "Llama", "RowKernels", "Quantization", "ModelFormats",
                                                        "TensorCore", "Tokenizers", "FuzzTargets"]),
        // End-to-end: runs the built `quantkit` binary.
        .testTarget(name: "CLITests", dependencies: ["TestScratch", "ModelFormats", "TensorCore"]),
    ]
)
