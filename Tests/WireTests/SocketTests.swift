import Foundation
import Messages
@testable import Wire
import XCTest

/// ZeroMQ on loopback: every test binds port 0 ("*"), sends a bounded number of messages and
/// waits with timeouts, so nothing can hang or reach beyond 127.0.0.1.
final class SocketTests: XCTestCase {
    var context: ZMQContext!
    override func setUpWithError() throws { context = try ZMQContext() }
    override func tearDown() { context.close() }

    func testRouterDealerExchangeAndPeerIdentity() throws {
        let router = try RouterEndpoint(context: context, bind: "tcp://127.0.0.1:*")
        defer { router.socket.close() }
        let dealer = try DealerEndpoint(context: context, connect: router.endpoint, identity: "worker-7")
        defer { dealer.socket.close() }
        try dealer.send(.heartbeat(Heartbeat(taskID: "t", epoch: 2, step: 9)))
        guard case let .message(peer, envelope)? = try router.receive(timeoutMs: 5000) else { return XCTFail("nothing received") }
        XCTAssertEqual(String(decoding: peer, as: UTF8.self), "worker-7")
        XCTAssertEqual(envelope.message, .heartbeat(Heartbeat(taskID: "t", epoch: 2, step: 9)))
        try router.send(.heartbeatAck(HeartbeatAck(coordinatorUnixMs: 5, leaseDeadlineUnixMs: 6)), to: peer)
        XCTAssertEqual(try dealer.receive(timeoutMs: 5000)?.message, .heartbeatAck(HeartbeatAck(coordinatorUnixMs: 5, leaseDeadlineUnixMs: 6)))
        XCTAssertNil(try dealer.receive(timeoutMs: 50), "nothing else arrives")
    }

    func testOtherProtocolVersionGetsRejectAndGarbageIsRefusedWithoutStoppingTheRouter() throws {
        let router = try RouterEndpoint(context: context, bind: "tcp://127.0.0.1:*")
        defer { router.socket.close() }
        let dealer = try DealerEndpoint(context: context, connect: router.endpoint)
        defer { dealer.socket.close() }
        try dealer.send(.ready(Ready()), version: 9)
        guard case .refused(_, let code, let reason)? = try router.receive(timeoutMs: 5000) else { return XCTFail("expected a refusal") }
        XCTAssert(reason.contains("protocol version 9"), reason)
        XCTAssertEqual(code, .versionUnsupported)
        guard case .reject(let r)? = try dealer.receive(timeoutMs: 5000)?.message else { return XCTFail("expected Reject") }
        XCTAssertEqual(r.supportedVersion, protocolVersion)
        XCTAssertEqual(r.code, .versionUnsupported)
        for garbage in [[UInt8](repeating: 0xFF, count: 40), [0x0A], []] {
            try dealer.sendRaw([garbage])
            guard case .refused? = try router.receive(timeoutMs: 5000) else { return XCTFail("garbage not refused") }
            guard case .reject? = try dealer.receive(timeoutMs: 5000)?.message else { return XCTFail("no Reject for garbage") }
        }
        try dealer.sendRaw([[1], [2]])   // two frames
        guard case .refused? = try router.receive(timeoutMs: 5000) else { return XCTFail("multi-frame not refused") }
        try dealer.send(.ready(Ready(slots: 2)))
        guard case .message(_, let ok)? = try router.receive(timeoutMs: 5000) else { return XCTFail("router stopped serving") }
        XCTAssertEqual(ok.message, .ready(Ready(slots: 2)))
        XCTAssertEqual(router.refusedFrames, 5)
    }

    func testCurveAdmitsAllowListedWorkersOnly() throws {
        try XCTSkipUnless(ZMQContext.hasCurve, "libzmq without CURVE")
        let server = try CurveKeyPair.generate(), good = try CurveKeyPair.generate(), bad = try CurveKeyPair.generate()
        let auth = try ZAPAuthenticator(context: context, allowedPublicKeys: [good.publicKey])
        auth.start()
        defer { auth.stop() }
        let router = try RouterEndpoint(context: context, bind: "tcp://127.0.0.1:*", curve: server)
        defer { router.socket.close() }
        let intruder = try DealerEndpoint(context: context, connect: router.endpoint, curve: (bad, server.publicKey))
        defer { intruder.socket.close() }
        try intruder.send(.hello(Hello()))
        XCTAssertNil(try router.receive(timeoutMs: 700), "a key not on the allow-list gets nothing through")
        XCTAssertGreaterThanOrEqual(auth.refusals, 1)
        let worker = try DealerEndpoint(context: context, connect: router.endpoint, curve: (good, server.publicKey))
        defer { worker.socket.close() }
        try worker.send(.ready(Ready(slots: 1)))
        guard case .message(_, let e)? = try router.receive(timeoutMs: 5000) else { return XCTFail("allowed worker refused") }
        XCTAssertEqual(e.message, .ready(Ready(slots: 1)))
        // Plain TCP clients cannot talk to a CURVE server either.
        let plain = try DealerEndpoint(context: context, connect: router.endpoint)
        defer { plain.socket.close() }
        try plain.send(.ready(Ready()))
        XCTAssertNil(try router.receive(timeoutMs: 500))
    }

    func testKeyFilesRoundTripAndMalformedKeysAreRefused() throws {
        let keys = try CurveKeyPair.generate()
        let base = NSTemporaryDirectory() + "apsweep-keys-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: base + ".key"); try? FileManager.default.removeItem(atPath: base + ".pub") }
        try keys.write(to: base)
        XCTAssertEqual(try CurveKeyPair.read(keyFile: base + ".key"), keys)
        XCTAssertEqual(try CurveKeyPair.readPublicKey(base + ".pub"), keys.publicKey)
        let attributes = try FileManager.default.attributesOfItem(atPath: base + ".key")
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        XCTAssertThrowsError(try CurveKeyPair(publicKey: "short", secretKey: keys.secretKey))
        XCTAssertThrowsError(try CurveKeyPair.readPublicKey("/nonexistent/x.pub")) { XCTAssert("\($0)".contains("cannot read"), "\($0)") }
    }

    /// Two processes: this test's ROUTER and `apsweep bench wire --peer` as the DEALER.
    func testExchangeWithASecondProcess() throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("apsweep")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary.path), "apsweep is not built next to the tests (swift build --build-tests builds it)")
        let router = try RouterEndpoint(context: context, bind: "tcp://127.0.0.1:*")
        defer { router.socket.close() }
        let process = Process()
        process.executableURL = binary
        process.arguments = ["bench", "wire", "--peer", router.endpoint]
        try process.run()
        defer { if process.isRunning { process.terminate() }; process.waitUntilExit() }
        guard case let .message(peer, ready)? = try router.receive(timeoutMs: 10_000), case .ready = ready.message else {
            return XCTFail("the peer process did not say Ready")
        }
        for i in 0..<200 {
            var assign = Assign()
            assign.taskID = "task-\(i)"
            try router.send(.assign(assign), to: peer)
            guard case .message(_, let reply)? = try router.receive(timeoutMs: 5000), case let .result(r) = reply.message else {
                return XCTFail("no Result for task-\(i)")
            }
            XCTAssertEqual(r.taskID, "task-\(i)")
        }
        try router.send(.shutdown(Shutdown(reason: "done")), to: peer)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        XCTAssertFalse(process.isRunning, "the peer exits on Shutdown")
        XCTAssertEqual(process.terminationStatus, 0)
    }
}
