import BlobStore
@testable import Coordinator
import Datasets
import Experiment
import Foundation
import Journal
import Messages
import NeuralCore
import Scheduling
import Wire
import XCTest

/// A sweep on this machine: the coordinator in this process (or as `apsweep coordinator`), workers
/// as `apsweep worker` processes on loopback. Timers are short so failures are detected in
/// seconds; every wait has a deadline, and every process is killed at the end.
final class LocalCluster {
    let dir: String
    let binary: URL
    var workers: [String: Process] = [:]
    var coordinatorThread: Thread?
    var coordinatorProcess: Process?
    var stopFlag = AtomicFlag()
    /// How the in-process coordinator's run ended (nil while it runs).
    var outcome: CoordinatorOutcome? { outcomeBox.value }
    let outcomeBox = OutcomeBox()
    var endpoint = ""
    var journalPath: String { dir + "/sweep.db" }
    var sweepPath: String { dir + "/sweep.yaml" }
    let baselineEpochs: Int, fineTuneEpochs: Int

    /// `pinned`: the sweep file fixes the fingerprint of `whole.apshard`; `other.apshard` holds
    /// other data under the same name and shard.
    init(shards: Int = 1, trials: Int = 2, sparsities: String = "[0.3, 0.6]", fineTuneEpochs: Int = 2, baselineEpochs: Int = 2,
         pinned: Bool = false) throws {
        self.baselineEpochs = baselineEpochs
        self.fineTuneEpochs = fineTuneEpochs
        dir = NSTemporaryDirectory() + "apsweep-cluster-\(getpid())-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("apsweep")
        let whole = try SyntheticBlocks.shard()
        for k in 0..<shards {
            try ShardFile.write(Shard(name: "synthetic", index: k, of: shards, train: whole.train, test: whole.test), to: "\(dir)/shard-\(k).apshard")
        }
        let wholeShard = Shard(name: "synthetic", train: whole.train, test: whole.test)
        try ShardFile.write(wholeShard, to: "\(dir)/whole.apshard")
        let other = try SyntheticBlocks.shard(seed: 7)
        try ShardFile.write(Shard(name: "synthetic", train: other.train, test: other.test), to: "\(dir)/other.apshard")
        let pins = pinned ? ", fingerprints: [\(wholeShard.fingerprint)]" : ""
        let yaml = """
            name: test
            data: {dataset: synthetic, shards: \(shards)\(pins)}
            models: [{architecture: lenet5, width: 0.5, input_shape: [1, 12, 12], classes: 4}]
            trials: \(trials)
            baseline: {epochs: \(baselineEpochs), batch: 16, lr: 0.05}
            prune:
              methods: [lowest, random]
              sparsities: \(sparsities)
              fine_tune: {epochs: \(fineTuneEpochs), batch: 16, lr: 0.05}
              metrics: [gaussian:sigma2=1]
            max_attempts: 4
            """
        try yaml.write(toFile: sweepPath, atomically: true, encoding: .utf8)
    }

    var planSize: Int { (try? Plan(SweepFile.load(path: sweepPath)).entries.count) ?? 0 }

    /// The coordinator in this process, on its own thread.
    func startCoordinator(heartbeatMs: Int64 = 200, livenessMs: Int64 = 1200, leaseMs: Int64 = 2400) throws -> SweepCoordinator {
        let sweep = try SweepFile.load(path: sweepPath)
        let journal = try SweepJournal.openForWriting(journalPath)
        let plan = try Plan(sweep)
        try journal.storePlan(plan.planned, pins: plan.fingerprints, sweepText: "", sweepID: "test")
        var config = CoordinatorConfig(bind: "tcp://127.0.0.1:*")
        config.scheduler.heartbeatMs = heartbeatMs; config.scheduler.livenessMs = livenessMs; config.scheduler.leaseMs = leaseMs
        config.scheduler.maxAttempts = sweep.maxAttempts
        let coordinator = try SweepCoordinator(journal: journal, blobs: try BlobStore(directory: dir + "/blobs"), config: config)
        endpoint = coordinator.endpoint
        let flag = stopFlag
        let box = outcomeBox
        let thread = Thread { box.value = coordinator.run { flag.isSet ? "test stop" : nil }; journal.close() }
        thread.start()
        coordinatorThread = thread
        return coordinator
    }

