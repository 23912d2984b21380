import Datasets
import Experiment
import Foundation
import Wire

/// Settings of a coordinator. Timer defaults are the protocol's (Proto/PROTOCOL.md §3).
public struct CoordinatorConfig: Sendable {
    public var bind: String
    public var blobDirectory: String
    public var curve: CurveKeyPair?
    /// Public keys (Z85) admitted when `curve` is set.
    public var allowedWorkerKeys: Set<String>
    public var heartbeatMs: Int64 = 1000
    public var livenessMs: Int64 = 5000
    public var leaseMs: Int64 = 15000
    public var maxChunkBytes = 4 << 20
    public var maxAttempts = 3
    /// Send Shutdown to the workers and return when every task is done or failed.
    public var exitWhenDone = true

    public init(bind: String, blobDirectory: String, curve: CurveKeyPair? = nil, allowedWorkerKeys: Set<String> = []) {
        self.bind = bind
        self.blobDirectory = blobDirectory
        self.curve = curve
        self.allowedWorkerKeys = allowedWorkerKeys
    }
}

/// What the coordinator knows of one worker.
struct WorkerEntry {
    var identity: [UInt8]
    var hello: Hello
    var lastSeenMs: Int64
    var lastAssignedMs: Int64 = 0
    var slots: UInt32 = 0
    var task: String?
    var epoch: UInt32 = 0
    var tasksDone = 0
    var alive = true
    /// The worker announced it is leaving (Ready with 0 slots): no more tasks for it.
    var draining = false
}

/// Hands tasks to workers, journals everything, survives its own and its workers' crashes.
///
/// Single-threaded: one loop owns the socket, the registry and the journal. It receives with a
/// short timeout, handles the message, then checks liveness and leases and schedules.
public final class SweepCoordinator {
    public let journal: Journal
    public let config: CoordinatorConfig
    let router: RouterEndpoint
    let context: ZMQContext
    let authenticator: ZAPAuthenticator?
    var tasks: [StoredTask]
    /// Each task's spec, decoded once.
    var specs: [SweepTask?] = []
    var index: [String: Int] = [:]
    /// Indices of leased tasks, of tasks that depend on each task, the count of finished (done or
    /// failed) tasks, and where the scan for schedulable tasks starts: so that no step of the
    /// loop is linear in the size of the sweep.
    var leased = Set<Int>()
    var dependents: [String: [Int]] = [:]
    var finishedCount = 0
    var scanFrom = 0
    var workers: [String: WorkerEntry] = [:]
    var pinnedFingerprints: [String: String] = [:]
    var uploads: [String: FileHandle] = [:]
    public private(set) var lateResultsDropped = 0
    var recentFailures: [FailureInfo] = []
    let started = nowMs()
    let sweepID: String
    /// Called after every journaled change (aggregation and live output hook in here).
    public var onChange: (() -> Void)?

    public init(journal: Journal, config: CoordinatorConfig) throws {
        self.journal = journal
        self.config = config
        try FileManager.default.createDirectory(atPath: config.blobDirectory, withIntermediateDirectories: true)
        context = try ZMQContext()
        if config.curve != nil {
            let auth = try ZAPAuthenticator(context: context, allowedPublicKeys: config.allowedWorkerKeys)
            auth.start()
            authenticator = auth
        } else {
            authenticator = nil
        }
        router = try RouterEndpoint(context: context, bind: config.bind, curve: config.curve)
        tasks = try journal.loadTasks()
        for (i, t) in tasks.enumerated() { index[t.id] = i }
        specs = tasks.map { try? SweepTask.decode($0.spec) }
        for (i, t) in tasks.enumerated() {
            if let d = t.dependsOn { dependents[d, default: []].append(i) }
            if t.state == .leased { leased.insert(i) }
            if t.state == .done || t.state == .failed { finishedCount += 1 }
        }
        sweepID = try journal.meta("sweep_id") ?? String(UUID().uuidString.prefix(8))
        try journal.setMeta("sweep_id", sweepID)
        try journal.setMeta("apsweep_version", apsweepVersion)
        for t in tasks where t.kind == "baseline" {
            if let spec = try? SweepTask.decode(t.spec), let fp = try journal.meta(Self.fingerprintKey(spec)) { pinnedFingerprints[Self.fingerprintKey(spec)] = fp }
        }
        // After a restart, leases wait one liveness window for their workers to come back.
        let grace = nowMs() + config.livenessMs
        for i in leased { tasks[i].leaseDeadlineMs = grace }
        try journal.event(nil, nil, "coordinator-start", "\(tasks.filter { $0.state == .done }.count) of \(tasks.count) tasks already done")
    }

