import Autoscaling
import Foundation
import Journal
import Messages
import Scheduling

/// The autoscaler on a thread of its own (launchers run commands: sbatch, squeue, ssh …, which
/// must never block the coordinator's loop). Every `everyMs` it asks the launcher what became
/// of its jobs, lets the `Autoscaler` decide from the latest view the loop published, carries
/// the decisions out and hands the loop what only the loop may do: drains (scheduler events)
/// and journal events. Every launch and every end is journaled (`autoscale-launched`,
/// `autoscale-ended`, one event per job), so a restarted coordinator adopts its jobs.
public final class AutoscaleService: @unchecked Sendable {
    /// What the loop does for the service.
    public enum Request: Equatable {
        case drain(worker: String, reason: String)
        case note(kind: String, worker: String?, detail: String)
    }

    let launcher: WorkerLauncher
    let everyMs: Int64
    private let lock = NSLock()
    private var autoscaler: Autoscaler
    private var view: PoolView?
    private var requests: [Request] = []
    private var pool = PoolStatus()
    private var thread: Thread?
    private var stopping = false
    private var finished = false
    private var log: [String] = []

    public init(launcher: WorkerLauncher, config: AutoscaleConfig, restoring events: [JournalEvent], everyMs: Int64 = 2000) {
        self.launcher = launcher
        self.everyMs = everyMs
        let (jobs, serial) = Self.restore(events)
        autoscaler = Autoscaler(config: config, jobs: jobs, serial: serial)
        pool.launcher = launcher.name
        if !jobs.isEmpty {
            log.append("autoscale: adopting \(jobs.count) job(s) of an earlier coordinator: \(jobs.map(\.id).joined(separator: ", "))")
        }
    }

    /// Jobs launched and not seen to end, from the journal's events, and the highest worker
    /// number used (ids are never reused).
    static func restore(_ events: [JournalEvent]) -> ([PoolJob], Int) {
        var jobs: [String: PoolJob] = [:], order: [String] = [], serial = 0
        for e in events {
            let f = fields(e.detail ?? "")
            guard let job = f["job"] else { continue }
            if e.kind == "autoscale-launched", let worker = f["worker"] {
                if jobs[job] == nil { order.append(job) }
                jobs[job] = PoolJob(id: job, worker: worker, submittedMs: e.atMs)
                if worker.hasPrefix("auto-"), let n = Int(worker.dropFirst(5)) { serial = max(serial, n) }
            } else if e.kind == "autoscale-ended" {
                jobs[job] = nil
            }
        }
        return (order.compactMap { jobs[$0] }, serial)
    }

    static func fields(_ detail: String) -> [String: String] {
        var out: [String: String] = [:]
        for part in detail.split(separator: " ") {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { out[String(kv[0])] = String(kv[1]) }
        }
        return out
    }

    // MARK: the loop's side

    /// The latest view of the pool (the loop publishes it about once a second).
    public func publish(_ view: PoolView) {
        lock.lock(); self.view = view; lock.unlock()
    }

    public func takeRequests() -> [Request] {
        lock.lock(); defer { lock.unlock() }
        defer { requests.removeAll() }
        return requests
    }

    public func takeLog() -> [String] {
        lock.lock(); defer { lock.unlock() }
        defer { log.removeAll() }
        return log
    }

    public func status() -> PoolStatus {
        lock.lock(); defer { lock.unlock() }
        return pool
    }

    public func start() {
        let t = Thread { [self] in self.serve() }
        t.name = "apsweep-autoscale"
        thread = t
        t.start()
    }

    /// At the sweep's end (from the loop, which runs on): passes every 500 ms until each job
    /// held has ended — by itself (its worker was told Shutdown), or cancelled (pending at once,
    /// running after the grace). `isFinished` says when.
    public func beginFinish() {
        lock.lock(); finished = true; lock.unlock()
    }

    /// How long the loop waits for `isFinished` at most.
    public var finishBudgetMs: Int64 { autoscaler.config.finishGraceMs + 5_000 }

    public var isFinished: Bool {
        lock.lock(); defer { lock.unlock() }
        return finished && autoscaler.liveCount == 0
    }

    /// At a clean stop (the loop stops with it): the same as the sweep's end, carried out here,
    /// within the budget.
    public func finish(_ view: PoolView) {
        stop()
        lock.lock(); self.view = view; finished = true; lock.unlock()
        let deadline = nowMs() + finishBudgetMs
        while !isFinished && nowMs() < deadline {
            step(now: nowMs())
            if !isFinished { usleep(500_000) }
        }
    }

