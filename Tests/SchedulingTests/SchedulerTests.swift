import Digest
import Messages
import Records
import Scheduling
import XCTest

/// The scheduler's rules one at a time, driven by hand (no network, no clock): who may finish a
/// task, what is validated, what counts as an attempt, what a restart or a stop does.
final class SchedulerTests: XCTestCase {
    /// A scheduler over a memory journal, with helpers that play workers.
    final class Harness {
        var scheduler: Scheduler
        let journal: MemoryJournal
        var now: Int64 = 1_000_000
        var sent: [(to: String, message: Message)] = []
        let config: SchedulerConfig

        init(_ tasks: [PlannedTask], config: SchedulerConfig = SchedulerConfig()) {
            self.config = config
            journal = MemoryJournal(JournalState(sweepID: "t", tasks: tasks, rows: tasks.map { TaskRow(state: $0.dependsOn == nil ? .queued : .blocked) }))
            scheduler = Scheduler(restoring: journal.state, config: config, now: now)
            apply()
        }

        /// Commits the journal ops and collects the sends, as the coordinator's loop does.
        @discardableResult
        func apply() -> Effects {
            let e = scheduler.takeEffects()
            try? journal.apply(e.journal)
            sent += e.sends.map { (String(decoding: $0.peer, as: UTF8.self), $0.message) }
            return e
        }

        func send(_ from: String, _ m: Message, incarnation: UInt64 = 1) {
            scheduler.handle(.message(peer: Array(from.utf8), m, incarnation: incarnation), now: now)
            for io in scheduler.takeBlobIO() {
                if case let .write(uploader, chunk) = io, chunk.last {
                    scheduler.handle(.blobStored(hash: chunk.hash, size: chunk.totalSize, uploader: uploader), now: now)
                }
            }
            apply()
        }

        func hello(_ id: String, data: [DataHolding] = [], running: String = "", incarnation: UInt64 = 1) {
            var h = Hello()
            h.workerID = id; h.softwareVersion = "test"; h.data = data; h.runningTaskID = running; h.incarnation = incarnation
            send(id, .hello(h), incarnation: incarnation)
        }

        func join(_ id: String, data: [DataHolding] = []) {
            hello(id, data: data)
            send(id, .ready(Ready(slots: 1)))
        }

        /// Time passes in turns of the loop (100 ms each), as in the coordinator.
        func tick(_ ms: Int64) {
            var left = ms
            while left > 0 {
                let step = min(100, left)
                now += step
                left -= step
                scheduler.handle(.tick, now: now)
                apply()
            }
        }

        /// One turn of the loop after `ms` without any (a stall, a paused VM).
        func stall(_ ms: Int64) {
            now += ms
            scheduler.handle(.tick, now: now)
            apply()
        }

        /// The Assigns sent to `id` (and forgets them).
        func assigns(_ id: String) -> [Assign] {
            defer { sent.removeAll { $0.to == id && { if case .assign = $0 { return true }; return false }($0.message) } }
            return sent.compactMap { s in if s.to == id, case let .assign(a) = s.message { return a }; return nil }
        }

        func rejects(_ id: String) -> [Reject] {
            sent.compactMap { s in if s.to == id, case let .reject(r) = s.message { return r }; return nil }
        }

        func row(_ id: String) -> TaskRow { scheduler.row(of: id)! }
    }

    static func noop(_ n: Int) -> [PlannedTask] {
        (0..<n).map { PlannedTask(id: "n\($0)", kind: .noop, label: "noop \($0)", spec: [], dependsOn: nil, data: nil, epochs: nil) }
    }

    static func record(_ e: Int) -> EpochRecord {
        var r = EpochRecord(epoch: e)
        r.trainAccuracy = 90; r.testAccuracy = 88; r.pdTest = 2; r.pdTrain = 1
        r.totalMetrics = MetricValues(key: "total", values: [("ap2", 0.5)])
        return r
    }

    static func result(_ a: Assign, records: [EpochRecord] = []) -> TaskResult {
        var r = TaskResult()
        r.taskID = a.taskID; r.attempt = a.attempt; r.records = records
        return r
    }