    /// The bound endpoint (with the port chosen when binding "tcp://…:*").
    public var endpoint: String { router.endpoint }

    public var isFinished: Bool { finishedCount == tasks.count }

    /// Every change of a task's state in memory goes through here (the journal is written first).
    func transition(_ i: Int, to state: TaskState) {
        let old = tasks[i].state
        guard old != state else { return }
        if old == .done || old == .failed { finishedCount -= 1 }
        if state == .done || state == .failed { finishedCount += 1 }
        if old == .leased { leased.remove(i) }
        if state == .leased { leased.insert(i) }
        if state == .queued || state == .stale { scanFrom = min(scanFrom, i) }
        tasks[i].state = state
    }

    /// Runs until every task is done or failed (with `exitWhenDone`) or `stop()` returns true.
    public func run(stop: () -> Bool = { false }) throws {
        defer { close() }
        var lastCheck: Int64 = 0
        while !stop() {
            if let incoming = try router.receive(timeoutMs: 50) { try handle(incoming) }
            let now = nowMs()
            if now - lastCheck >= 100 {
                try checkLiveness(now)
                lastCheck = now
            }
            try schedule(now)
            if config.exitWhenDone && isFinished {
                for w in workers.values where w.alive { try? router.send(.shutdown(Shutdown(reason: "sweep complete")), to: w.identity) }
                try journal.event(nil, nil, "sweep-complete", "\(tasks.filter { $0.state == .done }.count) done, \(tasks.filter { $0.state == .failed }.count) failed")
                // Give the shutdown messages a moment on the wire.
                let until = nowMs() + 200
                while nowMs() < until { if let incoming = try router.receive(timeoutMs: 20) { try? handle(incoming) } }
                return
            }
        }
    }

    func close() {
        router.socket.close()
        authenticator?.stop()
        context.close()
    }

    static func fingerprintKey(_ t: SweepTask) -> String { Plan.fingerprintKey(dataset: t.dataset, shard: t.shardIndex, of: t.shardCount) }

    // MARK: messages

