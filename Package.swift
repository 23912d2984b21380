// swift-tools-version:6.0
import PackageDescription
import Foundation

/// The x86-64 level the Swift code is compiled for. x86-64-v3 (AVX2, FMA: Intel since Haswell,
/// 2013, AMD since Excavator; RHEL 10's baseline) lets the compiler vectorise the core's own loops
/// eight lanes wide: ResNet-20 trains 5–16 % faster than at the x86-64 baseline on this machine.
/// `APSWEEP_CPU=x86-64 swift build` makes a build for any x86-64 CPU (`native` one for the build
/// machine's own). A build refuses, before main, to run on a CPU that lacks what it was compiled
/// for (Sources/CPUCheck).
let cpuLevel = ProcessInfo.processInfo.environment["APSWEEP_CPU"] ?? "x86-64-v3"
#if arch(x86_64)
let march = ["-Xcc", "-march=\(cpuLevel)"]
let checkedLevel = cpuLevel
#else
let march: [String] = []
let checkedLevel = ""
#endif
let optimize: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release)), .unsafeFlags(march)]

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
        // JPEG and PNG decoding for image folders (libjpeg-turbo, libpng); C because libjpeg
        // reports errors by longjmp.
        .target(name: "CImageCodecs", linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16")]),
        .systemLibrary(name: "CZeroMQ", path: "Sources/CZeroMQ"),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        // SHA-256 for data and checkpoint fingerprints (OpenSSL's libcrypto, Debian's libssl-dev).
        .systemLibrary(name: "COpenSSLCrypto", path: "Sources/COpenSSLCrypto"),
        // protoc-c output for Proto/apsweep.proto (Scripts/gen-proto), linked with Debian's libprotobuf-c.
        .target(name: "APSweepProtoC", linkerSettings: [.linkedLibrary("protobuf-c")]),
        // SHA-256 and CRC-32: content addresses, fingerprints, task ids, record checksums.
        .target(name: "Digest", dependencies: ["COpenSSLCrypto", "CZlib"], swiftSettings: optimize),
        // The one epoch-record type, its field table, validation and the journal's encoding.
        .target(name: "Records", dependencies: ["Digest"], swiftSettings: optimize),
        // The protocol's messages as Swift values (no I/O).
        .target(name: "Messages", dependencies: ["Records"], swiftSettings: optimize),
        // protobuf-c codec and ZeroMQ sockets for those messages.
        .target(name: "Wire", dependencies: ["APSweepProtoC", "CZeroMQ", "Messages", "Records"], swiftSettings: optimize),
        // Content-addressed files (checkpoints) with verified writes and reads.
        .target(name: "BlobStore", dependencies: ["Digest"], swiftSettings: optimize),
        // The coordinator's decisions as a pure state machine (no sockets, no SQLite, no clock).
        .target(name: "Scheduling", dependencies: ["Messages", "Records", "Digest"], swiftSettings: optimize),
        // The SQLite journal: schema, migrations, locking, the scheduler's store, snapshots for reports.
        .target(name: "Journal", dependencies: ["CSQLite", "Scheduling", "Records", "Messages"], swiftSettings: optimize),
        // Checks before main that the CPU has the instructions the build was compiled for.
        .target(name: "CPUCheck", cSettings: [.unsafeFlags(march.filter { $0 != "-Xcc" }), .define("APSWEEP_CPU_LEVEL", to: "\"\(checkedLevel)\"")]),
        .target(name: "NeuralCore", dependencies: ["COpenBLAS", "CPUCheck"], swiftSettings: optimize),
        .target(name: "Datasets", dependencies: ["NeuralCore", "CZlib", "Digest", "CImageCodecs"], swiftSettings: optimize),
        .target(name: "Compression", dependencies: ["NeuralCore", "Records"], swiftSettings: optimize),
        .target(name: "Experiment", dependencies: ["NeuralCore", "Datasets", "Compression", "Records", "Digest"], swiftSettings: optimize),
        .target(name: "Plot", swiftSettings: optimize),
        // Aggregation, statistics, the paper's claims with verdicts, results.csv, summary.json, report.html.
        .target(name: "Analysis", dependencies: ["Journal", "Experiment", "Records", "Plot"], swiftSettings: optimize),
        .target(name: "Coordinator", dependencies: ["Wire", "Scheduling", "Journal", "BlobStore", "Experiment", "Analysis", "Datasets", "NeuralCore", "Autoscaling",
                                                  .product(name: "Yams", package: "Yams")], swiftSettings: optimize),
        // The worker's side of the protocol as a pure state machine.
        .target(name: "WorkerProtocol", dependencies: ["Messages", "Records"], swiftSettings: optimize),
        // The worker pool's autoscaling policy (pure: decisions from a view and the time).
        .target(name: "Autoscaling", swiftSettings: optimize),
        // A deterministic simulation of the Scheduler and WorkerSession under injected faults.
        .target(name: "Simulation", dependencies: ["Scheduling", "WorkerProtocol", "Messages", "Records", "Digest"], swiftSettings: optimize),
        .target(name: "Worker", dependencies: ["Wire", "Messages", "WorkerProtocol", "Experiment", "BlobStore", "Datasets", "NeuralCore", "Digest"], swiftSettings: optimize),
        .executableTarget(
            name: "apsweep",
            dependencies: [
                "NeuralCore", "Datasets", "Compression", "Experiment", "Wire", "Messages", "Scheduling", "Journal", "Analysis",
                "Coordinator", "Worker", "WorkerProtocol", "Digest", "Records", "BlobStore", "Simulation", "Autoscaling",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: optimize),
        .testTarget(name: "NeuralCoreTests", dependencies: ["NeuralCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "NeuralCore", "Digest"], resources: [.copy("Fixtures")]),
        .testTarget(name: "CompressionTests", dependencies: ["Compression", "NeuralCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "WireTests", dependencies: ["Wire", "Messages", "Records"], resources: [.copy("Golden")]),
        .testTarget(name: "SchedulingTests", dependencies: ["Scheduling", "Simulation", "Messages", "Records", "WorkerProtocol", "Digest", "Journal"]),
        .testTarget(name: "JournalTests", dependencies: ["Journal", "Scheduling", "Records", "Messages", "CSQLite"]),
        .testTarget(name: "AnalysisTests", dependencies: ["Analysis", "Journal", "Scheduling", "Records", "Messages", "Experiment", "Plot", "Coordinator"], resources: [.copy("Fixtures")]),
        .testTarget(name: "CoordinatorTests", dependencies: ["Coordinator", "Experiment", "Datasets", "NeuralCore", "Wire", "Messages", "Journal", "Scheduling", "Analysis", "BlobStore", "CSQLite"]),
        .testTarget(name: "PlotTests", dependencies: ["Plot"]),
        .testTarget(name: "AutoscalingTests", dependencies: ["Autoscaling"]),
        .testTarget(name: "ExperimentTests", dependencies: ["Experiment", "Compression", "Datasets", "NeuralCore", "Records"]),
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
