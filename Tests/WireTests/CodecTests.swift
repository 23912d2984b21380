import Foundation
import Messages
@testable import Wire
import XCTest

final class WireGoldenTests: XCTestCase {
    func golden(_ side: String, _ name: String) throws -> [UInt8] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: "bin", subdirectory: "Golden/\(side)"),
                                "missing golden file \(side)/\(name).bin: run Scripts/gen_wire_golden.py")
        return [UInt8](try Data(contentsOf: url))
    }

    /// Frames encoded by Python's protobuf runtime decode to the same values here.
    func testDecodesFramesFromPythonProtobuf() throws {
        for (name, expected) in Samples.all {
            XCTAssertEqual(try Codec.decode(try golden("python", name)), expected, name)
        }
    }

    /// Our encodings are byte for byte the ones Python decoded and checked when the golden files
    /// were made (Scripts/gen_wire_golden.py), so Python still reads what we write. With
    /// APSWEEP_WIRE_DUMP set, the encodings are also written there for that script.
    func testOwnEncodingsAreTheOnesPythonVerified() throws {
        let encoded = try Samples.all.map { ($0.0, try Codec.encode($0.1)) }
        if let dump = ProcessInfo.processInfo.environment["APSWEEP_WIRE_DUMP"] {
            for (name, bytes) in encoded { try Data(bytes).write(to: URL(fileURLWithPath: dump).appendingPathComponent(name + ".bin")) }
        }
        for (name, bytes) in encoded { XCTAssertEqual(bytes, try golden("apsweep", name), name) }
    }
}

final class CodecTests: XCTestCase {
    func testRoundTripOfEveryMessage() throws {
        XCTAssertEqual(Samples.all.count, 16, "one sample per message type")
        for (name, envelope) in Samples.all {
            XCTAssertEqual(try Codec.decode(try Codec.encode(envelope)), envelope, name)
        }
        // Defaults encode to nearly nothing and come back as defaults.
        let empty = Envelope(.ready(Ready(slots: 0)))
        XCTAssertEqual(try Codec.decode(try Codec.encode(empty)), empty)
    }

    /// The coordinator's socket thread sends status requests ahead of queued results, judged from
    /// a frame's first bytes: exactly the StatusRequest frames say yes, whatever their header
    /// fields hold, and cut or flipped frames never crash the peek.
    func testStatusRequestsAreRecognisedWithoutDecoding() throws {
        for (name, envelope) in Samples.all {
            var e = envelope
            for (sequence, incarnation) in [(UInt64(0), UInt64(0)), (1, 0), (UInt64.max, 1_796_000_000_000_123)] {
                e.sequence = sequence; e.incarnation = incarnation
                let frame = try Codec.encode(e)
                let isStatus: Bool
                if case .statusRequest = e.message { isStatus = true } else { isStatus = false }
                XCTAssertEqual(Codec.isStatusRequest(frame), isStatus, "\(name) sequence \(sequence)")
            }
        }
        let frame = try Codec.encode(Envelope(.statusRequest(StatusRequest(includeCorrelations: true, maxFailures: 3, maxWorkers: 9)), sequence: 300))
        for n in 0..<frame.count { _ = Codec.isStatusRequest(Array(frame.prefix(n))) }
        XCTAssertFalse(Codec.isStatusRequest([]))
        XCTAssertFalse(Codec.isStatusRequest([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]))
    }

    func testFrameLimitAndGarbage() throws {
        let big = try Codec.encode(Envelope(.blobChunk(BlobChunk(hash: "h", data: [UInt8](repeating: 7, count: 2000)))))
        XCTAssertThrowsError(try Codec.decode(big, maxFrameBytes: 1000)) {
            XCTAssertEqual($0 as? WireError, .frameTooLarge(size: big.count, limit: 1000))
        }
        XCTAssertThrowsError(try Codec.decode([0xFF, 0xFF, 0xFF])) { XCTAssert("\($0)".contains("undecodable"), "\($0)") }
        XCTAssertThrowsError(try Codec.decode([0x08, 0x01])) { XCTAssertEqual($0 as? WireError, .emptyBody) }
    }

    /// 120,000 random, truncated and bit-flipped frames: every one decodes or throws a WireError;
    /// nothing crashes, nothing hangs (the loop is bounded and each decode is linear in its input).
    func testHundredThousandHostileFrames() throws {
        var seedState: UInt64 = 0x1234_5678
        func next() -> UInt64 { seedState = seedState &* 6364136223846793005 &+ 1442695040888963407; return seedState >> 17 }
        let valid = try Samples.all.map { try Codec.encode($0.1) }
        var decoded = 0, rejected = 0
        let start = Date()
        for i in 0..<120_000 {
            var frame: [UInt8]
            switch i % 3 {
            case 0:   // random bytes
                frame = (0..<Int(next() % 64)).map { _ in UInt8(truncatingIfNeeded: next()) }
            case 1:   // a valid frame cut short
                let v = valid[i % valid.count]
                frame = Array(v.prefix(Int(next() % UInt64(max(1, v.count)))))
            default:  // a valid frame with bits flipped
                frame = valid[i % valid.count]
                for _ in 0..<(1 + Int(next() % 4)) where !frame.isEmpty {
                    frame[Int(next() % UInt64(frame.count))] ^= UInt8(1 << (next() % 8))
                }
            }
            do {
                _ = try Codec.decode(frame)
                decoded += 1
            } catch is WireError {
                rejected += 1
            }
        }
        XCTAssertEqual(decoded + rejected, 120_000)
        XCTAssertGreaterThan(rejected, 40_000)
        XCTAssertLessThan(Date().timeIntervalSince(start), 120, "bounded")
    }
}

/// The committed protoc-c output must be what protoc-c makes of Proto/apsweep.proto now.
final class GeneratedCodeTests: XCTestCase {
    func testCommittedProtobufCCodeIsFresh() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let protoc = ["/usr/bin/protoc-c", "/usr/local/bin/protoc-c"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let compiler = try XCTUnwrap(protoc, "protoc-c is missing: Scripts/bootstrap installs protobuf-c-compiler")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("apsweep-protoc-\(getpid())")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: out) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: compiler)
        process.currentDirectoryURL = root.appendingPathComponent("Proto")
        process.arguments = ["--c_out=\(out.path)", "apsweep.proto"]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "protoc-c failed on Proto/apsweep.proto")
        for (generated, committed) in [("apsweep.pb-c.c", "Sources/APSweepProtoC/apsweep.pb-c.c"),
                                       ("apsweep.pb-c.h", "Sources/APSweepProtoC/include/apsweep.pb-c.h")] {
            let fresh = try String(contentsOf: out.appendingPathComponent(generated), encoding: .utf8)
            let kept = try String(contentsOf: root.appendingPathComponent(committed), encoding: .utf8)
            XCTAssert(fresh == kept, "\(committed) differs from what protoc-c makes of Proto/apsweep.proto: run Scripts/gen-proto")
        }
    }
}