    func handle(_ incoming: Incoming) throws {
        switch incoming {
        case let .refused(peer, reason):
            try journal.event(nil, String(decoding: peer, as: UTF8.self), "refused-frame", reason)
        case let .message(peer, envelope):
            let id = String(decoding: peer, as: UTF8.self)
            if case let .statusRequest(request) = envelope.message {
                try router.send(.statusReply(status(request)), to: peer)
                return
            }
            if case let .hello(hello) = envelope.message { return try handleHello(peer, id, hello) }
            guard workers[id] != nil else {
                try? router.send(.reject(Reject(reason: "HELLO_REQUIRED: say Hello first (coordinator restarted?)")), to: peer)
                return
            }
            workers[id]!.lastSeenMs = nowMs()
            workers[id]!.alive = true
            switch envelope.message {
            case let .ready(r) where r.slots == 0:
                workers[id]!.draining = true
                workers[id]!.slots = 0
            case let .ready(r):
                // A Ready that crosses an Assign in flight is stale: the worker is busy.
                if let t = workers[id]!.task, let i = index[t], tasks[i].state == .leased, tasks[i].worker == id { break }
                workers[id]!.task = nil
                workers[id]!.slots = max(1, r.slots)
            case let .heartbeat(h):
                workers[id]!.epoch = h.epoch
                var deadline: UInt64 = 0
                if !h.taskID.isEmpty, let i = index[h.taskID], tasks[i].state == .leased, tasks[i].worker == id {
                    let d = nowMs() + config.leaseMs
                    tasks[i].leaseDeadlineMs = d
                    try journal.extendLease(h.taskID, deadlineMs: d)
                    deadline = UInt64(d)
                }
                try? router.send(.heartbeatAck(HeartbeatAck(coordinatorUnixMs: UInt64(nowMs()), leaseDeadlineUnixMs: deadline)), to: peer)
            case let .progress(p):
                if let i = index[p.taskID], tasks[i].state != .done, tasks[i].state != .failed {
                    try journal.storeRecords(p.taskID, p.records)
                    if let last = p.records.last { workers[id]!.epoch = last.epoch }
                    onChange?()
                }
            case let .blobChunk(chunk):
                try receiveBlob(chunk, from: id)
            case let .result(r):
                try handleResult(r, from: id)
            case let .failure(f):
                try handleFailure(f, from: id)
            case let .blobRequest(b):
                try serveBlob(b, to: peer)
            default:
                try? router.send(.reject(Reject(reason: "\(envelope.message.name) is not a worker → coordinator message")), to: peer)
            }
        }
    }

    func handleHello(_ peer: [UInt8], _ id: String, _ hello: Hello) throws {
        guard !hello.workerID.isEmpty, hello.workerID == id else {
            try? router.send(.reject(Reject(reason: "worker id '\(hello.workerID)' must equal the socket's routing identity")), to: peer)
            return
        }
        try journal.seenWorker(hello)
        var entry = workers[id] ?? WorkerEntry(identity: peer, hello: hello, lastSeenMs: nowMs())
        entry.hello = hello
        entry.identity = peer
        entry.lastSeenMs = nowMs()
        entry.alive = true
        entry.draining = false
        entry.slots = 0
        // A lease this worker holds survives only if the worker says it is still running it.
        for i in leased.sorted() where tasks[i].worker == id {
            if tasks[i].id == hello.runningTaskID {
                tasks[i].leaseDeadlineMs = nowMs() + config.leaseMs
                entry.task = tasks[i].id
            } else {
                try releaseLease(i, reason: "worker \(id) reconnected without it", now: nowMs())
            }
        }
        if hello.runningTaskID.isEmpty { entry.task = nil }
        workers[id] = entry
        // Say in the journal (and so in `status`) why a worker will stay idle: data the sweep pinned otherwise.
        for d in hello.data {
            if let pinned = contradictedPin(d) {
                try journal.event(nil, id, "data-mismatch",
                                  "\(d.dataset) shard \(d.shardIndex)/\(d.shardCount) has SHA-256 \(d.fingerprint.prefix(12)), the sweep runs on \(pinned.prefix(12)); this worker gets no task of it")
            }
        }
        var welcome = Welcome()
        welcome.coordinatorID = "apsweep-coordinator"
        welcome.sweepID = sweepID
        welcome.heartbeatIntervalMs = UInt32(config.heartbeatMs)
        welcome.livenessMs = UInt32(config.livenessMs)
        welcome.maxChunkBytes = UInt32(config.maxChunkBytes)
        try router.send(.welcome(welcome), to: peer)
        onChange?()
    }