    func testOnlyTheLeaseHolderMayFinishOrFailATask() {
        let h = Harness([PlannedTask(id: "p", kind: .prune, label: "p", spec: [], dependsOn: nil, data: nil, epochs: 0...1),
                         PlannedTask(id: "q", kind: .prune, label: "q", spec: [], dependsOn: nil, data: nil, epochs: 0...1)])
        h.join("honest")
        let a = try! XCTUnwrap(h.assigns("honest").first)
        h.hello("forger")
        // A Result for the other worker's task, a Failure for it, and a Result for a task never leased.
        h.send("forger", .result(Self.result(a, records: [Self.record(0), Self.record(1)])))
        h.send("forger", .failure(Failure(taskID: a.taskID, attempt: a.attempt, reason: "sabotage", retryable: false)))
        var never = TaskResult(); never.taskID = a.taskID == "p" ? "q" : "p"; never.attempt = 1
        h.send("forger", .result(never))
        XCTAssertEqual(h.rejects("forger").map(\.code), [.notLeaseHolder, .notLeaseHolder, .notLeaseHolder])
        XCTAssertEqual(h.scheduler.state(of: a.taskID), .leased, "still the honest worker's")
        XCTAssertEqual(h.scheduler.state(of: never.taskID), .queued)
        XCTAssert(h.journal.records.isEmpty, "nothing the forger sent was journaled")
        // The holder's own Result with the wrong attempt is refused too; the right one is taken.
        var wrong = Self.result(a, records: [Self.record(0), Self.record(1)]); wrong.attempt = a.attempt + 5
        h.send("honest", .result(wrong))
        XCTAssertEqual(h.rejects("honest").last?.code, .notLeaseHolder)
        h.send("honest", .result(Self.result(a, records: [Self.record(0), Self.record(1)])))
        XCTAssertEqual(h.scheduler.state(of: a.taskID), .done)
        XCTAssertEqual(h.scheduler.counters["rejects.NOT_LEASE_HOLDER"], 4)
    }

    /// Records are validated before anything is journaled: a bad one fails the attempt as the
    /// worker's fault and never reaches the journal.
    func testResultsAreValidatedBeforeTheyAreJournaled() {
        let task = PlannedTask(id: "p", kind: .prune, label: "p", spec: [], dependsOn: nil, data: nil, epochs: 0...2)
        var nan = Self.record(1); nan.trainLoss = .nan
        var negative = Self.record(1); negative.totalMetrics = MetricValues(key: "total", values: [("ap2", -1)])
        var percent = Self.record(1); percent.testAccuracy = 140
        var inf = Self.record(1); inf.layerMetrics = [MetricValues(key: "fc", values: [("ap3[gaussian:sigma2=1]", .infinity)])]
        var twice = Self.record(1); twice.layerMetrics = [MetricValues(key: "fc", values: [("ap2", 1), ("ap3[gaussian:sigma2=1]", 2), ("ap2", 3)])]
        // A long list (a hostile peer's) is checked with a set, and still caught.
        var longTwice = Self.record(1)
        longTwice.layerMetrics = [MetricValues(key: "fc", values: (0..<1000).map { ("m\($0)", 1.0) } + [("m500", 1.0)])]
        let bad: [([EpochRecord], String)] = [
            ([Self.record(0), nan, Self.record(2)], "train_loss is nan"),
            ([Self.record(0), negative, Self.record(2)], "a divergence must be ≥ 0"),
            ([Self.record(0), percent, Self.record(2)], "test_accuracy is 140.0"),
            ([Self.record(0), inf, Self.record(2)], "must be finite"),
            ([Self.record(0), twice, Self.record(2)], "fc has ap2 twice"),
            ([Self.record(0), longTwice, Self.record(2)], "fc has m500 twice"),
            ([Self.record(0), Self.record(1), Self.record(1)], "epoch 1 appears twice"),
            ([Self.record(0), Self.record(1), Self.record(7)], "epoch 7 is outside 0…2"),
            ([], "0 of 3 records"),
            ((0...2).map(Self.record) + [Self.record(3)], "4 records for a task that produces 3"),
        ]
        var config = SchedulerConfig()
        config.maxAttempts = 100
        let h = Harness([task], config: config)
        h.join("w")
        for (records, why) in bad {
            let a = try! XCTUnwrap(h.assigns("w").last, why)
            h.send("w", .result(Self.result(a, records: records)))
            let r = try! XCTUnwrap(h.rejects("w").last)
            XCTAssertEqual(r.code, .invalidResult, why)
            XCTAssert(r.reason.contains(why), "\(why): \(r.reason)")
            XCTAssertNotEqual(h.scheduler.state(of: "p"), .done)
            XCTAssert(h.journal.records.isEmpty, "\(why): a malformed record reached the journal")
        }
        XCTAssertEqual(h.row("p").failures, bad.count, "each invalid result is the worker's fault")
        // A Monte Carlo estimate may come out below 0; a record with one is valid.
        var estimate = Self.record(1)
        estimate.layerMetrics = [MetricValues(key: "fc", values: [("ap2", 1), ("js[student-t:nu=3]", -0.002)])]
        let a = try! XCTUnwrap(h.assigns("w").last)
        h.send("w", .result(Self.result(a, records: [Self.record(0), estimate, Self.record(2)])))
        XCTAssertEqual(h.scheduler.state(of: "p"), .done)
    }

