@testable import Coordinator
import Datasets
import Foundation
import Journal
import Messages
import Records
import Scheduling
import Wire
import XCTest

/// One peer, buggy or hostile, against a coordinator running a real sweep with honest workers:
/// each test asserts the coordinator keeps running, the sweep's tasks finish, and the journal
/// holds only records from lease holders.
final class HostilePeerTests: XCTestCase {
    var cluster: LocalCluster!
    var context: ZMQContext!

    override func setUpWithError() throws {
        cluster = try LocalCluster(trials: 1, sparsities: "[0.3, 0.6]", fineTuneEpochs: 2, baselineEpochs: 2)
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: cluster.binary.path), "apsweep is not built next to the tests")
        context = try ZMQContext()
    }

    override func tearDown() {
        cluster.shutdown()
        context.close()
    }

    func dealer(_ identity: String? = nil) throws -> DealerEndpoint { try DealerEndpoint(context: context, connect: cluster.endpoint, identity: identity) }

    /// The coordinator's status, asked over the wire (its loop runs on another thread).
    func status() throws -> StatusReply {
        let d = try dealer()
        defer { d.socket.close() }
        try d.send(.statusRequest(StatusRequest()))
        let until = Date().addingTimeInterval(10)
        while Date() < until { if case let .statusReply(r)? = try d.receive(timeoutMs: 100)?.message { return r } }
        throw NSError(domain: "apsweep-test", code: 3, userInfo: [NSLocalizedDescriptionKey: "no status reply"])
    }

    func hello(_ d: DealerEndpoint, _ id: String) throws {
        var h = Hello()
        h.workerID = id; h.softwareVersion = "hostile"; h.incarnation = 1
        let whole = try SyntheticBlocks.shard()
        let fp = Shard(name: "synthetic", train: whole.train, test: whole.test).fingerprint
        h.data = [DataHolding(dataset: "synthetic", shardIndex: 0, shardCount: 1, fingerprint: fp)]
        try d.send(.hello(h))
    }

    /// Messages the dealer received within `ms`.
    func drain(_ d: DealerEndpoint, _ ms: Int = 300) -> [Message] {
        var out: [Message] = []
        let until = Date().addingTimeInterval(Double(ms) / 1000)
        while Date() < until { if let e = try? d.receive(timeoutMs: 20) { out.append(e.message) } }
        return out
    }

    func finishWithHonestWorkers() throws {
        try cluster.startWorker("honest-1")
        try cluster.startWorker("honest-2")
        try cluster.waitUntil(180, "the sweep to finish") { try cluster.tasks().allSatisfy { $0.state == .done || $0.state == .failed } }
        let tasks = try cluster.tasks()
        XCTAssertEqual(tasks.filter { $0.state == .done }.count, tasks.count, "every task done")
        XCTAssert(tasks.allSatisfy { $0.worker?.hasPrefix("honest") == true }, "only honest workers finished tasks: \(tasks.map { $0.worker ?? "-" })")
        if let outcome = cluster.outcome {
            XCTAssertEqual(outcome, .complete(done: tasks.count, failed: 0), "the coordinator ended only because the sweep was complete")
        }
    }

    /// Status clients that go away before their answer, and one that never reads its replies,
    /// do not stop the coordinator (seen before: `send: Host unreachable` and `Resource
    /// temporarily unavailable` ended it).
    func testStatusClientsThatVanishOrNeverReadAreHarmless() throws {
        _ = try cluster.startCoordinator()
        for _ in 0..<200 {
            let d = try dealer()
            try d.send(.statusRequest(StatusRequest(includeCorrelations: true)))
            d.socket.close()
        }
        let flood = try dealer()
        for _ in 0..<30_000 { try flood.send(.statusRequest(StatusRequest())) }
        // The flood arrives asynchronously; it is answered while no worker is there yet (the
        // coordinator exits when the sweep completes, so the count is read before that).
        var answered = 0
        try cluster.waitUntil(30, "the flood's status requests to be answered") {
            answered = Int(try self.status().counter("status-requests"))
            return answered > 1000
        }
        XCTAssertGreaterThan(answered, 1000)
        try finishWithHonestWorkers()
        flood.socket.close()
    }

    /// A worker that holds a lease sends a Result with a duplicate epoch, NaN, too many records:
    /// refused by name (INVALID_RESULT), the coordinator keeps running, the task is redone.
    func testMalformedResultsAreRefusedAndTheTaskIsRedone() throws {
        _ = try cluster.startCoordinator()
        let d = try dealer("mallory")
        try hello(d, "mallory")
        try d.send(.ready(Ready(slots: 1)))
        var assign: Assign?
        let until = Date().addingTimeInterval(10)
        while assign == nil && Date() < until { if case let .assign(a)? = try d.receive(timeoutMs: 100)?.message { assign = a } }
        let a = try XCTUnwrap(assign, "mallory got a lease")
        var r = TaskResult()
        r.taskID = a.taskID; r.attempt = a.attempt
        var e1 = EpochRecord(epoch: 1); e1.trainAccuracy = 50; e1.testAccuracy = 50
        r.records = [e1, e1]
        try d.send(.result(r))
        let replies = drain(d, 500)
        let reject = replies.compactMap { m -> Reject? in if case let .reject(x) = m { return x }; return nil }.first
        XCTAssertEqual(reject?.code, .invalidResult, "\(replies.map(\.name))")
        XCTAssert(reject?.reason.contains("epoch 1 appears twice") == true, reject?.reason ?? "")
        d.socket.close()
        try finishWithHonestWorkers()
        let journal = try cluster.journal()
        defer { journal.close() }
        XCTAssertEqual(try journal.tasks().first { $0.task.id == a.taskID }?.row.failures, 1, "the invalid result counted against the attempt")
    }

    /// Results, failures and progress for tasks the sender does not hold are refused, and never
    /// change a task (seen before: a forged Result marked a blocked task DONE and a forged
    /// Failure FAILed another worker's task).
    func testForgedResultsAndFailuresAreRefused() throws {
        _ = try cluster.startCoordinator()
        try cluster.startWorker("honest-1")
        try cluster.waitUntil(60, "a lease of honest-1") { try cluster.tasks().contains { $0.state == .leased } }
        let target = try XCTUnwrap(try cluster.tasks().first { $0.state == .leased })
        let blocked = try XCTUnwrap(try cluster.tasks().first { $0.state == .blocked })
        let d = try dealer("forger")
        try hello(d, "forger")
        var forged = TaskResult()
        forged.taskID = target.id; forged.attempt = UInt32(target.attempt)
        forged.records = [EpochRecord(epoch: 1), EpochRecord(epoch: 2)]
        try d.send(.result(forged))
        forged.taskID = blocked.id; forged.attempt = 1
        try d.send(.result(forged))
        try d.send(.failure(Failure(taskID: target.id, attempt: UInt32(target.attempt), reason: "sabotage", retryable: false)))
        try d.send(.progress(Progress(taskID: target.id, attempt: UInt32(target.attempt), records: [EpochRecord(epoch: 1)])))
        let rejects = drain(d, 800).compactMap { m -> Reject? in if case let .reject(x) = m { return x }; return nil }
        XCTAssertEqual(rejects.map(\.code), [.notLeaseHolder, .notLeaseHolder, .notLeaseHolder, .notLeaseHolder])
        XCTAssertEqual(Set(rejects.map(\.taskID)), [target.id, blocked.id])
        d.socket.close()
        try finishWithHonestWorkers()
        XCTAssertEqual(try cluster.tasks().first { $0.id == target.id }?.failures, 0, "the forged Failure counted nothing")
    }

    /// Sizes are bounded before work is done on them: a million-record Result, a 12 MiB chunk,
    /// a BlobRequest without a hash — each refused at once, the loop keeps serving heartbeats.
    func testOversizedAndEmptyMessagesAreRefusedCheaply() throws {
        _ = try cluster.startCoordinator()
        let d = try dealer("bulky")
        try hello(d, "bulky")
        _ = drain(d, 200)
        var huge = TaskResult()
        huge.taskID = "x"; huge.attempt = 1
        huge.records = Array(repeating: EpochRecord(epoch: 1), count: 200_000)
        let started = Date()
        try d.send(.result(huge))
        try hello(d, "bulky")   // encoding these took the test a while: still alive
        try d.send(.blobChunk(BlobChunk(hash: String(repeating: "a", count: 64), offset: 0, totalSize: 12 << 20, data: [UInt8](repeating: 1, count: 12 << 20), last: true)))
        try hello(d, "bulky")
        try d.send(.blobRequest(BlobRequest(hash: "", offset: 0, maxBytes: 0)))
        let rejects = drain(d, 1500).compactMap { m -> Reject? in if case let .reject(x) = m { return x }; return nil }
        // The chunk comes from a worker holding no baseline lease: refused before its size is even
        // looked at (a lease holder's oversized chunk is LIMIT_EXCEEDED: SchedulerTests).
        XCTAssertEqual(rejects.map(\.code), [.limitExceeded, .notLeaseHolder, .malformed], rejects.map(\.reason).joined(separator: "; "))
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "refused without a stall")
        d.socket.close()
        try finishWithHonestWorkers()
    }

    /// 300,000 garbage frames are counted and journaled as a summary, not 300,000 events.
    func testAFloodOfGarbageBecomesOneSummary() throws {
        _ = try cluster.startCoordinator()
        let vandal = try dealer()
        for i in 0..<300_000 {
            while (try? vandal.sendRaw([[0xFF, UInt8(i & 0xFF), 0x01]])) == nil { usleep(1000) }   // at the high-water mark: wait
        }
        try cluster.waitUntil(120, "the flood read") { try self.status().counter("refused.MALFORMED") >= 300_000 }
        vandal.socket.close()
        try finishWithHonestWorkers()
        let journal = try cluster.journal()
        defer { journal.close() }
        XCTAssertLessThan(try journal.eventCount(), 500, "a summary, not an event per frame")
        XCTAssert(try journal.events(kind: "refused-summary").contains { $0.detail?.contains("refused.MALFORMED +") == true })
    }
}

