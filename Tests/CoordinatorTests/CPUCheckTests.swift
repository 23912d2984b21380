import Foundation
import NeuralCore
import XCTest

/// A build run on a CPU that lacks the instructions it was compiled for stops before main() with
/// a message that names the missing feature and the build to make, instead of dying of SIGILL in
/// the middle of a training step. The test machine has every feature, so APSWEEP_TEST_CPU_LACKS
/// makes the check believe one is missing.
final class CPUCheckTests: XCTestCase {
    func testACPUWithoutTheBuildsInstructionsIsToldWhichBuildToMake() throws {
        let h = try BinaryHarness("cpu-check")
        try XCTSkipUnless(h.available, "the apsweep binary is not built next to the tests")
        try XCTSkipUnless(Compute.compiledFor == "x86-64-v3", "this build is for \(Compute.compiledFor), not the default x86-64-v3")

        func info(pretending feature: String) throws -> (status: Int32, out: String, err: String) {
            let p = Process()
            p.executableURL = h.binary
            p.arguments = ["info"]
            p.environment = ProcessInfo.processInfo.environment.merging(["APSWEEP_TEST_CPU_LACKS": feature]) { $1 }
            let out = Pipe(), err = Pipe()
            p.standardOutput = out
            p.standardError = err
            try p.run()
            let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
        }

        for feature in ["avx2", "fma"] {
            let r = try info(pretending: feature)
            XCTAssertEqual(r.status, 70, "without \(feature): \(r.err)")
            XCTAssertEqual(r.out, "", "main() must not have run")
            XCTAssertTrue(r.err.contains("compiled for x86-64-v3 CPUs and this CPU has no \(feature) instructions"), r.err)
            XCTAssertTrue(r.err.contains("APSWEEP_CPU=x86-64 swift build -c release"), r.err)
        }
        // A feature the build does not use is no reason to stop.
        let r = try info(pretending: "avx512f")
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("compiled for x86-64-v3 CPUs"), r.out)
    }
}