    /// A coordinator restart never counts an attempt: leases from before it wait one liveness
    /// window, and go back uncounted whether the worker comes back without the task or not at all.
    func testARestartNeverCountsAnAttempt() {
        let h = Harness(Self.noop(2))
        h.join("a")
        h.join("b")
        XCTAssertEqual(h.scheduler.count(.leased), 2)
        // Crash: a new scheduler from what was committed.
        h.scheduler = Scheduler(restoring: h.journal.state, config: h.config, now: h.now)
        h.apply()
        h.hello("a", running: "")                          // back without its task
        h.tick(h.config.livenessMs + 100)                 // b never comes back
        for id in ["n0", "n1"] {
            XCTAssertEqual(h.row(id).failures, 0, id)
            XCTAssertEqual(h.row(id).state, .stale, id)
        }
        XCTAssertEqual(h.journal.state.leases.compactMap(\.outcome), [.coordinatorRestart, .coordinatorRestart])
    }

    /// SIGTERM/SIGINT: every lease goes back uncounted, every live worker is told, and the stop
    /// is journaled, so the next start counts nothing either.
    func testAStopReleasesLeasesAndTellsTheWorkers() {
        let h = Harness(Self.noop(3))
        h.join("a"); h.join("b")
        h.scheduler.handle(.stop(reason: "SIGTERM"), now: h.now)
        let e = h.apply()
        XCTAssertTrue(e.finished)
        XCTAssertEqual(h.scheduler.count(.leased), 0)
        XCTAssertEqual(h.journal.state.rows.map(\.failures), [0, 0, 0])
        let shutdowns = h.sent.compactMap { s -> ShutdownCode? in if case let .shutdown(x) = s.message { return x.code }; return nil }
        XCTAssertEqual(shutdowns, [.coordinatorStopping, .coordinatorStopping])
        XCTAssertEqual(h.journal.events.last?.kind, "coordinator-stop")
        // Nothing is leased after a stop, even to a worker that asks.
        h.send("a", .ready(Ready(slots: 1)))
        XCTAssertEqual(h.assigns("a").count, 1, "only the one from before the stop")
    }