/// SIGTERM/SIGINT of `apsweep coordinator`: every live worker gets Shutdown, leases are released
/// without counting, the stop is journaled, and the process exits 0 (seen before: exit 0 telling
/// nobody, leases left LEASED, workers running on for nothing).
final class CoordinatorShutdownTests: XCTestCase {
    func testSIGTERMShutsWorkersDownAndReleasesLeases() throws {
        let cluster = try LocalCluster(trials: 1, baselineEpochs: 300)
        defer { cluster.shutdown() }
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: cluster.binary.path), "apsweep is not built next to the tests")
        try cluster.startCoordinatorProcess(port: try freePort())
        try cluster.startWorker("w")
        try cluster.waitUntil(60, "a lease") { try cluster.tasks().contains { $0.state == .leased } }
        let coordinator = try XCTUnwrap(cluster.coordinatorProcess)
        kill(coordinator.processIdentifier, SIGTERM)
        coordinator.waitUntilExit()
        XCTAssertEqual(coordinator.terminationStatus, 0)
        let worker = try XCTUnwrap(cluster.workers["w"])
        let deadline = Date().addingTimeInterval(10)
        while worker.isRunning && Date() < deadline { usleep(50_000) }
        XCTAssertFalse(worker.isRunning, "the worker was told to stop")
        XCTAssertEqual(worker.terminationStatus, 0)
        let log = try String(contentsOfFile: "\(cluster.dir)/w.log", encoding: .utf8)
        XCTAssert(log.contains("coordinator stopping"), log)
        let journal = try cluster.journal()
        defer { journal.close() }
        XCTAssertEqual(try journal.tasks().filter { $0.row.state == .leased }.count, 0, "no lease left LEASED")
        XCTAssertEqual(try journal.tasks().map(\.row.failures).reduce(0, +), 0)
        XCTAssertEqual(try journal.events(kind: "coordinator-stop").count, 1)
    }
}