    /// The coordinator as a process (`apsweep coordinator`), on a fixed port so workers find a restart.
    func startCoordinatorProcess(port: Int) throws {
        let p = Process()
        p.executableURL = binary
        p.arguments = ["coordinator", sweepPath, "--bind", "tcp://127.0.0.1:\(port)", "--journal", journalPath, "--insecure",
                       "--heartbeat-ms", "200", "--liveness-ms", "1200", "--lease-ms", "2400"]
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        coordinatorProcess = p
        endpoint = "tcp://127.0.0.1:\(port)"
    }

    func startWorker(_ id: String, shard: String = "whole.apshard") throws {
        let p = Process()
        p.executableURL = binary
        p.arguments = ["worker", "--connect", endpoint, "--insecure", "--shard", "\(dir)/\(shard)", "--id", id, "--cache", "\(dir)/cache-\(id)", "--threads", "1"]
        let log = "\(dir)/\(id).log"
        FileManager.default.createFile(atPath: log, contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: log)
        p.standardError = p.standardOutput
        try p.run()
        workers[id] = p
    }

    func kill(_ id: String) {
        guard let p = workers[id], p.isRunning else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    /// A task as the tests look at it: plan and row flattened.
    struct TaskView {
        var id: String, kind: String, label: String, spec: [UInt8], position: Int
        var state: TaskState, worker: String?, attempt: Int, failures: Int, handbacks: Int, lastError: String?
    }

    /// Task rows from the journal (a second, read-only connection; WAL lets it read while the coordinator writes).
    func tasks() throws -> [TaskView] {
        let j = try SweepJournal.openForReading(journalPath)
        defer { j.close() }
        return try j.tasks().enumerated().map { i, t in
            TaskView(id: t.task.id, kind: t.task.kind.rawValue, label: t.task.label, spec: t.task.spec, position: i, state: t.row.state,
                     worker: t.row.worker, attempt: t.row.attempt, failures: t.row.failures, handbacks: t.row.handbacks, lastError: t.row.lastError)
        }
    }

    func journal() throws -> SweepJournal { try SweepJournal.openForReading(journalPath) }

    func waitUntil(_ seconds: Double, _ what: String, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? condition()) == true { return }
            usleep(50_000)
        }
        throw NSError(domain: "apsweep-test", code: 1, userInfo: [NSLocalizedDescriptionKey: "timed out after \(seconds) s waiting for \(what)"])
    }

    func shutdown() {
        stopFlag.set()
        while let t = coordinatorThread, !t.isFinished { usleep(10_000) }
        if let p = coordinatorProcess, p.isRunning { Foundation.kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        for (_, p) in workers where p.isRunning { Foundation.kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: dir)
    }
}

final class OutcomeBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: CoordinatorOutcome?
    var value: CoordinatorOutcome? {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}

final class AtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}

final class ClusterTests: XCTestCase {
    var cluster: LocalCluster!