    public func stop(timeoutMs: Int64 = 10_000) {
        lock.lock(); stopping = true; lock.unlock()
        let deadline = nowMs() + timeoutMs
        while let t = thread, !t.isFinished, nowMs() < deadline { usleep(10_000) }
    }

    private var isStopping: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    private func serve() {
        while !isStopping {
            step(now: nowMs())
            // Until the loop's first view arrives, look again soon: the first launch is not
            // held back by a whole period.
            lock.lock(); let pause = view == nil ? 50 : finished ? min(everyMs, 500) : everyMs; lock.unlock()
            var slept: Int64 = 0
            while slept < pause && !isStopping { usleep(50_000); slept += 50 }
        }
    }

    private let stepLock = NSLock()

    /// One pass: observe, decide, act. Also used by tests with a fake launcher.
    func step(now: Int64) {
        stepLock.lock(); defer { stepLock.unlock() }
        lock.lock()
        guard let view = finished ? view.map({ PoolView(waiting: 0, finished: true, workers: $0.workers) }) : view else { lock.unlock(); return }
        var scaler = autoscaler
        lock.unlock()
        var out: [Request] = [], lines: [String] = []
        if let exec = launcher as? ExecLauncher {
            exec.registered = { view.workers[$0] != nil && !["dead", "drained"].contains(view.workers[$0]!) }
            exec.sweepOver = view.finished
        }
        do {
            for j in scaler.observed(try launcher.states(of: scaler.jobs), now: now) {
                out.append(.note(kind: "autoscale-ended", worker: j.worker, detail: "job=\(j.id) worker=\(j.worker) launcher=\(launcher.name)"))
            }
        } catch {
            lines.append("autoscale: cannot read the jobs' states: \(error)")
        }
        for d in scaler.decide(view, now: now) {
            switch d {
            case let .launch(workers):
                do {
                    let jobs = try launcher.launch(workers)
                    scaler.launched(Array(zip(jobs, workers)).map { (job: $0.0, worker: $0.1) }, now: now)
                    for (job, worker) in zip(jobs, workers) {
                        out.append(.note(kind: "autoscale-launched", worker: worker, detail: "job=\(job) worker=\(worker) launcher=\(launcher.name)"))
                    }
                    lines.append("autoscale: \(scaler.lastDecision) (\(jobs.joined(separator: ", ")))")
                } catch {
                    scaler.launchFailed("\(error)", now: now)
                    out.append(.note(kind: "autoscale-launch-failed", worker: nil, detail: "\(error)"))
                    lines.append("autoscale: \(scaler.lastDecision)")
                }
            case let .drain(worker, job, reason):
                out.append(.drain(worker: worker, reason: reason))
                out.append(.note(kind: "autoscale-drained", worker: worker, detail: "job=\(job) worker=\(worker) \(reason)"))
                lines.append("autoscale: draining \(worker) (\(job)): \(reason)")
            case let .cancel(job, reason):
                if let j = scaler.jobs.first(where: { $0.id == job }) {
                    do { try launcher.cancel(j) } catch { lines.append("autoscale: cannot end \(job): \(error)") }
                }
                out.append(.note(kind: "autoscale-cancelled", worker: nil, detail: "job=\(job) \(reason)"))
                // Told to end: a restarted coordinator does not adopt it (its end, when seen, is
                // journaled again; restoring reads the last word).
                if let j = scaler.jobs.first(where: { $0.id == job }) {
                    out.append(.note(kind: "autoscale-ended", worker: j.worker, detail: "job=\(job) worker=\(j.worker) launcher=\(launcher.name) cancelled"))
                }
            case let .reportPending(job, reason):
                out.append(.note(kind: "autoscale-pending-too-long", worker: nil, detail: "job=\(job) reason=\(reason)"))
                lines.append("autoscale: job \(job) is still pending (\(reason)) after \(scaler.config.pendingLimitMs / 1000) s; it is not resubmitted")
            }
        }
        let busy = view.workers.values.filter { $0 == "busy" }.count
        let summary = scaler.summary(wanted: min(scaler.config.maxWorkers, max(scaler.config.minWorkers, view.finished ? 0 : busy + view.waiting)))
        lock.lock()
        autoscaler = scaler
        requests += out
        log += lines
        pool.wanted = UInt32(summary.wanted); pool.submitted = UInt32(summary.submitted); pool.pending = UInt32(summary.pending)
        pool.running = UInt32(summary.running); pool.draining = UInt32(summary.draining)
        pool.pendingReasons = summary.pendingReasons; pool.lastDecision = summary.lastDecision
        lock.unlock()
    }
}