    func handleResult(_ r: TaskResult, from id: String) throws {
        // A result frees the worker's slot at once (its Ready follows, but need not be waited for).
        if var w = workers[id], w.task == r.taskID {
            w.task = nil
            if !w.draining { w.slots = max(1, w.slots) }
            workers[id] = w
        }
        guard let i = index[r.taskID] else {
            try journal.event(r.taskID, id, "unknown-result", nil)
            return
        }
        if tasks[i].state == .done || tasks[i].state == .failed {
            lateResultsDropped += 1
            try journal.event(r.taskID, id, "late-result-dropped", "task already \(tasks[i].state.rawValue)")
            return
        }
        if tasks[i].kind == "baseline" {
            guard !r.checkpointHash.isEmpty, FileManager.default.fileExists(atPath: blobPath(r.checkpointHash)) else {
                return try handleFailure(Failure(taskID: r.taskID, attempt: r.attempt, reason: "checkpoint \(r.checkpointHash.prefix(12)) was not uploaded completely", retryable: true), from: id)
            }
        }
        let other = tasks[i].worker
        try journal.complete(r.taskID, records: r.records, checkpoint: r.checkpointHash.isEmpty ? nil : r.checkpointHash,
                             baseline: r.baseline, worker: id, attempt: tasks[i].attempt)
        transition(i, to: .done)
        tasks[i].worker = id
        tasks[i].checkpoint = r.checkpointHash.isEmpty ? nil : r.checkpointHash
        tasks[i].baseline = r.baseline
        tasks[i].finishedMs = nowMs()
        for j in dependents[r.taskID] ?? [] where tasks[j].state == .blocked { transition(j, to: .queued) }
        workers[id]?.tasksDone += 1
        if let other, other != id, let w = workers[other], w.task == r.taskID {
            try? router.send(.cancel(Cancel(taskID: r.taskID, reason: "finished by \(id)")), to: w.identity)
            workers[other]?.task = nil
        }
        onChange?()
    }

    func handleFailure(_ f: Failure, from id: String) throws {
        if f.reason.hasPrefix("BUSY"), let i = index[f.taskID], tasks[i].state == .leased, tasks[i].worker == id {
            // Our view of the worker's slot was stale: take the task back without counting the
            // attempt, and wait for the worker's Ready.
            tasks[i].attempt -= 1
            workers[id]?.task = nil
            workers[id]?.slots = 0
            return try setState(i, .queued, worker: nil, deadline: nil, event: "busy", detail: f.reason)
        }
        // Like a result, a failure frees the worker's slot.
        if var w = workers[id], w.task == f.taskID {
            w.task = nil
            if !w.draining { w.slots = max(1, w.slots) }
            workers[id] = w
        }
        guard let i = index[f.taskID], tasks[i].state == .leased || tasks[i].state == .queued || tasks[i].state == .stale else { return }
        var info = FailureInfo()
        info.taskID = f.taskID; info.workerID = id; info.reason = f.reason; info.atUnixMs = UInt64(nowMs()); info.attempt = UInt32(tasks[i].attempt)
        recentFailures.append(info)
        if recentFailures.count > 50 { recentFailures.removeFirst() }
        if f.retryable && tasks[i].attempt < config.maxAttempts {
            try setState(i, .stale, worker: nil, deadline: nil, error: f.reason, event: "failure-retry")
        } else {
            try setState(i, .failed, worker: id, deadline: nil, error: f.reason, event: "failed")
            try failDependents(of: tasks[i].id, reason: "its baseline failed: \(f.reason)")
        }
        onChange?()
    }

    func failDependents(of id: String, reason: String) throws {
        for j in dependents[id] ?? [] where tasks[j].state == .blocked || tasks[j].state == .queued {
            try setState(j, .failed, worker: nil, deadline: nil, error: reason, event: "failed")
        }
    }

    func setState(_ i: Int, _ state: TaskState, worker: String?, deadline: Int64?, error: String? = nil, event: String, detail: String? = nil) throws {
        try journal.setState(tasks[i].id, state, attempt: tasks[i].attempt, worker: worker, leaseDeadlineMs: deadline, error: error, event: event, detail: detail)
        transition(i, to: state)
        tasks[i].worker = worker
        tasks[i].leaseDeadlineMs = deadline
        if let error { tasks[i].lastError = error }
    }