    override func setUpWithError() throws {
        cluster = try LocalCluster()
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: cluster.binary.path), "apsweep is not built next to the tests")
    }

    override func tearDown() { cluster.shutdown() }

    /// Every task done once, every expected record present once.
    func assertComplete(file: StaticString = #filePath, line: UInt = #line) throws {
        let tasks = try cluster.tasks()
        XCTAssertEqual(tasks.filter { $0.state == .done }.count, tasks.count, "every task done", file: file, line: line)
        let journal = try cluster.journal()
        defer { journal.close() }
        let (b, f) = (cluster.baselineEpochs, cluster.fineTuneEpochs)
        let expected = tasks.reduce(0) { n, t in n + (t.kind == "baseline" ? b : f + 1) }   // baseline epochs 1…b; prune epochs 0…f
        XCTAssertEqual(try journal.recordCount(), expected, "records", file: file, line: line)
        for t in tasks {
            let (records, damaged) = try journal.records(ofTask: t.position)
            XCTAssertEqual(damaged, [], file: file, line: line)
            XCTAssertEqual(records.map(\.epoch), t.kind == "baseline" ? Array(1...b) : Array(0...f), t.label, file: file, line: line)
        }
        let done = try journal.events(kind: "done").map(\.task)
        XCTAssertEqual(done.count, Set(done).count, "no task completed twice", file: file, line: line)
    }

    func testEndToEndSweepWithTwoWorkers() throws {
        _ = try cluster.startCoordinator()
        try cluster.startWorker("a")
        try cluster.startWorker("b")
        // A status client polls throughout: the counts always add up to the plan.
        let context = try ZMQContext()
        defer { context.close() }
        let client = try DealerEndpoint(context: context, connect: cluster.endpoint)
        defer { client.socket.close() }
        var polls = 0
        try cluster.waitUntil(180, "the sweep to finish") {
            try client.send(.statusRequest(StatusRequest()))
            if case let .statusReply(r)? = try client.receive(timeoutMs: 2000)?.message, let c = r.counts {
                XCTAssertEqual(c.done + c.running + c.queued + c.stale + c.failed + c.blocked, c.total)
                XCTAssertEqual(Int(c.total), cluster.planSize)
                polls += 1
            }
            return try cluster.tasks().allSatisfy { $0.state == .done || $0.state == .failed }
        }
        XCTAssertGreaterThan(polls, 0)
        try assertComplete()
        let workersUsed = Set(try cluster.tasks().compactMap(\.worker))
        XCTAssertEqual(workersUsed, ["a", "b"], "both workers got work")
    }

    /// SIGKILL a worker in the middle of a task; a worker that joins later takes the task over.
    func testKilledWorkersTaskIsReleasedAndFinishedByANewWorker() throws {
        // Long baselines, so the first worker is surely mid-task when it is killed.
        cluster.shutdown()
        cluster = try LocalCluster(trials: 1, baselineEpochs: 60)
        _ = try cluster.startCoordinator()
        try cluster.startWorker("doomed")
        try cluster.waitUntil(60, "a task leased to the first worker") { try cluster.tasks().contains { $0.state == .leased && $0.worker == "doomed" } }
        let victim = try XCTUnwrap(cluster.tasks().first { $0.state == .leased && $0.worker == "doomed" })
        usleep(1_000_000)   // several heartbeats (200 ms): the worker has confirmed it runs the task
        cluster.kill("doomed")
        try cluster.startWorker("rescuer")
        try cluster.waitUntil(180, "the sweep to finish") { try cluster.tasks().allSatisfy { $0.state == .done || $0.state == .failed } }
        try assertComplete()
        let after = try XCTUnwrap(cluster.tasks().first { $0.id == victim.id })
        XCTAssertEqual(after.worker, "rescuer")
        XCTAssertGreaterThanOrEqual(after.attempt, 2, "a second lease")
        XCTAssertEqual(after.failures, 1, "the killed attempt counts against the task (its worker died while running it)")
        let journal = try cluster.journal()
        defer { journal.close() }
        XCTAssert(try journal.events(kind: "worker-dead").contains { $0.worker == "doomed" })
        XCTAssert(try journal.events(kind: "stale").contains { $0.task == victim.id })
    }

    /// SIGTERM (Slurm's preemption): the worker hands its task back at once as a retryable failure.
    func testSIGTERMHandsTheTaskBackAtOnce() throws {
        cluster.shutdown()
        cluster = try LocalCluster(trials: 1, baselineEpochs: 60)
        _ = try cluster.startCoordinator(heartbeatMs: 200, livenessMs: 30_000, leaseMs: 60_000)   // liveness far away
        try cluster.startWorker("preempted")
        try cluster.waitUntil(60, "a leased task") { try cluster.tasks().contains { $0.state == .leased } }
        let task = try XCTUnwrap(cluster.tasks().first { $0.state == .leased })
        let sent = Date()
        Foundation.kill(cluster.workers["preempted"]!.processIdentifier, SIGTERM)
        try cluster.waitUntil(10, "the task back in the queue") { try cluster.tasks().first { $0.id == task.id }?.state == .stale }
        XCTAssertLessThan(Date().timeIntervalSince(sent), 5, "re-queued long before the 30 s liveness window")
        cluster.workers["preempted"]!.waitUntilExit()
        XCTAssertEqual(cluster.workers["preempted"]!.terminationStatus, 0, "the worker exits cleanly")
        XCTAssert(try cluster.journal().events(kind: "failure-retry").contains { $0.task == task.id })
        XCTAssertEqual(try cluster.tasks().first { $0.id == task.id }?.failures, 0, "a hand-back is not a failure of the task")
        try cluster.startWorker("next")
        try cluster.waitUntil(180, "the sweep to finish") { try cluster.tasks().allSatisfy { $0.state == .done || $0.state == .failed } }
        try assertComplete()
    }

    /// Garbage on the coordinator's port during a sweep: refused and logged, the sweep completes.
    func testGarbageFramesDoNotDisturbASweep() throws {
        _ = try cluster.startCoordinator()
        try cluster.startWorker("a")
        let context = try ZMQContext()
        defer { context.close() }
        let vandal = try DealerEndpoint(context: context, connect: cluster.endpoint)
        for i in 0..<200 { try vandal.sendRaw([[UInt8](repeating: UInt8(i % 256), count: i % 97)]) }
        try vandal.send(.ready(Ready()), version: 99)
        try cluster.waitUntil(180, "the sweep to finish") { try cluster.tasks().allSatisfy { $0.state == .done || $0.state == .failed } }
        vandal.socket.close()
        try assertComplete()
        // Refused frames are counted, and journaled as one summary, not one event each.
        let summaries = try cluster.journal().events(kind: "refused-summary")
        XCTAssertFalse(summaries.isEmpty)
        XCTAssert(summaries.contains { $0.detail?.contains("refused.MALFORMED") == true }, "\(summaries.map(\.detail))")
        XCTAssertLessThan(try cluster.journal().eventCount(), 200, "200 garbage frames did not become 200 events")
    }
}

