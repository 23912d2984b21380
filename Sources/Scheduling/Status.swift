import Messages

extension Scheduler {
    /// Answers a status request (counted like any other): the coordinator's shell sends the reply
    /// at once instead of after the batch's commit, as nothing in it needs to be durable first.
    public func answerStatus(_ request: StatusRequest, now: Int64) -> StatusReply {
        count("status-requests")
        return status(request, now: now)
    }

    /// The status a client sees, from counters kept as the sweep runs (no scan of the tasks):
    /// counts, workers, recent failures, ETA and the coordinator's counters. Correlations are not
    /// the scheduler's business; the shell adds the latest ones computed off its loop.
    public func status(_ request: StatusRequest, now: Int64) -> StatusReply {
        var reply = StatusReply()
        reply.sweepID = sweepID
        var c = TaskCounts()
        c.total = UInt32(tasks.count)
        c.done = UInt32(counts[.done] ?? 0); c.running = UInt32(counts[.leased] ?? 0); c.queued = UInt32(counts[.queued] ?? 0)
        c.stale = UInt32(counts[.stale] ?? 0); c.failed = UInt32(counts[.failed] ?? 0); c.blocked = UInt32(counts[.blocked] ?? 0)
        reply.counts = c
        let ids = workers.keys.sorted()
        reply.workersTotal = UInt32(ids.count)
        let shown = request.maxWorkers == 0 ? ids : Array(ids.prefix(Int(request.maxWorkers)))
        reply.workers = shown.map { id in
            let w = workers[id]!
            var s = WorkerStatus()
            s.workerID = id; s.host = w.hello.host; s.cores = w.hello.cores
            s.currentTask = w.task.map { tasks[$0].id } ?? ""
            s.epoch = w.epoch; s.heartbeatAgeMs = UInt64(max(0, now - w.lastSeenMs)); s.tasksDone = UInt32(w.tasksDone)
            s.state = workerState(id)
            return s
        }
        let maxFailures = Int(request.maxFailures == 0 ? 5 : request.maxFailures)
        reply.recentFailures = Array(recentFailures.suffix(maxFailures).reversed())
        let remaining = Double(tasks.count - (counts[.done] ?? 0) - (counts[.failed] ?? 0))
        let working = max(1, workers.keys.filter { workers[$0]!.alive && workerState($0) != "other-data" }.count)
        reply.etaSeconds = durationCount == 0 ? -1 : remaining * (durationSum / Double(durationCount)) / Double(working)
        reply.uptimeMs = UInt64(max(0, now - startedMs))
        reply.lateResultsDropped = counters["late-results-dropped"] ?? 0
        reply.counters = counters.sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) }
        return reply
    }

    /// dead, busy, draining, other-data (holds only data the sweep pinned otherwise), idle or
    /// connected (said Hello, not Ready yet).
    func workerState(_ id: String) -> String {
        let w = workers[id]!
        if !w.alive { return w.drainReason != nil ? "drained" : "dead" }
        if w.task != nil { return "busy" }
        if w.draining || w.drainReason != nil { return "draining" }
        if !w.holdings.isEmpty && w.holdings.allSatisfy({ key, fp in pins[key.pinKey].map { $0 != fp } ?? false }) { return "other-data" }
        return w.free ? "idle" : "connected"
    }

    /// Workers by state (the autoscaler's view).
    public func workerStates() -> [String: String] {
        Dictionary(uniqueKeysWithValues: workers.keys.map { ($0, workerState($0)) })
    }

    /// Tasks waiting for a worker (queued or stale).
    public var waitingCount: Int { (counts[.queued] ?? 0) + (counts[.stale] ?? 0) }
}
