// swift-tools-version:6.0
import PackageDescription
import Foundation

let optimize: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

let package = Package(
    name: "apsweep",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "apsweep", targets: ["apsweep"]),
        .library(name: "NeuralCore", targets: ["NeuralCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // OpenBLAS is loaded at run time (dlopen) so that OPENBLAS_CORETYPE can be set before the
        // library picks its kernels; see Sources/COpenBLAS/include/COpenBLAS.h.
        .target(name: "COpenBLAS", cSettings: [.unsafeFlags(["-I/usr/include/x86_64-linux-gnu/openblas-pthread"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CZeroMQ", path: "Sources/CZeroMQ"),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        // SHA-256 for data and checkpoint fingerprints (OpenSSL's libcrypto, Debian's libssl-dev).
        .systemLibrary(name: "COpenSSLCrypto", path: "Sources/COpenSSLCrypto"),
        // protoc-c output for Proto/apsweep.proto (Scripts/gen-proto), linked with Debian's libprotobuf-c.
        .target(name: "APSweepProtoC", linkerSettings: [.linkedLibrary("protobuf-c")]),
        .target(name: "Wire", dependencies: ["APSweepProtoC", "CZeroMQ"], swiftSettings: optimize),
        .target(name: "NeuralCore", dependencies: ["COpenBLAS"], swiftSettings: optimize),
        .target(name: "Datasets", dependencies: ["NeuralCore", "CZlib", "COpenSSLCrypto"], swiftSettings: optimize),
        .target(name: "Compression", dependencies: ["NeuralCore"], swiftSettings: optimize),
        .target(name: "Experiment", dependencies: ["NeuralCore", "Datasets", "Compression"], swiftSettings: optimize),
        .target(name: "Plot", swiftSettings: optimize),
        .target(name: "Coordinator", dependencies: ["Wire", "Experiment", "Compression", "Datasets", "NeuralCore", "CSQLite", "Plot",
                                                  .product(name: "Yams", package: "Yams")], swiftSettings: optimize),
        .target(name: "Worker", dependencies: ["Wire", "Experiment", "Compression", "Datasets", "NeuralCore"], swiftSettings: optimize),
        .executableTarget(
            name: "apsweep",
            dependencies: [
                "NeuralCore", "Datasets", "Compression", "Experiment", "Wire", "Coordinator", "Worker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: optimize),
        .testTarget(name: "NeuralCoreTests", dependencies: ["NeuralCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "NeuralCore"]),
        .testTarget(name: "CompressionTests", dependencies: ["Compression", "NeuralCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "WireTests", dependencies: ["Wire"], resources: [.copy("Golden")]),
        .testTarget(name: "CoordinatorTests", dependencies: ["Coordinator", "Experiment", "Datasets", "NeuralCore", "Wire", "Plot"]),
        .testTarget(name: "PlotTests", dependencies: ["Plot"]),
        .testTarget(name: "ExperimentTests", dependencies: ["Experiment", "Compression", "Datasets", "NeuralCore"]),
    ],
    swiftLanguageModes: [.v5]
)

// The libFuzzer target over envelope decoding, built only by Scripts/fuzz-wire (it has no main of
// its own: libFuzzer provides it).
if ProcessInfo.processInfo.environment["APSWEEP_FUZZ"] != nil {
    package.targets.append(.executableTarget(
        name: "WireFuzz", dependencies: ["Wire"], path: "Scripts/fuzz/WireFuzz",
        swiftSettings: [.unsafeFlags(["-sanitize=fuzzer,address", "-parse-as-library"])]))
}