    /// Retryable failures (preemption, SIGTERM) do not count against max_attempts; a separate,
    /// larger cap stops a task that loops. Non-retryable ones count, and the task goes to a
    /// different worker when one is free.
    func testRetryableFailuresHaveTheirOwnCapAndFailuresMoveToAnotherWorker() {
        var config = SchedulerConfig()
        config.maxAttempts = 3
        config.maxHandbacks = 4
        let h = Harness(Self.noop(1), config: config)
        h.join("w")
        for i in 1...4 {
            let a = try! XCTUnwrap(h.assigns("w").last, "hand-back \(i)")
            h.send("w", .failure(Failure(taskID: a.taskID, attempt: a.attempt, reason: "preempted", retryable: true)))
            XCTAssertEqual(h.row("n0").failures, 0)
            XCTAssertEqual(h.row("n0").handbacks, i)
        }
        let a = try! XCTUnwrap(h.assigns("w").last)
        h.send("w", .failure(Failure(taskID: a.taskID, attempt: a.attempt, reason: "preempted again", retryable: true)))
        XCTAssertEqual(h.row("n0").state, .failed, "the 5th hand-back exceeds max_handbacks 4")
        XCTAssert(h.row("n0").lastError?.contains("handed back 5 times") == true, h.row("n0").lastError ?? "")

        // A task that failed on a worker goes to the other free worker, not straight back.
        let g = Harness(Self.noop(1), config: config)
        g.join("sick")
        g.join("healthy")
        let first = try! XCTUnwrap(g.assigns("sick").last)
        g.send("sick", .failure(Failure(taskID: first.taskID, attempt: first.attempt, reason: "CUDA out of memory", retryable: false)))
        XCTAssertEqual(g.assigns("sick").count, 0, "not straight back to the worker it failed on")
        XCTAssertEqual(g.assigns("healthy").count, 1)
        XCTAssertEqual(g.row("n0").failures, 1)
    }

    /// `--retry-failed` on a journal whose every task is done or FAILED: the restored scheduler
    /// announces the sweep complete, and the retry must take that back and lease the task again.
    func testRetryFailedOnACompleteJournalRunsTheTasksAgain() {
        var config = SchedulerConfig()
        config.maxAttempts = 1
        let h = Harness(Self.noop(2), config: config)
        h.join("w")
        for _ in 0..<2 {
            let a = try! XCTUnwrap(h.assigns("w").last)
            h.send("w", .failure(Failure(taskID: a.taskID, attempt: a.attempt, reason: "no variance file", retryable: false)))
        }
        XCTAssertEqual(h.scheduler.count(.failed), 2)
        // Restart with --retry-failed: restore, retry, then the first commit (as the coordinator does).
        h.scheduler = Scheduler(restoring: h.journal.state, config: config, now: h.now)
        h.scheduler.handle(.retryFailed, now: h.now)
        let e = h.apply()
        XCTAssertFalse(e.finished, "the retried tasks are still to run")
        XCTAssertFalse(h.scheduler.isFinished)
        XCTAssertEqual(h.scheduler.count(.queued), 2)
        XCTAssert(h.row("n0").failures == 0 && h.row("n1").failures == 0)
        h.join("w2")
        XCTAssertEqual(h.assigns("w2").count, 1, "a worker gets a retried task")
    }

    /// A baseline whose checkpoint every dependent cannot use is reported once, and its open
    /// dependents fail with it, instead of each failing max_attempts times.
    func testAnUnusableBaselineFailsItsDependentsOnce() {
        let key = DataKey(dataset: "d", shard: 0, count: 1)
        let base = PlannedTask(id: "b", kind: .baseline, label: "base", spec: [], dependsOn: nil, data: key, epochs: 1...1)
        let prunes = (0..<12).map { PlannedTask(id: "p\($0)", kind: .prune, label: "p\($0)", spec: [], dependsOn: "b", data: key, epochs: 0...1) }
        let h = Harness([base] + prunes)
        h.join("w", data: [DataHolding(dataset: "d", fingerprint: "f")])
        let a = try! XCTUnwrap(h.assigns("w").last)
        let checkpoint = [UInt8](repeating: 7, count: 100)
        let hash = SHA256Hasher.hex(checkpoint)
        h.send("w", .blobChunk(BlobChunk(hash: hash, offset: 0, totalSize: 100, data: checkpoint, last: true)))
        var r = Self.result(a, records: [Self.record(1)])
        r.checkpointHash = hash
        r.baseline = BaselineSummary(trainAccuracy: 95, testAccuracy: 90, trainLoss: 0.1, testLoss: 0.2)
        h.send("w", .result(r))
        XCTAssertEqual(h.row("b").state, .done)
        let p = try! XCTUnwrap(h.assigns("w").last)
        XCTAssertEqual(p.requiredBlobs, [hash])
        h.send("w", .failure(Failure(taskID: p.taskID, attempt: p.attempt, reason: "weight classifier.0 holds NaN", retryable: false, unusableBlob: hash)))
        XCTAssertEqual(h.scheduler.count(.failed), 12, "every dependent at once")
        XCTAssertEqual(h.journal.events.filter { $0.kind == "baseline-unusable" }.count, 1, "reported once")
        XCTAssert(h.journal.state.rows.dropFirst().allSatisfy { $0.lastError?.contains("baseline base") == true })
    }