/// The loop never kills live workers: a coordinator stopped for 10 s (SIGSTOP; liveness 1.2 s)
/// declares nobody dead when it resumes and counts no attempt — it reads the queued heartbeats
/// before it judges silence, and knows it was itself away.
final class LoopStallTests: XCTestCase {
    func testATenSecondStallDeclaresNoLiveWorkerDead() throws {
        let cluster = try LocalCluster(trials: 1, sparsities: "[0.3, 0.6, 0.9]", baselineEpochs: 200)
        defer { cluster.shutdown() }
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: cluster.binary.path), "apsweep is not built next to the tests")
        try cluster.startCoordinatorProcess(port: try freePort())
        try cluster.startWorker("a")
        try cluster.startWorker("b")
        try cluster.waitUntil(60, "a lease") { try cluster.tasks().contains { $0.state == .leased } }
        let coordinator = try XCTUnwrap(cluster.coordinatorProcess)
        kill(coordinator.processIdentifier, SIGSTOP)
        sleep(10)
        kill(coordinator.processIdentifier, SIGCONT)
        try cluster.waitUntil(300, "the sweep to finish") { try cluster.tasks().allSatisfy { $0.state == .done } }
        let journal = try cluster.journal()
        defer { journal.close() }
        XCTAssertEqual(try journal.events(kind: "worker-dead").count, 0, "nobody declared dead for the coordinator's own absence")
        XCTAssertEqual(try journal.tasks().map(\.row.failures).reduce(0, +), 0, "no attempt counted")
        XCTAssertEqual(try journal.leases().count, try journal.tasks().count, "no task leased twice")
    }

    /// `coordinator --stay` after completion, then SIGINT: exit 0, no error.
    func testSIGINTOfAStayingCoordinatorExitsCleanly() throws {
        let cluster = try LocalCluster(trials: 1, sparsities: "[0.5]", fineTuneEpochs: 1, baselineEpochs: 1)
        defer { cluster.shutdown() }
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: cluster.binary.path), "apsweep is not built next to the tests")
        let port = try freePort()
        let p = Process()
        p.executableURL = cluster.binary
        p.arguments = ["coordinator", cluster.sweepPath, "--bind", "tcp://127.0.0.1:\(port)", "--journal", cluster.journalPath, "--insecure", "--stay",
                       "--heartbeat-ms", "200", "--liveness-ms", "1200", "--lease-ms", "2400"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        cluster.endpoint = "tcp://127.0.0.1:\(port)"
        try cluster.startWorker("w")
        try cluster.waitUntil(120, "the sweep to finish") { try cluster.tasks().allSatisfy { $0.state == .done } }
        usleep(500_000)
        XCTAssertTrue(p.isRunning, "--stay keeps it running")
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertFalse(stderr.contains("Interrupted system call"), stderr)
        XCTAssertFalse(stderr.contains("Error"), stderr)
    }
}