final class ShardPlacementTests: XCTestCase {
    /// Tasks on shard k go only to workers holding shard k (with the pinned fingerprint).
    func testWorkersOnlyGetTasksForShardsTheyHold() throws {
        let cluster = try LocalCluster(shards: 2, trials: 2, sparsities: "[0.5]", fineTuneEpochs: 1, baselineEpochs: 1)
        defer { cluster.shutdown() }
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: cluster.binary.path), "apsweep is not built next to the tests")
        _ = try cluster.startCoordinator()
        try cluster.startWorker("zero", shard: "shard-0.apshard")
        try cluster.startWorker("one", shard: "shard-1.apshard")
        try cluster.waitUntil(180, "the sweep to finish") { try cluster.tasks().allSatisfy { $0.state == .done || $0.state == .failed } }
        for t in try cluster.tasks() {
            let spec = try SweepTask.decode(t.spec)
            XCTAssertEqual(t.state, .done)
            XCTAssertEqual(t.worker, spec.shardIndex == 0 ? "zero" : "one", t.label)
        }
    }
}

extension ClusterTests {
    /// A sweep file that fixes its data's fingerprint: a worker holding other data under the same
    /// name connects first and still gets nothing (the journal says why); the right worker runs all.
    func testPinnedFingerprintKeepsAWorkerWithOtherDataIdle() throws {
        let cluster = try LocalCluster(trials: 1, sparsities: "[0.5]", fineTuneEpochs: 1, baselineEpochs: 1, pinned: true)
        defer { cluster.shutdown() }
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: cluster.binary.path), "apsweep is not built next to the tests")
        _ = try cluster.startCoordinator()
        try cluster.startWorker("other", shard: "other.apshard")
        try cluster.waitUntil(30, "the other worker's data-mismatch event") {
            try cluster.journal().events(kind: "data-mismatch").contains { $0.worker == "other" }
        }
        try cluster.startWorker("right")
        try cluster.waitUntil(180, "the sweep to finish") { try cluster.tasks().allSatisfy { $0.state == .done || $0.state == .failed } }
        for t in try cluster.tasks() {
            XCTAssertEqual(t.state, .done, t.label)
            XCTAssertEqual(t.worker, "right", t.label)
        }
    }
}

