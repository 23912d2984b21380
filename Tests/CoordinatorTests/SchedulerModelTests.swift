@testable import Coordinator
import Experiment
import Foundation
import Wire
import XCTest

/// The scheduler and lease state machine against a small, obviously correct model, over many
/// seeded random event orders (as swift-collections tests a Deque against an Array).
///
/// Fake workers in this process speak the real protocol to a real coordinator (no-op tasks, short
/// timers). Each step picks a worker and an event — finish its task, fail it (retryable), fall
/// silent past the liveness window, come back, send a late duplicate result, join as a new worker —
/// and the model predicts what must hold: a finished task is never assigned again, a task is never
/// leased to two live workers at once, every task ends DONE exactly once (or FAILED after
/// max_attempts), and late results for finished tasks are dropped and counted.
final class SchedulerModelTests: XCTestCase {
    final class FakeWorker {
        let id: String
        let dealer: DealerEndpoint
        var current: Assign?
        var silentUntil: Date?
        var lastHeartbeat = Date.distantPast
        var finished: [String] = []
        init(_ id: String, _ context: ZMQContext, _ endpoint: String) throws {
            self.id = id
            dealer = try DealerEndpoint(context: context, connect: endpoint, identity: id)
        }
    }

    enum Expected { case open, done, failed }

    func testRandomEventOrdersAgainstTheModel() throws {
        for seed: UInt64 in 1...6 { try run(seed: seed) }
    }

