/// The autoscaler's settings (`apsweep coordinator --autoscale …`).
public struct AutoscaleConfig: Sendable, Equatable {
    /// Worker jobs the autoscaler holds at most / keeps at least (pending and running together).
    public var maxWorkers = 16
    public var minWorkers = 0
    /// A worker of ours idle this long while nothing waits for it is drained.
    public var idleTimeoutMs: Int64 = 60_000
    /// A job still pending after this long is reported (once): the partition is full.
    public var pendingLimitMs: Int64 = 600_000
    /// At most one launch decision in this interval, of at most `maxBatch` workers: a busy
    /// controller is not flooded.
    public var decisionIntervalMs: Int64 = 10_000
    public var maxBatch = 8
    /// After a launch that failed: wait this long, doubling up to `maxBackoffMs`.
    public var backoffMs: Int64 = 10_000
    public var maxBackoffMs: Int64 = 300_000
    /// At the sweep's end running workers are told to go and their jobs end by themselves; a
    /// job still running this long after is cancelled (pending ones at once).
    public var finishGraceMs: Int64 = 10_000
    public init() {}
}

/// One job (one worker) the autoscaler submitted.
public struct PoolJob: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable { case pending, running, ended }
    /// The launcher's id (Slurm: `1234_0`; exec: the worker id).
    public var id: String
    /// The worker id the job's worker says Hello with.
    public var worker: String
    public var submittedMs: Int64
    public var state: State = .pending
    /// Why it is pending (Slurm's reason: Resources, Priority, …).
    public var reason = ""
    public var reportedPending = false
    /// Asked to stop (drained or cancelled); it ends when the launcher says so.
    public var stopping = false

    public init(id: String, worker: String, submittedMs: Int64) {
        self.id = id; self.worker = worker; self.submittedMs = submittedMs
    }
}

/// What the coordinator knows when the autoscaler decides.
public struct PoolView: Sendable {
    /// Tasks waiting for a worker (queued or stale), and whether the sweep is over.
    public var waiting: Int
    public var finished: Bool
    /// Every registered worker by id: its state as status shows it (idle, busy, connected,
    /// draining, drained, dead, other-data).
    public var workers: [String: String]
    public init(waiting: Int, finished: Bool, workers: [String: String]) {
        self.waiting = waiting; self.finished = finished; self.workers = workers
    }
}

/// What the autoscaler wants done. The shell carries it out and reports back.
public enum PoolDecision: Sendable, Equatable {
    /// Start `count` workers with these ids (the shell calls `launched` or `launchFailed`).
    case launch(workers: [String])
    /// Drain this worker (no more tasks; Shutdown when idle; its job ends with it).
    case drain(worker: String, job: String, reason: String)
    /// End this job (pending ones at the sweep's end or when no longer wanted).
    case cancel(job: String, reason: String)
    /// Say (once) that this job has waited too long to start.
    case reportPending(job: String, reason: String)
}

/// The status of the pool, for `apsweep status`.
public struct PoolSummary: Sendable, Equatable {
    public var wanted = 0, submitted = 0, pending = 0, running = 0, draining = 0
    public var pendingReasons: [String] = []
    public var lastDecision = ""
    public init() {}
}

/// Grows and shrinks a pool of worker jobs with the queue — a pure policy (no processes, no
/// clock): `decide` takes what the coordinator knows and the time, and returns decisions; the
/// shell reports what the launcher did (`launched`, `launchFailed`, `observed`). Both
/// `--autoscale slurm` and `--autoscale exec` use it.
///
/// Rules: when more tasks wait than idle workers plus our pending jobs can take, launch the
/// difference (capped by `maxWorkers` held at once, `maxBatch` per decision, one decision per
/// `decisionIntervalMs`, none during a failure's backoff). A worker of ours idle past
/// `idleTimeoutMs` with nothing waiting is drained, down to `minWorkers`. A job pending past
/// `pendingLimitMs` is reported once and still counted (it is not resubmitted). When the sweep
/// is over pending jobs are cancelled, and running ones whose worker has not gone (it is told
/// Shutdown) within `finishGraceMs`. Restarted with the jobs it had,
/// it launches none twice.
public struct Autoscaler: Sendable {
    public let config: AutoscaleConfig
    public private(set) var jobs: [PoolJob]
    /// Workers of ours first seen idle at this time.
    private var idleSince: [String: Int64] = [:]
    /// Workers of ours the coordinator has seen register: a job that ends before its worker
    /// did is a failed launch (a wrong command, a node without the data), and backs off.
    private var seen: Set<String> = []
    private var lastLaunchMs: Int64 = .min
    private var backoffUntilMs: Int64 = .min
    private var backoff: Int64 = 0
    private var launching = false
    private var finishedAtMs: Int64?
    private var serial: Int
    public private(set) var lastDecision = ""
    public private(set) var lastError: String?

    /// `jobs`: those a previous coordinator submitted and did not see end (from the journal).
    public init(config: AutoscaleConfig, jobs: [PoolJob] = [], serial: Int = 0) {
        self.config = config
        self.jobs = jobs.filter { $0.state != .ended }
        self.serial = serial
    }

    var live: [PoolJob] { jobs.filter { $0.state != .ended } }