final class CoordinatorRestartTests: XCTestCase {
    /// SIGKILL the coordinator mid-sweep and restart it on the same journal: workers reconnect by
    /// themselves, the sweep completes, and nothing finished before the crash runs again.
    func testCoordinatorKilledAndRestartedResumesWithoutRerunning() throws {
        let cluster = try LocalCluster(trials: 2, sparsities: "[0.2, 0.4, 0.6]")
        defer { cluster.shutdown() }
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: cluster.binary.path), "apsweep is not built next to the tests")
        let port = try freePort()
        try cluster.startCoordinatorProcess(port: port)
        try cluster.startWorker("a")
        try cluster.startWorker("b")
        try cluster.waitUntil(120, "some tasks done") { (try? cluster.tasks().filter { $0.state == .done }.count) ?? 0 >= 4 }
        Foundation.kill(cluster.coordinatorProcess!.processIdentifier, SIGKILL)
        cluster.coordinatorProcess!.waitUntilExit()
        let doneBefore = Set(try cluster.tasks().filter { $0.state == .done }.map(\.id))
        let journal = try cluster.journal()
        let leasesBefore = try journal.events(kind: "leased").filter { doneBefore.contains($0.task ?? "") }.count
        try cluster.startCoordinatorProcess(port: port)
        try cluster.waitUntil(180, "the sweep to finish after the restart") {
            try cluster.tasks().allSatisfy { $0.state == .done || $0.state == .failed }
        }
        let tasks = try cluster.tasks()
        XCTAssertEqual(tasks.filter { $0.state == .done }.count, tasks.count,
                       "failed: \(tasks.filter { $0.state == .failed }.map { "\($0.label): \($0.lastError ?? "")" })")
        XCTAssertEqual(try journal.events(kind: "leased").filter { doneBefore.contains($0.task ?? "") }.count, leasesBefore,
                       "no task finished before the crash was leased again")
        XCTAssertEqual(try journal.events(kind: "coordinator-start").count, 2)
    }

}

/// A TCP port free on loopback now.
func freePort() throws -> Int {
    let context = try ZMQContext()
    defer { context.close() }
    let s = try ZMQSocket(context, .router)
    defer { s.close() }
    try s.bind("tcp://127.0.0.1:*")
    return Int(s.lastEndpoint.split(separator: ":").last!)!
}

final class StatusCommandTests: XCTestCase {
    /// `apsweep status` against an address where nothing listens fails within its timeout, clearly.
    func testStatusAgainstADeadAddressFailsWithinItsTimeout() throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("apsweep")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary.path), "apsweep is not built next to the tests")
        let p = Process()
        p.executableURL = binary
        p.arguments = ["status", "--connect", "tcp://127.0.0.1:9", "--insecure", "--timeout", "1"]
        let pipe = Pipe()
        p.standardError = pipe
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        let start = Date()
        try p.run()
        p.waitUntilExit()
        let elapsed = Date().timeIntervalSince(start)
        let message = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertNotEqual(p.terminationStatus, 0)
        XCTAssertLessThan(elapsed, 5)
        XCTAssert(message.contains("no answer from tcp://127.0.0.1:9 within 1 s"), message)
    }
}