    func run(seed: UInt64) throws {
        var rng = SeedRNG(seed)
        let dir = NSTemporaryDirectory() + "apsweep-model-\(getpid())-\(seed)"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let taskCount = 14, maxAttempts = 3
        let plan = try Plan.noop(count: taskCount, sleepMs: 0)
        let journal = try Journal(path: dir + "/j.db")
        try journal.storePlan(plan, sweepText: "")
        var config = CoordinatorConfig(bind: "tcp://127.0.0.1:*", blobDirectory: dir + "/blobs")
        config.heartbeatMs = 50; config.livenessMs = 1000; config.leaseMs = 2000; config.maxAttempts = maxAttempts
        let coordinator = try SweepCoordinator(journal: journal, config: config)
        let endpoint = coordinator.endpoint
        let stop = AtomicFlag()
        let thread = Thread { try? coordinator.run { stop.isSet } }
        thread.start()
        defer {
            stop.set()
            while !thread.isFinished { usleep(5000) }
        }
        let context = try ZMQContext()
        defer { context.close() }
        var workers: [FakeWorker] = []
        var model = Dictionary(uniqueKeysWithValues: plan.entries.map { ($0.id, Expected.open) })
        var failures = [String: Int]()
        var expectedDrops = 0
        var holder: [String: String] = [:]      // task → worker the model believes holds it
        var lastAssignAttempt: [String: UInt32] = [:]

        func join() throws {
            let w = try FakeWorker("w\(seed)-\(workers.count)", context, endpoint)
            var h = Hello()
            h.workerID = w.id; h.softwareVersion = "test"
            try w.dealer.send(.hello(h))
            workers.append(w)
        }
        /// Handles what the coordinator sent `w`, checking the model's invariants.
        func drain(_ w: FakeWorker) throws {
            while let e = try w.dealer.receive(timeoutMs: 0) {
                switch e.message {
                case .welcome: try w.dealer.send(.ready(Ready(slots: 1)))
                case let .assign(a):
                    XCTAssertEqual(model[a.taskID], .open, "seed \(seed): a \(model[a.taskID].map { "\($0)" } ?? "unknown") task was assigned")
                    if let other = holder[a.taskID], other != w.id, let o = workers.first(where: { $0.id == other }) {
                        XCTAssertNotNil(o.silentUntil, "seed \(seed): \(a.taskID.prefix(6)) leased to \(w.id) while \(other) is alive and holds it")
                    }
                    XCTAssertNil(w.current, "seed \(seed): a second task for busy \(w.id)")
                    XCTAssertLessThanOrEqual(Int(a.attempt), maxAttempts)
                    XCTAssertGreaterThan(a.attempt, lastAssignAttempt[a.taskID] ?? 0, "attempts grow")
                    lastAssignAttempt[a.taskID] = a.attempt
                    holder[a.taskID] = w.id
                    w.current = a
                case .shutdown, .heartbeatAck, .cancel: break
                case let .reject(r):
                    if r.reason.hasPrefix("HELLO_REQUIRED") {
                        var h = Hello(); h.workerID = w.id; h.softwareVersion = "test"
                        try w.dealer.send(.hello(h))
                    } else { XCTFail("seed \(seed): unexpected Reject \(r.reason)") }
                default: break
                }
            }
        }

        try join()
        try join()
        let deadline = Date().addingTimeInterval(60)
        while model.values.contains(.open) && Date() < deadline {
            let now = Date()
            for w in workers {
                if let until = w.silentUntil, now >= until {
                    // Back after the silence: a new Hello, its old lease is gone.
                    w.silentUntil = nil
                    w.current = nil
                    for (task, h) in holder where h == w.id { holder[task] = nil }
                    var h = Hello(); h.workerID = w.id; h.softwareVersion = "test"
                    try w.dealer.send(.hello(h))
                }
                guard w.silentUntil == nil else { continue }
                try drain(w)
                if now.timeIntervalSince(w.lastHeartbeat) > 0.04 {
                    try w.dealer.send(.heartbeat(Heartbeat(taskID: w.current?.taskID ?? "")))
                    w.lastHeartbeat = now
                }
            }
            let active = workers.filter { $0.silentUntil == nil }
            guard let w = active.isEmpty ? nil : active[Int(rng.next() % UInt64(active.count))] else { usleep(5000); continue }
            let roll = rng.next() % 100
            if roll < 5 && workers.count < 6 {
                try join()
            } else if let a = w.current {
                if roll < 60 {
                    var r = TaskResult(); r.taskID = a.taskID; r.attempt = a.attempt
                    if model[a.taskID] == .open { model[a.taskID] = .done } else { expectedDrops += 1 }
                    try w.dealer.send(.result(r))
                    w.finished.append(a.taskID)
                    w.current = nil
                } else if roll < 72 {
                    try w.dealer.send(.failure(Failure(taskID: a.taskID, attempt: a.attempt, reason: "model failure", retryable: true)))
                    failures[a.taskID, default: 0] += 1
                    holder[a.taskID] = nil
                    if Int(a.attempt) >= maxAttempts, model[a.taskID] == .open { model[a.taskID] = .failed }
                    w.current = nil
                } else if roll < 80 && active.count > 1 {
                    w.silentUntil = Date().addingTimeInterval(1.3)   // longer than the liveness window
                    if model[a.taskID] == .open, Int(a.attempt) >= maxAttempts { model[a.taskID] = .failed }
                }
            } else if roll < 85, let old = w.finished.last {
                var r = TaskResult(); r.taskID = old   // a duplicate, late result
                expectedDrops += 1
                try w.dealer.send(.result(r))
            }
            usleep(2000)
        }
        // Let the coordinator process the last messages.
        let settle = Date().addingTimeInterval(5)
        while Date() < settle {
            for w in workers where w.silentUntil == nil { try drain(w) }
            let states = try journal.loadTasks()
            if states.allSatisfy({ $0.state == .done || $0.state == .failed }) && coordinator.lateResultsDropped >= expectedDrops { break }
            usleep(20_000)
        }
        let final = try journal.loadTasks()
        for t in final {
            switch model[t.id]! {
            case .done: XCTAssertEqual(t.state, .done, "seed \(seed) \(t.id.prefix(6))")
            case .failed: XCTAssertEqual(t.state, .failed, "seed \(seed) \(t.id.prefix(6))")
            case .open: XCTFail("seed \(seed): the run ended with \(t.id.prefix(6)) still open (deadline)")
            }
            if t.state == .failed { XCTAssertEqual(t.attempt, maxAttempts, "failed only after max_attempts") }
        }
        let done = try journal.events(kind: "done").compactMap(\.task)
        XCTAssertEqual(done.count, Set(done).count, "seed \(seed): a task completed twice")
        XCTAssertEqual(coordinator.lateResultsDropped, expectedDrops, "seed \(seed): late results dropped and counted")
        XCTAssertGreaterThan(expectedDrops, 0, "seed \(seed) exercised late results")
        XCTAssertGreaterThan(failures.values.reduce(0, +), 0, "seed \(seed) exercised failures")
    }
}

/// A tiny seeded generator for the event orders.
struct SeedRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
}

/// A coordinator driven by hand from the test thread (no loop running): messages are handled
/// one by one, so a test can put the coordinator in a precise state before it acts.
final class HandDrivenCoordinator {
    let dir: String
    let journal: Journal
    let coordinator: SweepCoordinator
    let context: ZMQContext

    init(_ name: String, plan: Plan) throws {
        dir = NSTemporaryDirectory() + "apsweep-\(name)-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        journal = try Journal(path: dir + "/j.db")
        try journal.storePlan(plan, sweepText: "")
        coordinator = try SweepCoordinator(journal: journal, config: CoordinatorConfig(bind: "tcp://127.0.0.1:*", blobDirectory: dir + "/blobs"))
        context = try ZMQContext()
    }

