import Autoscaling
import XCTest

/// The autoscaling policy on a fake launcher: a pool of jobs that start when told, a clock the
/// test moves, workers that say Hello a moment after their job runs.
final class AutoscalerTests: XCTestCase {
    /// A launcher and cluster in memory: launched jobs pend for `startMs`, then run; their
    /// workers register as idle; a drained worker's job ends.
    final class FakeCluster {
        var jobs: [String: (worker: String, startAt: Int64, ended: Bool)] = [:]
        var next = 100
        var failLaunches = 0
        var launched = 0
        let startMs: Int64
        init(startMs: Int64 = 1000) { self.startMs = startMs }

        func launch(_ workers: [String], now: Int64) throws -> [String] {
            if failLaunches > 0 { failLaunches -= 1; throw NSError(domain: "sbatch", code: 1, userInfo: [NSLocalizedDescriptionKey: "sbatch: error: invalid partition"]) }
            return workers.map { w in
                next += 1
                jobs["\(next)"] = (w, now + startMs, false)
                launched += 1
                return "\(next)"
            }
        }

        func states(now: Int64) -> [String: (state: PoolJob.State, reason: String)] {
            var out: [String: (PoolJob.State, String)] = [:]
            for (id, j) in jobs where !j.ended { out[id] = now >= j.startAt ? (.running, "") : (.pending, "Resources") }
            return out
        }

        /// Registered workers: those whose job runs.
        func workers(now: Int64, busy: Set<String> = [], drained: Set<String> = []) -> [String: String] {
            var out: [String: String] = [:]
            for j in jobs.values where !j.ended && now >= j.startAt { out[j.worker] = drained.contains(j.worker) ? "draining" : busy.contains(j.worker) ? "busy" : "idle" }
            return out
        }

        var running: Int { jobs.values.filter { !$0.ended }.count }
    }

    /// One pass as the shell makes it: observe, decide, carry out.
    @discardableResult
    func pass(_ a: inout Autoscaler, _ c: FakeCluster, waiting: Int, finished: Bool = false, busy: Set<String> = [], now: Int64) -> [PoolDecision] {
        _ = a.observed(c.states(now: now), now: now)
        let decisions = a.decide(PoolView(waiting: waiting, finished: finished, workers: c.workers(now: now, busy: busy)), now: now)
        for d in decisions {
            switch d {
            case let .launch(workers):
                do { a.launched(Array(zip(try c.launch(workers, now: now), workers)).map { (job: $0.0, worker: $0.1) }, now: now) } catch { a.launchFailed("\(error)", now: now) }
            case let .drain(_, job, _), let .cancel(job, _):
                c.jobs[job]?.ended = true
            case .reportPending:
                break
            }
        }
        return decisions
    }

    func testAGrowingQueueLaunchesWorkersCappedByMaxAndBatchAndRate() {
        var config = AutoscaleConfig()
        config.maxWorkers = 5
        config.maxBatch = 3
        config.decisionIntervalMs = 10_000
        var a = Autoscaler(config: config)
        let c = FakeCluster()
        pass(&a, c, waiting: 40, now: 0)
        XCTAssertEqual(c.launched, 3, "one decision launches at most maxBatch")
        pass(&a, c, waiting: 40, now: 2000)
        XCTAssertEqual(c.launched, 3, "no second decision within the interval")
        pass(&a, c, waiting: 40, now: 10_000)
        XCTAssertEqual(c.launched, 5, "capped by maxWorkers")
        for t in stride(from: 12_000, through: 60_000, by: 2000) { pass(&a, c, waiting: 40, busy: Set(c.workers(now: Int64(t)).keys), now: Int64(t)) }
        XCTAssertEqual(c.launched, 5, "never more than maxWorkers held")
        XCTAssertEqual(a.summary(wanted: 5).running, 5)
    }

    func testIdleWorkersAreDrainedAfterTheTimeoutWhenNothingIsQueued() {
        var config = AutoscaleConfig()
        config.maxWorkers = 3
        config.idleTimeoutMs = 60_000
        config.minWorkers = 1
        var a = Autoscaler(config: config)
        let c = FakeCluster()
        pass(&a, c, waiting: 3, now: 0)
        XCTAssertEqual(c.running, 3)
        // Busy until t = 30 s, then the queue is empty and they idle.
        for t in stride(from: 2000, through: 30_000, by: 2000) { pass(&a, c, waiting: 0, busy: Set(c.workers(now: Int64(t)).keys), now: Int64(t)) }
        var drainedAt: Int64?
        for t in stride(from: 32_000, through: 120_000, by: 2000) {
            let d = pass(&a, c, waiting: 0, now: Int64(t))
            if drainedAt == nil, d.contains(where: { if case .drain = $0 { return true }; return false }) { drainedAt = Int64(t) }
        }
        XCTAssertEqual(drainedAt, 92_000, "idle from 32 s, drained once 60 s idle")
        XCTAssertEqual(c.running, 1, "down to minWorkers")
        // Work arrives again: the pool grows again.
        pass(&a, c, waiting: 4, now: 200_000)
        XCTAssertEqual(c.running, 3, "capped at 3 again (1 idle counts as capacity)")
    }