    // MARK: liveness and leases

    func checkLiveness(_ now: Int64) throws {
        for (id, w) in workers where w.alive && now - w.lastSeenMs > config.livenessMs {
            workers[id]!.alive = false
            workers[id]!.task = nil
            try journal.event(nil, id, "worker-dead", "silent for \(now - w.lastSeenMs) ms")
            for i in leased.sorted() where tasks[i].worker == id {
                try releaseLease(i, reason: "worker \(id) silent for \(now - w.lastSeenMs) ms", now: now)
            }
        }
        for i in leased.sorted() where (tasks[i].leaseDeadlineMs ?? 0) < now {
            try releaseLease(i, reason: "lease expired", now: now)
        }
    }

    func releaseLease(_ i: Int, reason: String, now: Int64) throws {
        if let w = tasks[i].worker, workers[w]?.task == tasks[i].id { workers[w]!.task = nil }
        if tasks[i].attempt >= config.maxAttempts {
            try setState(i, .failed, worker: tasks[i].worker, deadline: nil, error: reason, event: "failed")
            try failDependents(of: tasks[i].id, reason: "its baseline failed: \(reason)")
        } else {
            try setState(i, .stale, worker: nil, deadline: nil, error: reason, event: "stale")
        }
        onChange?()
    }

    // MARK: scheduling

    /// Whether worker `w` holds the data task `t` needs (dataset, shard, and the pinned fingerprint).
    func holds(_ w: WorkerEntry, _ t: SweepTask) -> Bool {
        if t.dataset.isEmpty { return true }   // no-op tasks need no data
        let key = Self.fingerprintKey(t)
        return w.hello.data.contains { d in
            d.dataset == t.dataset && Int(d.shardIndex) == t.shardIndex && Int(d.shardCount) == t.shardCount
                && (pinnedFingerprints[key] == nil || pinnedFingerprints[key] == d.fingerprint)
        }
    }

    func schedule(_ now: Int64) throws {
        // Least recently assigned idle workers first.
        let idle = workers.values.filter { $0.alive && $0.slots > 0 && $0.task == nil }.sorted { $0.lastAssignedMs < $1.lastAssignedMs }
        guard !idle.isEmpty else { return }
        for worker in idle {
            let id = String(decoding: worker.identity, as: UTF8.self)
            // Tasks before scanFrom are neither queued nor stale; skip them.
            while scanFrom < tasks.count && tasks[scanFrom].state != .queued && tasks[scanFrom].state != .stale { scanFrom += 1 }
            var candidate: Int?
            var i = scanFrom
            while i < tasks.count {
                let state = tasks[i].state
                if (state == .queued || state == .stale) && eligible(i, worker) { candidate = i; break }
                i += 1
            }
            guard let i = candidate else { continue }
            try lease(i, to: id, now: now)
        }
    }

    func eligible(_ i: Int, _ worker: WorkerEntry) -> Bool {
        guard let spec = specs[i] else { return false }
        return holds(worker, spec)
    }