    /// Sizes are bounded before work is done on them: chunks against max_chunk_bytes, blobs
    /// against max_blob_bytes, hashes checked; a blob request without a hash is refused, not a crash.
    func testUploadsAndBlobRequestsAreBounded() {
        var config = SchedulerConfig()
        config.maxChunkBytes = 1024
        config.maxBlobBytes = 4096
        let key = DataKey(dataset: "d", shard: 0, count: 1)
        let h = Harness([PlannedTask(id: "b", kind: .baseline, label: "base", spec: [], dependsOn: nil, data: key, epochs: 1...1)], config: config)
        h.join("w", data: [DataHolding(dataset: "d", fingerprint: "f")])
        _ = h.assigns("w")
        let hash = String(repeating: "ab", count: 32)
        h.send("w", .blobChunk(BlobChunk(hash: hash, offset: 0, totalSize: 2048, data: [UInt8](repeating: 0, count: 2048), last: true)))
        h.send("w", .blobChunk(BlobChunk(hash: hash, offset: 0, totalSize: 1 << 26, data: [1], last: false)))
        h.send("w", .blobChunk(BlobChunk(hash: "", offset: 0, totalSize: 1, data: [1], last: true)))
        h.send("w", .blobRequest(BlobRequest(hash: "", offset: 0, maxBytes: 0)))
        h.send("w", .blobRequest(BlobRequest(hash: hash, offset: 0, maxBytes: 0)))
        XCTAssertEqual(h.rejects("w").map(\.code), [.limitExceeded, .limitExceeded, .malformed, .malformed, .unknownBlob])
        XCTAssert(h.scheduler.takeBlobIO().isEmpty, "nothing was written")
        h.hello("stranger")
        h.send("stranger", .blobChunk(BlobChunk(hash: hash, offset: 0, totalSize: 1, data: [1], last: true)))
        XCTAssertEqual(h.rejects("stranger").last?.code, .notLeaseHolder, "uploads only from a baseline's lease holder")
    }

    /// A heartbeat from a worker the coordinator does not know (it restarted) is answered with
    /// HELLO_REQUIRED, which a worker recovers from; only VERSION_UNSUPPORTED and BAD_HELLO end it.
    func testUnknownWorkersAreAskedForHelloAndBadHellosRefused() {
        let h = Harness(Self.noop(1))
        h.send("ghost", .heartbeat(Heartbeat(taskID: "n0")))
        XCTAssertEqual(h.rejects("ghost").map(\.code), [.helloRequired])
        XCTAssertFalse(RejectCode.helloRequired.endsTheWorker)
        var bad = Hello(); bad.workerID = "not-me"
        h.send("me", .hello(bad))
        XCTAssertEqual(h.rejects("me").map(\.code), [.badHello])
        XCTAssertTrue(RejectCode.badHello.endsTheWorker)
        h.send("me", .welcome(Welcome()))
        XCTAssertEqual(h.rejects("me").last?.code, .wrongDirection)
    }