    public mutating func decide(_ view: PoolView, now: Int64) -> [PoolDecision] {
        var out: [PoolDecision] = []
        let ours = Dictionary(live.map { ($0.worker, $0) }, uniquingKeysWith: { a, _ in a })
        // Idle times of our workers.
        for (worker, _) in ours {
            if view.workers[worker] != nil, seen.insert(worker).inserted { backoff = 0 }
            if view.workers[worker] == "idle" { idleSince[worker] = idleSince[worker] ?? now } else { idleSince[worker] = nil }
        }
        if view.finished {
            let since = finishedAtMs ?? now
            finishedAtMs = since
            for j in live where !j.stopping && (j.state != .running || now - since >= config.finishGraceMs) {
                out.append(.cancel(job: j.id, reason: j.state == .running ? "still running \((now - since) / 1000) s after the sweep's end" : "sweep complete"))
                mark(j.id) { $0.stopping = true }
            }
            if !out.isEmpty { lastDecision = "sweep complete: ending \(out.count) job(s)" }
            return out
        }
        // Jobs pending too long: said once.
        for j in live where j.state == .pending && !j.reportedPending && now - j.submittedMs > config.pendingLimitMs {
            out.append(.reportPending(job: j.id, reason: j.reason.isEmpty ? "pending" : j.reason))
            mark(j.id) { $0.reportedPending = true }
        }
        let active = live.filter { !$0.stopping }
        // A pending job of ours whose worker has not said Hello yet is capacity on its way.
        let coming = active.filter { view.workers[$0.worker] == nil || view.workers[$0.worker] == "connected" }.count
        let idle = view.workers.values.filter { $0 == "idle" }.count
        let shortfall = view.waiting - idle - coming
        if shortfall > 0 && !launching && now >= backoffUntilMs && (lastLaunchMs == .min || now - lastLaunchMs >= config.decisionIntervalMs) {
            let room = config.maxWorkers - active.count
            let n = min(shortfall, room, config.maxBatch)
            if n > 0 {
                let ids = (0..<n).map { _ -> String in serial += 1; return "auto-\(serial)" }
                out.append(.launch(workers: ids))
                launching = true
                lastLaunchMs = now
                lastDecision = "\(view.waiting) task(s) waiting, \(idle) idle, \(coming) coming: launching \(n)"
            }
        }
        // Scale down: our idle workers past the timeout while nothing waits.
        if view.waiting == 0 {
            var keep = active.count
            for j in active.sorted(by: { $0.submittedMs > $1.submittedMs }) where keep > config.minWorkers {
                guard let since = idleSince[j.worker], now - since >= config.idleTimeoutMs else { continue }
                out.append(.drain(worker: j.worker, job: j.id, reason: "idle for \((now - since) / 1000) s with nothing queued"))
                mark(j.id) { $0.stopping = true }
                idleSince[j.worker] = nil
                keep -= 1
                lastDecision = "nothing queued: draining \(j.worker) (idle \((now - since) / 1000) s)"
            }
        }
        return out
    }

    /// The launcher started these jobs (ids in the order of the workers asked for).
    public mutating func launched(_ started: [(job: String, worker: String)], now: Int64) {
        launching = false
        lastError = nil
        for s in started { jobs.append(PoolJob(id: s.job, worker: s.worker, submittedMs: now)) }
    }

    /// The launch failed: back off (doubling until one of our workers registers) and say why in
    /// status.
    public mutating func launchFailed(_ error: String, now: Int64) {
        launching = false
        backoff = backoff == 0 ? config.backoffMs : min(config.maxBackoffMs, 2 * backoff)
        backoffUntilMs = now + backoff
        lastError = error
        lastDecision = "launch failed (retrying in \(backoff / 1000) s): \(error)"
    }

    /// What the launcher says of our jobs now (a job it does not list has ended).
    public mutating func observed(_ states: [String: (state: PoolJob.State, reason: String)], now: Int64) -> [PoolJob] {
        var ended: [PoolJob] = [], unconnected: [PoolJob] = []
        for i in jobs.indices where jobs[i].state != .ended {
            if let s = states[jobs[i].id] {
                jobs[i].state = s.state
                jobs[i].reason = s.reason
            } else {
                jobs[i].state = .ended
            }
            if jobs[i].state == .ended {
                ended.append(jobs[i])
                idleSince[jobs[i].worker] = nil
                if !jobs[i].stopping && !seen.contains(jobs[i].worker) { unconnected.append(jobs[i]) }
                seen.remove(jobs[i].worker)
            }
        }
        // Jobs that died before their worker connected count as one failed launch per pass.
        if let j = unconnected.first {
            let others = unconnected.count > 1 ? " (and \(unconnected.count - 1) more)" : ""
            launchFailed("job \(j.id) ended before its worker \(j.worker) connected\(others); see its log", now: now)
        }
        jobs.removeAll { $0.state == .ended }
        return ended
    }

    /// Jobs not seen to end yet.
    public var liveCount: Int { live.count }

    /// The next worker number (journaled, so a restarted coordinator never reuses an id).
    public var nextSerial: Int { serial }

    public func summary(wanted: Int) -> PoolSummary {
        var s = PoolSummary()
        s.wanted = wanted
        s.submitted = live.count
        s.pending = live.filter { $0.state == .pending }.count
        s.running = live.filter { $0.state == .running && !$0.stopping }.count
        s.draining = live.filter { $0.stopping }.count
        s.pendingReasons = Array(Set(live.filter { $0.state == .pending && !$0.reason.isEmpty }.map(\.reason))).sorted()
        s.lastDecision = lastError.map { "launch failed: \($0)" } ?? lastDecision
        return s
    }

    private mutating func mark(_ id: String, _ change: (inout PoolJob) -> Void) {
        if let i = jobs.firstIndex(where: { $0.id == id }) { change(&jobs[i]) }
    }
}