    func testAFailedLaunchBacksOffAndSaysWhy() {
        var config = AutoscaleConfig()
        config.backoffMs = 10_000
        config.decisionIntervalMs = 1000
        var a = Autoscaler(config: config)
        let c = FakeCluster()
        c.failLaunches = 2
        pass(&a, c, waiting: 2, now: 0)
        XCTAssert(a.summary(wanted: 2).lastDecision.contains("invalid partition"), a.summary(wanted: 2).lastDecision)
        pass(&a, c, waiting: 2, now: 5000)
        XCTAssertEqual(c.failLaunches, 1, "no attempt during the backoff")
        pass(&a, c, waiting: 2, now: 10_000)
        XCTAssertEqual(c.failLaunches, 0, "retried after 10 s, failed again")
        pass(&a, c, waiting: 2, now: 25_000)
        XCTAssertEqual(c.launched, 0, "the second backoff is 20 s")
        pass(&a, c, waiting: 2, now: 30_000)
        XCTAssertEqual(c.launched, 2)
        XCTAssertFalse(a.summary(wanted: 2).lastDecision.contains("failed"))
    }

    func testJobsThatEndBeforeTheirWorkerConnectsBackOff() {
        var config = AutoscaleConfig()
        config.backoffMs = 10_000
        config.decisionIntervalMs = 1000
        var a = Autoscaler(config: config)
        let c = FakeCluster(startMs: 0)
        var launchTimes: [Int64] = []
        for t in stride(from: Int64(0), through: 80_000, by: 1000) {
            // A wrong worker command: every job ends at once, its worker never says Hello.
            _ = a.observed([:], now: t)
            for d in a.decide(PoolView(waiting: 3, finished: false, workers: [:]), now: t) {
                if case let .launch(workers) = d {
                    launchTimes.append(t)
                    a.launched(Array(zip(try! c.launch(workers, now: t), workers)).map { (job: $0.0, worker: $0.1) }, now: t)
                }
            }
        }
        XCTAssertEqual(launchTimes, [0, 11_000, 32_000, 73_000], "10 s, 20 s, 40 s after each job that died unconnected")
        XCTAssert(a.summary(wanted: 3).lastDecision.contains("ended before its worker"), a.summary(wanted: 3).lastDecision)
    }

    func testARestartAdoptsItsJobsInsteadOfLaunchingNewOnes() {
        var a = Autoscaler(config: AutoscaleConfig())
        let c = FakeCluster()
        pass(&a, c, waiting: 2, now: 0)
        XCTAssertEqual(c.launched, 2)
        // The coordinator dies; the new one restores the jobs from its journal.
        var b = Autoscaler(config: AutoscaleConfig(), jobs: a.jobs, serial: a.nextSerial)
        pass(&b, c, waiting: 2, now: 500)
        XCTAssertEqual(c.launched, 2, "the pending jobs count as capacity on its way")
        pass(&b, c, waiting: 2, now: 1500)
        XCTAssertEqual(c.launched, 2, "their workers are idle or busy now")
        XCTAssertEqual(b.summary(wanted: 2).running, 2)
        // New ids never repeat the old ones.
        pass(&b, c, waiting: 5, now: 20_000)
        let workers = c.jobs.values.map(\.worker)
        XCTAssertEqual(Set(workers).count, workers.count)
    }

    func testJobsPendingTooLongAreReportedOnceAndNotResubmitted() {
        var config = AutoscaleConfig()
        config.pendingLimitMs = 30_000
        config.decisionIntervalMs = 1000
        var a = Autoscaler(config: config)
        let c = FakeCluster(startMs: 1_000_000)   // the partition is full
        pass(&a, c, waiting: 2, now: 0)
        var reports = 0
        for t in stride(from: 1000, through: 120_000, by: 1000) {
            reports += pass(&a, c, waiting: 2, now: Int64(t)).filter { if case .reportPending = $0 { return true }; return false }.count
        }
        XCTAssertEqual(reports, 2, "each pending job once")
        XCTAssertEqual(c.launched, 2, "not resubmitted")
        XCTAssertEqual(a.summary(wanted: 2).pendingReasons, ["Resources"])
    }

    func testTheSweepsEndEndsEveryJob() {
        var config = AutoscaleConfig()
        config.finishGraceMs = 10_000
        var a = Autoscaler(config: config)
        let c = FakeCluster(startMs: 5000)
        pass(&a, c, waiting: 3, now: 0)
        pass(&a, c, waiting: 3, now: 6000)
        XCTAssertEqual(a.summary(wanted: 3).running, 3)
        var d = pass(&a, c, waiting: 0, finished: true, now: 7000)
        XCTAssertEqual(d, [], "running workers are told Shutdown and given time to end their jobs")
        c.jobs[c.jobs.first { $0.value.worker == "auto-1" }!.key]?.ended = true
        d = pass(&a, c, waiting: 0, finished: true, now: 12_000)
        XCTAssertEqual(d, [])
        d = pass(&a, c, waiting: 0, finished: true, now: 17_000)
        XCTAssertEqual(d.filter { if case .cancel = $0 { return true }; return false }.count, 2, "the two left after the grace")
        XCTAssertEqual(c.running, 0)
        XCTAssertEqual(pass(&a, c, waiting: 0, finished: true, now: 19_000), [], "once")
        XCTAssertEqual(a.jobs.count, 0, "ended jobs are forgotten")
    }

    func testPendingJobsAreCancelledAtTheSweepsEnd() {
        var a = Autoscaler(config: AutoscaleConfig())
        let c = FakeCluster(startMs: 1_000_000)
        pass(&a, c, waiting: 2, now: 0)
        let d = pass(&a, c, waiting: 0, finished: true, now: 1000)
        XCTAssertEqual(d.filter { if case .cancel = $0 { return true }; return false }.count, 2)
        XCTAssertEqual(c.running, 0)
    }
}