    /// A worker socket that has said Hello (holding `data`).
    func worker(_ id: String, data: [DataHolding] = []) throws -> DealerEndpoint {
        let dealer = try DealerEndpoint(context: context, connect: coordinator.endpoint, identity: id)
        var hello = Hello()
        hello.workerID = id; hello.softwareVersion = "test"; hello.data = data
        try dealer.send(.hello(hello))
        return dealer
    }

    /// Handles the next `count` messages (within 5 s); returns how many arrived.
    func handle(_ count: Int) throws -> Int {
        var handled = 0
        let until = Date().addingTimeInterval(5)
        while handled < count && Date() < until {
            if let incoming = try coordinator.router.receive(timeoutMs: 50) { try coordinator.handle(incoming); handled += 1 }
        }
        return handled
    }

    func close() {
        coordinator.close()
        context.close()
        try? FileManager.default.removeItem(atPath: dir)
    }
}

/// A worker whose connection is gone by the time its Assign is sent (killed right after its last
/// message): the coordinator journals it dead at once, puts the task back, and does not count the
/// attempt that never left.
final class UnreachableWorkerTests: XCTestCase {
    func testAssignToAVanishedWorkerMarksItDeadWithoutCountingTheAttempt() throws {
        let hand = try HandDrivenCoordinator("unreachable", plan: try Plan.noop(count: 1, sleepMs: 0))
        defer { hand.close() }
        let dealer = try hand.worker("gone")
        try dealer.send(.ready(Ready(slots: 1)))
        // The coordinator takes in both messages (not scheduling yet), then the worker vanishes.
        XCTAssertEqual(try hand.handle(2), 2, "Hello and Ready reached the coordinator")
        dealer.socket.close()
        usleep(1_000_000)   // the ROUTER sees the connection close (milliseconds on loopback; margin for a loaded CI)
        try hand.coordinator.schedule(nowMs())
        let task = try XCTUnwrap(try hand.journal.loadTasks().first)
        XCTAssertEqual(task.state, .stale, "the task is back for another worker")
        XCTAssertEqual(task.attempt, 0, "the attempt that could not be sent is not counted")
        let dead = try hand.journal.events(kind: "worker-dead")
        XCTAssertEqual(dead.map(\.worker), ["gone"])
        XCTAssert(dead.first?.detail?.hasPrefix("unreachable") == true, dead.first?.detail ?? "no detail")
        XCTAssertFalse(hand.coordinator.workers["gone"]!.alive)
    }
}

/// A sweep that pins its data: a worker holding other data is journaled as `data-mismatch` and
/// shown as "other-data" in `status` (not as an idle worker); one holding the pinned data is idle.
final class PinnedDataStatusTests: XCTestCase {
    func testWorkerWithOtherDataIsShownAsSuch() throws {
        let right = String(repeating: "1f", count: 32), wrong = String(repeating: "2e", count: 32)
        let sweep = try SweepFile.parse("""
            data: {dataset: synthetic, fingerprints: [\(right)]}
            models: [{architecture: lenet5, width: 0.5, input_shape: [1, 12, 12], classes: 4}]
            prune: {methods: [lowest], sparsities: [0.5]}
            """)
        let hand = try HandDrivenCoordinator("pinned", plan: try Plan(sweep))
        defer { hand.close() }
        XCTAssertEqual(try hand.journal.meta(Plan.fingerprintKey(dataset: "synthetic", shard: 0, of: 1)), right, "pinned with the plan")
        var dealers: [DealerEndpoint] = []
        for (id, fingerprint) in [("stale-copy", wrong), ("good", right)] {
            dealers.append(try hand.worker(id, data: [DataHolding(dataset: "synthetic", fingerprint: fingerprint)]))
        }
        XCTAssertEqual(try hand.handle(2), 2)
        let states = Dictionary(uniqueKeysWithValues: hand.coordinator.status().workers.map { ($0.workerID, $0.state) })
        XCTAssertEqual(states, ["stale-copy": "other-data", "good": "idle"])
        XCTAssertEqual(try hand.journal.events(kind: "data-mismatch").map(\.worker), ["stale-copy"])
        // A resumed journal refuses a sweep file that pins other data.
        let other = try SweepFile.parse("""
            data: {dataset: synthetic, fingerprints: [\(wrong)]}
            models: [{architecture: lenet5, width: 0.5, input_shape: [1, 12, 12], classes: 4}]
            prune: {methods: [lowest], sparsities: [0.5]}
            """)
        XCTAssertThrowsError(try hand.journal.storePlan(try Plan(other), sweepText: "")) { error in
            XCTAssert("\(error)".contains("fix data.fingerprints or give a new --journal"), "\(error)")
        }
    }
}