    /// A loop that stalled (or a clock that jumped) is not the workers' fault: no worker is
    /// declared dead for the time the coordinator itself was away.
    func testAStalledCoordinatorDeclaresNobodyDead() {
        let h = Harness(Self.noop(2))
        h.join("a"); h.join("b")
        h.tick(500)
        h.stall(10_000)   // ten seconds without a turn of the loop (liveness is 5 s)
        XCTAssertEqual(h.journal.events.filter { $0.kind == "worker-dead" }.count, 0)
        XCTAssertEqual(h.scheduler.count(.leased), 2)
        XCTAssertEqual(h.scheduler.counters["loop-stalls"], 1)
        h.tick(h.config.livenessMs + 500)   // and a real silence after it is still seen
        XCTAssertEqual(h.journal.events.filter { $0.kind == "worker-dead" }.count, 2)
    }

    /// Refused frames and rejects are counted and summarised in one event, not journaled each.
    func testRefusalsAreCountedAndSummarised() {
        var config = SchedulerConfig()
        config.summaryEveryMs = 1000
        let h = Harness(Self.noop(1), config: config)
        for _ in 0..<300 { h.scheduler.handle(.refused(peer: [1, 2], code: .malformed, reason: "garbage"), now: h.now) }
        h.tick(1500)
        XCTAssertEqual(h.scheduler.counters["refused.MALFORMED"], 300)
        let summaries = h.journal.events.filter { $0.kind == "refused-summary" }
        XCTAssertEqual(summaries.count, 1)
        XCTAssert(summaries.first?.detail?.contains("refused.MALFORMED +300") == true, "\(summaries)")
        XCTAssertLessThan(h.journal.events.count, 10)
    }

    /// Matching is indexed by data: workers holding only data no queued task needs cost nothing,
    /// and a task goes only to a worker holding its shard with the pinned fingerprint.
    func testTasksGoOnlyToWorkersHoldingTheirPinnedData() {
        let k0 = DataKey(dataset: "d", shard: 0, count: 2), k1 = DataKey(dataset: "d", shard: 1, count: 2)
        var tasks = (0..<3).map { PlannedTask(id: "a\($0)", kind: .noop, label: "", spec: [], dependsOn: nil, data: k0, epochs: nil) }
        tasks += (0..<3).map { PlannedTask(id: "b\($0)", kind: .noop, label: "", spec: [], dependsOn: nil, data: k1, epochs: nil) }
        let h = Harness(tasks)
        h.scheduler = Scheduler(restoring: JournalState(sweepID: "t", tasks: tasks, rows: tasks.map { _ in TaskRow(state: .queued) },
                                                        pins: [k1.pinKey: "right"]), config: h.config, now: h.now)
        h.join("stale", data: [DataHolding(dataset: "d", shardIndex: 1, shardCount: 2, fingerprint: "wrong")])
        h.join("zero", data: [DataHolding(dataset: "d", shardIndex: 0, shardCount: 2, fingerprint: "x")])
        XCTAssertEqual(h.assigns("stale").count, 0, "other data: nothing")
        XCTAssertEqual(h.assigns("zero").map(\.taskID), ["a0"])
        XCTAssertEqual(h.scheduler.status(StatusRequest(), now: h.now).workers.first { $0.workerID == "stale" }?.state, "other-data")
        h.join("one", data: [DataHolding(dataset: "d", shardIndex: 1, shardCount: 2, fingerprint: "right")])
        XCTAssertEqual(h.assigns("one").map(\.taskID), ["b0"])
    }

    /// Status is answered from counters kept as the sweep runs.
    func testStatusCountsAddUpAndNameTheCounters() {
        let h = Harness(Self.noop(5))
        h.join("a")
        let a = try! XCTUnwrap(h.assigns("a").last)
        h.send("a", .result(Self.result(a)))
        h.send("x", .statusRequest(StatusRequest(maxWorkers: 0)))
        guard case let .statusReply(r)? = h.sent.last(where: { $0.to == "x" })?.message else { return XCTFail("no reply") }
        let c = r.counts!
        XCTAssertEqual(c.done, 1); XCTAssertEqual(c.running, 1); XCTAssertEqual(c.queued, 3); XCTAssertEqual(c.total, 5)
        XCTAssertEqual(r.workers.map(\.state), ["busy"])
        XCTAssertEqual(r.counter("status-requests"), 1)
        XCTAssertGreaterThanOrEqual(r.etaSeconds, 0)
    }
}