    func lease(_ i: Int, to id: String, now: Int64) throws {
        guard let spec = specs[i] else { throw SweepError.invalid("task \(tasks[i].id) has an unreadable spec") }
        let key = Self.fingerprintKey(spec)
        if !spec.dataset.isEmpty, pinnedFingerprints[key] == nil, let d = workers[id]!.hello.data.first(where: { $0.dataset == spec.dataset && Int($0.shardIndex) == spec.shardIndex && Int($0.shardCount) == spec.shardCount }) {
            pinnedFingerprints[key] = d.fingerprint
            try journal.setMeta(key, d.fingerprint)
        }
        var required: [String] = []
        if let base = spec.baseline, let b = index[base], let hash = tasks[b].checkpoint { required.append(hash) }
        let deadline = now + config.leaseMs
        tasks[i].attempt += 1
        // Journal first, then send: a crash in between leaves a lease that simply expires.
        try setState(i, .leased, worker: id, deadline: deadline, event: "leased", detail: "attempt \(tasks[i].attempt)")
        tasks[i].startedMs = now
        var assign = Assign()
        assign.taskID = tasks[i].id
        assign.attempt = UInt32(tasks[i].attempt)
        assign.leaseDeadlineUnixMs = UInt64(deadline)
        assign.specFormat = SweepTask.specFormat
        assign.spec = tasks[i].spec
        assign.requiredBlobs = required
        workers[id]!.task = tasks[i].id
        workers[id]!.epoch = 0
        workers[id]!.slots -= 1
        workers[id]!.lastAssignedMs = now
        do {
            try router.send(.assign(assign), to: workers[id]!.identity)
        } catch {
            // The Assign never left: the worker's connection is gone (killed between its last
            // message and now). It is dead as surely as a silent one, and the attempt that could not
            // be sent does not count against max_attempts.
            workers[id]!.alive = false
            workers[id]!.task = nil
            try journal.event(nil, id, "worker-dead", "unreachable: \(error)")
            tasks[i].attempt -= 1
            try releaseLease(i, reason: "cannot reach worker \(id): \(error)", now: now)
        }
        onChange?()
    }

    // MARK: blobs

    func blobPath(_ hash: String) -> String { (config.blobDirectory as NSString).appendingPathComponent(hash) }

    func receiveBlob(_ chunk: BlobChunk, from id: String) throws {
        guard chunk.hash.count == 64, chunk.hash.allSatisfy({ $0.isHexDigit }) else {
            try journal.event(nil, id, "bad-blob", "hash '\(chunk.hash.prefix(16))' is not SHA-256 hex")
            return
        }
        let final = blobPath(chunk.hash)
        if FileManager.default.fileExists(atPath: final) { return }
        let part = final + ".part-" + id
        if chunk.offset == 0 {
            FileManager.default.createFile(atPath: part, contents: nil)
            uploads[part] = FileHandle(forWritingAtPath: part)
        }
        guard let handle = uploads[part] else { return }
        try handle.seek(toOffset: chunk.offset)
        handle.write(Data(chunk.data))
        if chunk.last {
            try handle.close()
            uploads[part] = nil
            guard let data = FileManager.default.contents(atPath: part), UInt64(data.count) == chunk.totalSize else {
                try? FileManager.default.removeItem(atPath: part)
                try journal.event(nil, id, "bad-blob", "\(chunk.hash.prefix(12)): size mismatch")
                return
            }
            var h = SHA256Hasher()
            h.update(Array(data))
            guard h.hexDigest() == chunk.hash else {
                try? FileManager.default.removeItem(atPath: part)
                try journal.event(nil, id, "bad-blob", "\(chunk.hash.prefix(12)): content does not match its hash")
                return
            }
            try FileManager.default.moveItem(atPath: part, toPath: final)
            try journal.storedBlob(chunk.hash, size: data.count)
        }
    }

    func serveBlob(_ request: BlobRequest, to peer: [UInt8]) throws {
        let path = blobPath(request.hash)
        guard request.hash.allSatisfy({ $0.isHexDigit }), let handle = FileHandle(forReadingAtPath: path) else {
            try? router.send(.blobChunk(BlobChunk(hash: request.hash, offset: request.offset, totalSize: 0, data: [], last: true)), to: peer)
            return
        }
        defer { try? handle.close() }
        let size = try handle.seekToEnd()
        try handle.seek(toOffset: min(request.offset, size))
        let limit = min(Int(request.maxBytes == 0 ? UInt32(config.maxChunkBytes) : request.maxBytes), config.maxChunkBytes)
        let data = try handle.read(upToCount: limit) ?? Data()
        try router.send(.blobChunk(BlobChunk(hash: request.hash, offset: request.offset, totalSize: size, data: Array(data),
                                             last: request.offset + UInt64(data.count) >= size)), to: peer)
    }

    // MARK: status

    /// True when every shard the worker holds contradicts a fingerprint the sweep pinned: it will
    /// never get a task (`status` shows it as "other-data", not as an idle worker).
    func holdsOnlyOtherData(_ w: WorkerEntry) -> Bool {
        !w.hello.data.isEmpty && w.hello.data.allSatisfy { contradictedPin($0) != nil }
    }

    /// The fingerprint the sweep pinned for this dataset's shard when `d` holds other data, else nil.
    func contradictedPin(_ d: DataHolding) -> String? {
        let pinned = pinnedFingerprints[Plan.fingerprintKey(dataset: d.dataset, shard: Int(d.shardIndex), of: Int(d.shardCount))]
        return pinned != nil && pinned != d.fingerprint ? pinned : nil
    }

    public func status(_ request: StatusRequest = StatusRequest()) -> StatusReply {
        var reply = StatusReply()
        reply.sweepID = sweepID
        var counts = TaskCounts()
        counts.total = UInt32(tasks.count)
        for t in tasks {
            switch t.state {
            case .done: counts.done += 1
            case .leased: counts.running += 1
            case .queued: counts.queued += 1
            case .stale: counts.stale += 1
            case .failed: counts.failed += 1
            case .blocked: counts.blocked += 1
            }
        }
        reply.counts = counts
        let now = nowMs()
        reply.workers = workers.keys.sorted().map { id in
            let w = workers[id]!
            var s = WorkerStatus()
            s.workerID = id; s.host = w.hello.host; s.cores = w.hello.cores; s.currentTask = w.task ?? ""
            s.epoch = w.epoch; s.heartbeatAgeMs = UInt64(max(0, now - w.lastSeenMs)); s.tasksDone = UInt32(w.tasksDone)
            s.state = !w.alive ? "dead" : (w.task != nil ? "busy" : (holdsOnlyOtherData(w) ? "other-data" : "idle"))
            return s
        }
        let maxFailures = Int(request.maxFailures == 0 ? 5 : request.maxFailures)
        reply.recentFailures = Array(recentFailures.suffix(maxFailures).reversed())
        let durations = tasks.compactMap { t -> Double? in
            guard t.state == .done, let s = t.startedMs, let f = t.finishedMs, f > s else { return nil }
            return Double(f - s) / 1000
        }
        let remaining = Double(counts.total - counts.done - counts.failed)
        let alive = max(1, workers.values.filter { $0.alive && !holdsOnlyOtherData($0) }.count)
        reply.etaSeconds = durations.isEmpty ? -1 : remaining * (durations.reduce(0, +) / Double(durations.count)) / Double(alive)
        reply.uptimeMs = UInt64(now - started)
        reply.lateResultsDropped = UInt64(lateResultsDropped)
        if request.includeCorrelations { reply.correlations = headlineCorrelations() }
        return reply
    }

    private var correlationCache: (at: Int64, values: [CorrelationInfo])?

    /// AP–PD correlations for status replies, recomputed from the journal at most every 5 s.
    func headlineCorrelations() -> [CorrelationInfo] {
        let now = nowMs()
        if let c = correlationCache, now - c.at < 5000 { return c.values }
        let values = ((try? Aggregation(journal: journal, resamples: 200))?.headline() ?? []).map { r -> CorrelationInfo in
            var c = CorrelationInfo()
            c.metric = r.metric; c.target = r.target; c.method = r.method.rawValue; c.scope = r.scope
            c.value = r.value; c.ciLow = r.low; c.ciHigh = r.high; c.points = UInt32(r.points)
            return c
        }
        correlationCache = (now, values)
        return values
    }

    /// Task states (tests and the CLI).
    public var taskStates: [String: TaskState] { Dictionary(uniqueKeysWithValues: tasks.map { ($0.id, $0.state) }) }
}
