import Digest
import Messages
import Records

/// The scheduler's settings. Timer defaults are the protocol's (Proto/PROTOCOL.md §5).
public struct SchedulerConfig: Sendable {
    public var heartbeatMs: Int64 = 1000
    public var livenessMs: Int64 = 5000
    public var leaseMs: Int64 = 15000
    /// Failures of a task itself before it is FAILED.
    public var maxAttempts = 3
    /// Leases that end for reasons outside the task (hand-backs, preemption, restarts) before
    /// it is FAILED anyway: a guard against a task that loops, larger than `maxAttempts`.
    public var maxHandbacks = 20
    public var maxChunkBytes = 4 << 20
    public var maxBlobBytes: UInt64 = 4 << 30
    /// Send Shutdown to every worker and finish when every task is done or failed.
    public var exitWhenDone = true
    /// How often counted-but-not-journaled things (refused frames, rejects, dropped sends) are
    /// summarised as one event.
    public var summaryEveryMs: Int64 = 60_000
    public var coordinatorID = "apsweep-coordinator"
    public init() {}
}

/// Something the scheduler reacts to. Time is given with every call; the scheduler has no clock.
public enum SchedulerEvent: Sendable {
    /// A decoded message from the peer with this routing identity, sent by the worker process
    /// of `incarnation` (0: unknown).
    case message(peer: [UInt8], Message, incarnation: UInt64)
    /// A frame the transport refused (already answered with a Reject where possible).
    case refused(peer: [UInt8], code: RejectCode, reason: String)
    /// Time passed: check liveness and leases.
    case tick
    /// A send of `message` to `peer` failed: the peer is gone (`unreachable`) or not reading.
    case sendFailed(peer: [UInt8], message: Message, unreachable: Bool)
    /// An upload finished and its content matched its hash.
    case blobStored(hash: String, size: UInt64, uploader: String)
    /// An upload could not be stored (content did not match, disk full, …).
    case blobRejected(hash: String, uploader: String, reason: String)
    /// The store was asked for a blob it does not hold intact.
    case blobMissing(hash: String, reason: String)
    /// SIGTERM/SIGINT: release every lease without counting it, tell the workers, finish.
    case stop(reason: String)
    /// Queue every FAILED task again with its counts reset (`--retry-failed`).
    case retryFailed
    /// Release this worker (the autoscaler's scale-down): no more tasks, Shutdown when idle.
    case drain(worker: String, reason: String)
    /// Journal an event decided outside the scheduler (the autoscaler's launches and ends), so
    /// that the journal keeps one writer and a restarted coordinator finds it.
    case note(kind: String, worker: String?, detail: String)
}

/// File work the coordinator's shell does for the scheduler, right after the call that asked for
/// it (its outcome comes back as an event before the next message is handled).
public enum BlobIO: Sendable, Equatable {
    /// Append `chunk` to the upload of `uploader`; after the last chunk verify the content and
    /// answer `.blobStored` or `.blobRejected`.
    case write(uploader: String, chunk: BlobChunk)
    /// Read `maxBytes` of blob `hash` at `offset` and send them to `peer` as a BlobChunk; answer
    /// `.blobMissing` when the store cannot.
    case serve(peer: [UInt8], hash: String, offset: UInt64, maxBytes: Int)
}

/// What the scheduler asks of the world after handling events: journal operations (to commit
/// before anything else), then messages to send, lines to log, and file work.
public struct Effects: Sendable {
    public var journal: [JournalOp] = []
    public var sends: [(peer: [UInt8], message: Message)] = []
    public var logs: [String] = []
    public var blobIO: [BlobIO] = []
    /// The coordinator's work is over (sweep complete, or stopped): exit once these are applied.
    public var finished = false
    public init() {}
    public var isEmpty: Bool { journal.isEmpty && sends.isEmpty && logs.isEmpty && blobIO.isEmpty && !finished }
}

/// The coordinator's decisions as a pure state machine: events in, effects out, no sockets, no
/// SQLite, no clock. `SweepCoordinator` is a thin loop around it; the simulator drives it with
/// virtual time, a faulty network and crashes at every effect boundary.
///
/// Rules it keeps (and the simulator checks): a task is leased to one worker at a time; a
/// finished task is never leased again; a result is stored only for an open task and only from a
/// worker that holds (or held) its lease, after validation; only failures of the task itself count
/// against `maxAttempts`; a coordinator restart or stop never does.
public final class Scheduler {
    public let config: SchedulerConfig
    public let sweepID: String
    let tasks: [PlannedTask]
    var rows: [TaskRow]
    let index: [String: Int]
    let dependents: [[Int]]

    struct Lease {
        var worker: String
        var attempt: Int
        var deadlineMs: Int64
        /// Restored from the journal after a restart: its holder has not confirmed it yet, and
        /// losing it does not count against the task.
        var restored: Bool
        /// Epochs received as Progress during this lease.
        var epochs = Set<Int>()
        var startedMs: Int64
        /// When the holder last said it runs the task (a heartbeat naming it, Progress, an
        /// upload); nil when it never did. Only a confirmed lease can count against its task: a
        /// task that never ran cannot have failed.
        var confirmedMs: Int64?

        init(worker: String, attempt: Int, deadlineMs: Int64, restored: Bool, startedMs: Int64) {
            self.worker = worker; self.attempt = attempt; self.deadlineMs = deadlineMs; self.restored = restored; self.startedMs = startedMs
        }

        /// The outcome for a lost lease: `counted` when the holder had confirmed it.
        func lost(_ counted: LeaseOutcome) -> LeaseOutcome {
            restored ? .coordinatorRestart : (confirmedMs == nil ? .unconfirmed : counted)
        }
    }

    func confirm(_ t: Int, now: Int64) {
        leases[t]?.confirmedMs = now
        leases[t]?.restored = false
    }
    var leases: [Int: Lease] = [:]
    /// Earlier holders of open tasks (worker → attempt): their results are still accepted.
    var formerHolders: [Int: [String: Int]] = [:]
    /// Workers a task failed on: it goes to another worker when one is free.
    var failedOn: [Int: Set<String>] = [:]

    struct Worker {
        var peer: [UInt8]
        var hello: Hello
        var holdings: [DataKey: String]
        var lastSeenMs: Int64
        var lastAssignedMs: Int64 = 0
        var alive = true
        var draining = false
        /// Said Ready and holds no lease.
        var free = false
        var task: Int?
        var epoch: UInt32 = 0
        var tasksDone = 0
        /// Bumped whenever the worker stops being free, invalidating its idle registrations.
        var generation = 0
        var drainReason: String?
    }
    var workers: [String: Worker] = [:]
    var dispatcher = Dispatcher()
    var pins: [String: String]
    var blobs: [String: UInt64]
    /// Uploads in progress: uploader + hash → bytes received.
    var uploads: [String: UInt64] = [:]
    /// Baseline results that arrived before their checkpoint's last chunk: completed when the
    /// upload is stored, dropped when the lease ends first.
    var parked: [Int: (worker: String, result: TaskResult, atMs: Int64)] = [:]

    var counts: [TaskState: Int] = [:]
    public private(set) var counters: [String: UInt64] = [:]
    var summarised: [String: UInt64] = [:]
    var lastSummaryMs: Int64
    var recentFailures: [FailureInfo] = []
    var durationSum = 0.0, durationCount = 0
    var lastTickMs: Int64?
    public let startedMs: Int64
    var announcedComplete = false
    public private(set) var stopped = false
    var effects = Effects()

    /// Restores the scheduler from a journal: LEASED tasks keep their lease for one liveness
    /// window so their holders can come back and confirm them; if they do not, the task is queued
    /// again without counting the attempt (a restart is not the task's fault).
    public init(restoring state: JournalState, config: SchedulerConfig, now: Int64) {
        self.config = config
        sweepID = state.sweepID
        tasks = state.tasks
        rows = state.rows
        var index: [String: Int] = [:]
        for (i, t) in state.tasks.enumerated() { index[t.id] = i }
        self.index = index
        var deps = [[Int]](repeating: [], count: state.tasks.count)
        for (i, t) in state.tasks.enumerated() { if let d = t.dependsOn, let j = index[d] { deps[j].append(i) } }
        dependents = deps
        pins = state.pins
        blobs = state.blobs
        startedMs = now
        lastSummaryMs = now
        lastTickMs = now
        let open = Dictionary(grouping: state.leases.filter { $0.outcome == nil }, by: \.task)
        for l in state.leases where l.outcome != nil && l.outcome != .busy && l.outcome != .unsent && !rows[l.task].state.isFinished {
            formerHolders[l.task, default: [:]][l.worker] = l.attempt
        }
        for i in rows.indices {
            counts[rows[i].state, default: 0] += 1
            switch rows[i].state {
            case .leased:
                if let w = rows[i].worker {
                    let attempt = open[i]?.last?.attempt ?? rows[i].attempt
                    leases[i] = Lease(worker: w, attempt: attempt, deadlineMs: now + config.livenessMs, restored: true, startedMs: now)
                } else {
                    var row = rows[i]
                    row.state = .stale
                    setRow(i, row, event: "stale", detail: "leased without a holder in the journal", now: now)
                    dispatcher.addTask(i, key: tasks[i].data)
                }
            case .queued, .stale:
                dispatcher.addTask(i, key: tasks[i].data)
            case .blocked:
                // A dependency finished while the journal still says blocked (older journals).
                if let d = tasks[i].dependsOn, let j = index[d] {
                    if rows[j].state == .done { var row = rows[i]; row.state = .queued; setRow(i, row, event: nil, now: now); dispatcher.addTask(i, key: tasks[i].data) }
                    else if rows[j].state == .failed { failTask(i, "its baseline \(tasks[j].label) failed: \(rows[j].lastError ?? "")", worker: nil, now: now) }
                }
            case .done:
                if let s = rows[i].startedMs, let f = rows[i].finishedMs, f > s { durationSum += Double(f - s) / 1000; durationCount += 1 }
            case .failed:
                break
            }
        }
        let done = counts[.done] ?? 0
        journal(.event(JournalEvent(atMs: now, task: nil, worker: nil, kind: "coordinator-start",
                                    detail: "\(done) of \(tasks.count) tasks already done, \(leases.count) leases waiting for their workers")))
        checkFinished(now)
    }

    // MARK: the interface

    /// Handles one event at time `now` (Unix milliseconds, or the simulator's clock).
    public func handle(_ event: SchedulerEvent, now: Int64) {
        noticeAbsence(now)
        switch event {
        case let .message(peer, message, incarnation): handleMessage(peer, message, incarnation: incarnation, now: now)
        case let .refused(_, code, _): count("refused.\(code.name)")
        case .tick: tick(now)
        case let .sendFailed(peer, message, unreachable): sendFailed(peer, message, unreachable: unreachable, now: now)
        case let .blobStored(hash, size, uploader): blobStored(hash, size, uploader, now: now)
        case let .blobRejected(hash, uploader, reason):
            uploads[uploader + "/" + hash] = nil
            count("blobs-rejected")
            journal(.event(JournalEvent(atMs: now, task: nil, worker: uploader, kind: "bad-blob", detail: "\(hash.prefix(12)): \(reason)")))
        case let .blobMissing(hash, reason): blobMissing(hash, reason, now: now)
        case let .stop(reason): stop(reason, now: now)
        case .retryFailed: retryFailed(now: now)
        case let .drain(worker, reason): drain(worker, reason, now: now)
        case let .note(kind, worker, detail): journal(.event(JournalEvent(atMs: now, task: nil, worker: worker, kind: kind, detail: detail)))
        }
    }

    /// The effects accumulated since the last call.
    public func takeEffects() -> Effects {
        defer { effects = Effects() }
        return effects
    }

    /// File work asked for since the last call (the shell runs it at once).
    public func takeBlobIO() -> [BlobIO] {
        defer { effects.blobIO.removeAll() }
        return effects.blobIO
    }

    public var isFinished: Bool { (counts[.done] ?? 0) + (counts[.failed] ?? 0) == tasks.count }
    public var taskCount: Int { tasks.count }
    public func state(of task: String) -> TaskState? { index[task].map { rows[$0].state } }
    public func row(of task: String) -> TaskRow? { index[task].map { rows[$0] } }
    public func count(_ state: TaskState) -> Int { counts[state] ?? 0 }

    // MARK: journal and rows

    func journal(_ op: JournalOp) { effects.journal.append(op) }
    func send(_ peer: [UInt8], _ message: Message) { effects.sends.append((peer, message)) }
    func log(_ line: String) { effects.logs.append(line) }
    func count(_ name: String, _ n: UInt64 = 1) { counters[name, default: 0] += n }

    /// Every change of a row goes through here: counts, the journal op and its event.
    func setRow(_ i: Int, _ row: TaskRow, event kind: String?, detail: String? = nil, worker: String? = nil, now: Int64) {
        let old = rows[i].state
        if old != row.state {
            counts[old, default: 0] -= 1
            counts[row.state, default: 0] += 1
        }
        rows[i] = row
        journal(.task(index: i, row: row))
        if let kind { journal(.event(JournalEvent(atMs: now, task: tasks[i].id, worker: worker ?? row.worker, kind: kind, detail: detail))) }
    }

    // MARK: messages

    func workerID(_ peer: [UInt8]) -> String { String(decoding: peer, as: UTF8.self) }

    func reject(_ peer: [UInt8], _ code: RejectCode, _ reason: String, task: String = "") {
        count("rejects.\(code.name)")
        send(peer, .reject(Reject(code, reason, taskID: task)))
    }

    func handleMessage(_ peer: [UInt8], _ message: Message, incarnation: UInt64, now: Int64) {
        if incarnation != 0, let known = workers[workerID(peer)]?.hello.incarnation, known != 0 {
            if incarnation < known {
                // From a process older than the registered one: it is gone, and so is anything it says.
                return count("stale-messages")
            }
            if incarnation > known, !message.isHello {
                // A new process whose Hello has not arrived: it must say who it is (and what it
                // runs) before anything it says counts for the registered one.
                count("newer-incarnation")
                return reject(peer, .helloRequired, "this worker process restarted; say Hello again")
            }
        }
        if case .reject = message { return count("rejects-received") }   // never answered, so two peers cannot ping-pong
        if case let .statusRequest(r) = message {
            count("status-requests")
            send(peer, .statusReply(status(r, now: now)))
            return
        }
        if case let .hello(h) = message { return hello(peer, h, now: now) }
        let id = workerID(peer)
        guard workers[id] != nil else {
            switch message {
            case .ready, .heartbeat, .progress, .result, .failure, .blobRequest, .blobChunk:
                reject(peer, .helloRequired, "say Hello first (the coordinator restarted, or this connection is new)")
            default:
                reject(peer, .wrongDirection, "\(message.name) is not a message a coordinator accepts")
            }
            return
        }
        workers[id]!.lastSeenMs = now
        if !workers[id]!.alive {
            // A dead worker that speaks again without a Hello is told to say one (its state is gone).
            reject(peer, .helloRequired, "this worker was declared dead; say Hello again")
            return
        }
        switch message {
        case let .ready(r): ready(id, slots: r.slots, now: now)
        case let .heartbeat(h): heartbeat(id, h, now: now)
        case let .progress(p): progress(id, p, now: now)
        case let .result(r): result(id, r, now: now)
        case let .failure(f): failure(id, f, now: now)
        case let .blobChunk(c): blobChunk(id, c, now: now)
        case let .blobRequest(b): blobRequest(id, b, now: now)
        default: reject(peer, .wrongDirection, "\(message.name) is not a message a coordinator accepts")
        }
    }

    func hello(_ peer: [UInt8], _ h: Hello, now: Int64) {
        let id = workerID(peer)
        guard !h.workerID.isEmpty, h.workerID == id, h.workerID.utf8.count <= 255 else {
            return reject(peer, .badHello, "worker id '\(h.workerID.prefix(64))' must be non-empty, at most 255 bytes, and equal the socket's routing identity")
        }
        guard h.data.count <= 4096, h.cachedBlobs.count <= 100_000 else {
            return reject(peer, .limitExceeded, "a Hello may list at most 4096 data holdings")
        }
        var holdings: [DataKey: String] = [:]
        for d in h.data { holdings[DataKey(dataset: d.dataset, shard: Int(d.shardIndex), count: Int(d.shardCount))] = d.fingerprint }
        let known = workers[id]
        if let known, h.incarnation != 0, h.incarnation < known.hello.incarnation {
            // From a process older than the one we know: a stale message of a process that is gone.
            count("stale-hellos")
            return
        }
        let dataChanged = known == nil || known!.holdings != holdings
        if let known, known.alive, h.incarnation != 0, known.hello.incarnation == h.incarnation, !dataChanged {
            // A repeat from the same process (queued while we were away, or answering a Reject):
            // it may predate an Assign, so it changes nothing but the worker's liveness.
            workers[id]!.lastSeenMs = now
            count("repeated-hellos")
            return sendWelcome(peer)
        }
        var w = known ?? Worker(peer: peer, hello: h, holdings: holdings, lastSeenMs: now)
        w.peer = peer; w.hello = h; w.holdings = holdings; w.lastSeenMs = now
        w.alive = true; w.free = false; w.generation += 1
        if w.drainReason == nil { w.draining = false }
        w.task = nil
        workers[id] = w
        journal(.worker(WorkerSeen(id: id, host: h.host, cores: Int(h.cores), version: h.softwareVersion,
                                   data: h.data.map { "\($0.dataset)[\($0.shardIndex)/\($0.shardCount)]=\($0.fingerprint.prefix(12))" }.joined(separator: ","),
                                   atMs: now)))
        journal(.event(JournalEvent(atMs: now, task: nil, worker: id, kind: "hello", detail: "\(h.host), \(h.cores) cores, \(h.data.count) data holding(s)")))
        // Leases this worker holds survive only if it says it is still running them.
        let sameProcess = known != nil && h.incarnation != 0 && known!.hello.incarnation == h.incarnation
        for (t, lease) in leases.sorted(by: { $0.key < $1.key }) where lease.worker == id {
            if tasks[t].id == h.runningTaskID {
                confirm(t, now: now)
                leases[t]!.deadlineMs = now + config.leaseMs
                workers[id]!.task = t
            } else if sameProcess && !lease.restored {
                // The same process without the task: its Assign may still be on the way. Its
                // heartbeats decide (an idle one for a liveness window releases the lease).
                workers[id]!.task = t
            } else {
                // A new process (or, after our restart, one that does not have it): the old
                // process's lease is gone. Counted only when we know the worker died meanwhile.
                let known = known != nil && h.incarnation != 0 && known!.hello.incarnation != 0
                release(t, outcome: known ? lease.lost(.workerLost) : (lease.restored ? .coordinatorRestart : .handedBack),
                        reason: lease.restored ? "worker \(id) came back after the coordinator restarted without the task"
                            : "worker \(id) restarted (a new process) without it", now: now)
            }
        }
        if !h.runningTaskID.isEmpty, workers[id]!.task == nil {
            // It runs something it no longer holds. A former holder of a task still open may go
            // on (its result is accepted, first result wins); anything else is cancelled.
            let t = index[h.runningTaskID]
            if t == nil || rows[t!].state.isFinished || formerHolders[t!]?[id] == nil {
                send(peer, .cancel(Cancel(taskID: String(h.runningTaskID.prefix(64)), reason: "this worker holds no lease of that task")))
            }
        }
        if dataChanged {
            for (key, fp) in holdings.sorted(by: { $0.key < $1.key }) {
                if let pinned = pins[key.pinKey], pinned != fp {
                    journal(.event(JournalEvent(atMs: now, task: nil, worker: id, kind: "data-mismatch",
                                                detail: "\(key) has SHA-256 \(fp.prefix(12)), the sweep runs on \(pinned.prefix(12)); this worker gets no task of it")))
                }
            }
        }
        sendWelcome(peer)
        if let reason = workers[id]!.drainReason, workers[id]!.task == nil { shutDown(id, .drained, reason) }
        else if isFinished && config.exitWhenDone { shutDown(id, .sweepComplete, "sweep complete") }
    }

    func sendWelcome(_ peer: [UInt8]) {
        var welcome = Welcome()
        welcome.coordinatorID = config.coordinatorID
        welcome.sweepID = sweepID
        welcome.heartbeatIntervalMs = UInt32(clamping: config.heartbeatMs)
        welcome.livenessMs = UInt32(clamping: config.livenessMs)
        welcome.leaseMs = UInt32(clamping: config.leaseMs)
        welcome.maxChunkBytes = UInt32(clamping: config.maxChunkBytes)
        welcome.maxBlobBytes = config.maxBlobBytes
        send(peer, .welcome(welcome))
    }

    func ready(_ id: String, slots: UInt32, now: Int64) {
        if slots == 0 {
            // Leaving: no more tasks. A lease it still holds goes back at once, uncounted (its
            // Failure hand-back may have crossed a new Assign).
            workers[id]!.draining = true
            workers[id]!.free = false
            workers[id]!.generation += 1
            if let t = workers[id]!.task, leases[t]?.worker == id {
                release(t, outcome: .handedBack, reason: "worker \(id) is leaving", now: now)
            }
            return
        }
        // A Ready that crosses an Assign in flight is stale: the worker is busy.
        guard workers[id]!.task == nil, !workers[id]!.draining else { return }
        if let reason = workers[id]!.drainReason { return shutDown(id, .drained, reason) }
        becameFree(id, now: now)
    }

    func heartbeat(_ id: String, _ h: Heartbeat, now: Int64) {
        workers[id]!.epoch = h.epoch
        var deadline: UInt64 = 0
        if h.taskID.isEmpty, let t = workers[id]!.task, let lease = leases[t], lease.worker == id, !lease.restored,
           now - (lease.confirmedMs ?? lease.startedMs) > config.livenessMs {
            // Idle for a liveness window while we count it as holding a lease: its Assign or its
            // final message was lost on the way. Not the task's fault.
            release(t, outcome: .handedBack, reason: "worker \(id) is not running it (its Assign or its result was lost)", now: now)
            becameFree(id, now: now)
        } else if h.taskID.isEmpty, workers[id]!.task == nil, !workers[id]!.free, !workers[id]!.draining {
            // Idle and saying so: as good as a Ready (the Ready itself may have been lost).
            if let reason = workers[id]!.drainReason { shutDown(id, .drained, reason) } else { becameFree(id, now: now) }
        }
        if !h.taskID.isEmpty {
            if let t = index[h.taskID], let lease = leases[t], lease.worker == id, h.attempt == 0 || Int(h.attempt) == lease.attempt {
                leases[t]!.deadlineMs = now + config.leaseMs
                confirm(t, now: now)
                workers[id]!.task = t
                deadline = UInt64(max(0, now + config.leaseMs))
            } else if let t = index[h.taskID], formerHolders[t]?[id] != nil, !rows[t].state.isFinished {
                // A former holder still running an open task: its result will be accepted.
            } else {
                return reject(workers[id]!.peer, .notLeaseHolder, "this worker holds no lease of task \(h.taskID.prefix(24)); stop running it", task: String(h.taskID.prefix(64)))
            }
        }
        send(workers[id]!.peer, .heartbeatAck(HeartbeatAck(coordinatorUnixMs: UInt64(max(0, now)), leaseDeadlineUnixMs: deadline)))
    }

    /// The lease `id` holds of `taskID` at `attempt`, or nil.
    func heldLease(_ id: String, _ taskID: String, _ attempt: UInt32) -> Int? {
        guard let t = index[taskID], let lease = leases[t], lease.worker == id, Int(attempt) == lease.attempt else { return nil }
        return t
    }

    func progress(_ id: String, _ p: Progress, now: Int64) {
        guard let t = heldLease(id, p.taskID, p.attempt) else {
            if let t = index[p.taskID], formerHolders[t]?[id] != nil { return count("late-progress-dropped") }
            return reject(workers[id]!.peer, .notLeaseHolder, "Progress for task \(p.taskID.prefix(24)) attempt \(p.attempt), which this worker does not hold", task: String(p.taskID.prefix(64)))
        }
        leases[t]!.deadlineMs = now + config.leaseMs
        confirm(t, now: now)
        var fresh: [EpochRecord] = []
        for r in p.records {
            if leases[t]!.epochs.contains(r.epoch) { count("duplicate-progress"); continue }
            do {
                guard tasks[t].epochs?.contains(r.epoch) == true else { throw RecordError("epoch \(r.epoch) is outside what the task produces") }
                try r.validate()
            } catch {
                return invalidResult(t, id, "Progress: \(error)", now: now)
            }
            leases[t]!.epochs.insert(r.epoch)
            fresh.append(r)
        }
        if let last = fresh.last { workers[id]!.epoch = UInt32(clamping: last.epoch) }
        if !fresh.isEmpty { journal(.records(task: t, records: fresh, replace: false)) }
    }

    func invalidResult(_ t: Int, _ id: String, _ why: String, now: Int64) {
        count("invalid-results")
        reject(workers[id]!.peer, .invalidResult, why, task: tasks[t].id)
        if leases[t]?.worker == id {
            release(t, outcome: .taskFailed, reason: "invalid result from \(id): \(why)", now: now)
            workers[id]!.task = nil
            if !workers[id]!.draining { becameFree(id, now: now) }
        }
    }

    func result(_ id: String, _ r: TaskResult, now: Int64) {
        guard let t = index[r.taskID] else {
            return reject(workers[id]!.peer, .notLeaseHolder, "Result for task \(r.taskID.prefix(24)), which is not in this sweep", task: String(r.taskID.prefix(64)))
        }
        let isHolder = leases[t]?.worker == id && leases[t]?.attempt == Int(r.attempt)
        let isFormer = formerHolders[t]?[id] == Int(r.attempt)
        if rows[t].state.isFinished {
            if rows[t].worker == id || isFormer || isHolder {
                count("late-results-dropped")
                journal(.event(JournalEvent(atMs: now, task: tasks[t].id, worker: id, kind: "late-result-dropped", detail: "task already \(rows[t].state.rawValue)")))
                return
            }
            return reject(workers[id]!.peer, .notLeaseHolder, "Result for task \(r.taskID.prefix(24)), which this worker never held", task: tasks[t].id)
        }
        guard isHolder || isFormer else {
            return reject(workers[id]!.peer, .notLeaseHolder, "Result for task \(r.taskID.prefix(24)) attempt \(r.attempt), which this worker does not hold", task: tasks[t].id)
        }
        // Validate before anything is journaled.
        do {
            try EpochRecord.validate(r.records, expected: tasks[t].epochs)
            if tasks[t].kind == .baseline {
                guard let b = r.baseline else { throw RecordError("a baseline result needs its baseline summary") }
                guard b.trainAccuracy.isFinite, b.testAccuracy.isFinite, (0...100).contains(b.trainAccuracy), (0...100).contains(b.testAccuracy),
                      b.trainLoss.isFinite, b.testLoss.isFinite, b.trainLoss >= 0, b.testLoss >= 0 else {
                    throw RecordError("baseline summary out of range (accuracies must be percentages, losses finite and ≥ 0)")
                }
            }
        } catch {
            return invalidResult(t, id, "\(error)", now: now)
        }
        if tasks[t].kind == .baseline && blobs[r.checkpointHash] == nil && uploads[id + "/" + r.checkpointHash.lowercased()] != nil {
            // The upload is still coming (its last chunk was overtaken): wait for it.
            parked[t] = (id, r, now)
            count("results-parked")
            return
        }
        if tasks[t].kind == .baseline && blobs[r.checkpointHash] == nil {
            // The checkpoint did not arrive whole (a lost chunk, a reconnect): not the task's fault.
            count("results-without-checkpoint")
            reject(workers[id]!.peer, .invalidResult, "checkpoint \(r.checkpointHash.prefix(12)) was not uploaded completely", task: tasks[t].id)
            if leases[t]?.worker == id {
                release(t, outcome: .handedBack, reason: "checkpoint \(r.checkpointHash.prefix(12)) was not uploaded completely", now: now)
                workers[id]!.task = nil
                if !workers[id]!.draining { becameFree(id, now: now) }
            }
            return
        }
        complete(t, by: id, r, now: now)
    }

    func complete(_ t: Int, by id: String, _ r: TaskResult, now: Int64) {
        if let lease = leases[t] {
            leases[t] = nil
            journal(.endLease(task: t, attempt: lease.attempt, outcome: lease.worker == id ? .done : .superseded))
            if lease.worker != id, let other = workers[lease.worker], other.task == t {
                workers[lease.worker]!.task = nil
                send(other.peer, .cancel(Cancel(taskID: tasks[t].id, reason: "finished by \(id)")))
            }
        }
        if let attempt = formerHolders[t]?[id] { journal(.endLease(task: t, attempt: attempt, outcome: .done)) }
        formerHolders[t] = nil
        failedOn[t] = nil
        dispatcher.removeTask(t)
        journal(.records(task: t, records: r.records, replace: true))
        var row = rows[t]
        row.state = .done
        row.worker = id
        row.checkpoint = tasks[t].kind == .baseline ? r.checkpointHash : nil
        row.baseline = tasks[t].kind == .baseline ? r.baseline : nil
        row.finishedMs = now
        setRow(t, row, event: "done", detail: "\(r.records.count) records, attempt \(r.attempt)", worker: id, now: now)
        if let s = row.startedMs, now >= s { durationSum += Double(now - s) / 1000; durationCount += 1 }
        workers[id]!.tasksDone += 1
        for d in dependents[t] where rows[d].state == .blocked {
            var dr = rows[d]
            dr.state = .queued
            setRow(d, dr, event: nil, now: now)
            makeWaiting(d, now: now)
        }
        if workers[id]!.task == t || workers[id]!.task == nil {
            workers[id]!.task = nil
            if !workers[id]!.draining {
                if let reason = workers[id]!.drainReason { shutDown(id, .drained, reason) } else { becameFree(id, now: now) }
            }
        }
        checkFinished(now)
    }

    func failure(_ id: String, _ f: Failure, now: Int64) {
        guard let t = heldLease(id, f.taskID, f.attempt) else {
            if let t = index[f.taskID], formerHolders[t]?[id] != nil { return count("late-failures-dropped") }
            return reject(workers[id]!.peer, .notLeaseHolder, "Failure for task \(f.taskID.prefix(24)) attempt \(f.attempt), which this worker does not hold", task: String(f.taskID.prefix(64)))
        }
        let reason = String(f.reason.prefix(2000))
        workers[id]!.task = nil
        if reason.hasPrefix("BUSY") {
            // Our view of the worker's slot was stale: take the task back without counting, and
            // wait for the worker's Ready.
            release(t, outcome: .busy, reason: reason, now: now)
            workers[id]!.free = false
            workers[id]!.generation += 1
            return
        }
        var info = FailureInfo()
        info.taskID = tasks[t].id; info.workerID = id; info.reason = reason; info.atUnixMs = UInt64(max(0, now)); info.attempt = f.attempt
        recentFailures.append(info)
        if recentFailures.count > 100 { recentFailures.removeFirst(recentFailures.count - 100) }
        if !f.unusableBlob.isEmpty, let base = tasks[t].dependsOn.flatMap({ index[$0] }), rows[base].checkpoint == f.unusableBlob {
            // The baseline's checkpoint cannot be used: every dependent would fail the same way.
            let why = "the checkpoint of baseline \(tasks[base].label) (\(f.unusableBlob.prefix(12))) cannot be used: \(reason)"
            release(t, outcome: .taskFailed, reason: why, now: now, final: true)
            failDependents(of: base, because: why, now: now, event: "baseline-unusable")
        } else {
            release(t, outcome: f.retryable ? .handedBack : .taskFailed, reason: reason, now: now)
        }
        if !workers[id]!.draining {
            if let drain = workers[id]!.drainReason { shutDown(id, .drained, drain) } else { becameFree(id, now: now) }
        }
    }

    // MARK: blobs

    func blobChunk(_ id: String, _ c: BlobChunk, now: Int64) {
        let peer = workers[id]!.peer
        guard SHA256Hasher.isHexDigest(c.hash) else { return reject(peer, .malformed, "blob hash '\(c.hash.prefix(16))' is not 64 hex digits") }
        let hash = c.hash.lowercased()
        guard let t = workers[id]!.task, leases[t]?.worker == id, tasks[t].kind == .baseline else {
            return reject(peer, .notLeaseHolder, "uploads are taken only from a worker holding a baseline task's lease")
        }
        if blobs[hash] != nil { return }
        guard c.data.count <= config.maxChunkBytes else {
            return reject(peer, .limitExceeded, "chunk of \(c.data.count) bytes exceeds max_chunk_bytes \(config.maxChunkBytes)", task: tasks[t].id)
        }
        guard c.totalSize <= config.maxBlobBytes else {
            return reject(peer, .limitExceeded, "blob of \(c.totalSize) bytes exceeds max_blob_bytes \(config.maxBlobBytes)", task: tasks[t].id)
        }
        let key = id + "/" + hash
        if let have = uploads[key], c.offset + UInt64(c.data.count) <= have, c.offset > 0 || have > 0 {
            return count("duplicate-chunks")   // a chunk sent twice: already written
        }
        let received = c.offset == 0 ? 0 : uploads[key]
        guard let received, c.offset == received, received + UInt64(c.data.count) <= c.totalSize, c.last == (received + UInt64(c.data.count) == c.totalSize) else {
            uploads[key] = nil
            return reject(peer, .malformed, "chunk at offset \(c.offset) of \(c.totalSize) does not continue the upload (expected offset \(uploads[key] ?? 0))", task: tasks[t].id)
        }
        uploads[key] = c.last ? nil : received + UInt64(c.data.count)
        confirm(t, now: now)
        effects.blobIO.append(.write(uploader: id, chunk: BlobChunk(hash: hash, offset: c.offset, totalSize: c.totalSize, data: c.data, last: c.last)))
    }

    func blobStored(_ hash: String, _ size: UInt64, _ uploader: String, now: Int64) {
        guard blobs[hash] == nil else { return }
        blobs[hash] = size
        journal(.blob(hash: hash, size: size))
        for (t, p) in parked.sorted(by: { $0.key < $1.key }) where p.result.checkpointHash.lowercased() == hash {
            parked[t] = nil
            if !rows[t].state.isFinished { result(p.worker, p.result, now: now) }
        }
    }

    func blobRequest(_ id: String, _ b: BlobRequest, now: Int64) {
        let peer = workers[id]!.peer
        guard SHA256Hasher.isHexDigest(b.hash) else { return reject(peer, .malformed, "blob hash '\(b.hash.prefix(16))' is not 64 hex digits") }
        let hash = b.hash.lowercased()
        guard let size = blobs[hash] else { return reject(peer, .unknownBlob, "this coordinator holds no blob \(hash.prefix(12))") }
        guard b.offset <= size else { return reject(peer, .malformed, "offset \(b.offset) is past the end of blob \(hash.prefix(12)) (\(size) bytes)") }
        let limit = b.maxBytes == 0 ? config.maxChunkBytes : min(Int(b.maxBytes), config.maxChunkBytes)
        effects.blobIO.append(.serve(peer: peer, hash: hash, offset: b.offset, maxBytes: limit))
    }

    /// A blob the journal lists is gone or corrupt: the baseline that made it runs again.
    func blobMissing(_ hash: String, _ reason: String, now: Int64) {
        guard blobs[hash] != nil else { return }
        blobs[hash] = nil
        journal(.blobLost(hash: hash))
        journal(.event(JournalEvent(atMs: now, task: nil, worker: nil, kind: "blob-lost", detail: "\(hash.prefix(12)): \(reason)")))
        log("checkpoint \(hash.prefix(12)) is \(reason); the baselines that made it run again")
        for (b, row) in rows.enumerated() where row.state == .done && row.checkpoint == hash {
            var r = row
            r.state = .queued
            r.checkpoint = nil
            r.worker = nil
            setRow(b, r, event: "requeued", detail: "its checkpoint \(hash.prefix(12)) is \(reason)", now: now)
            for d in dependents[b] where !rows[d].state.isFinished {
                dispatcher.removeTask(d)
                if let lease = leases[d] {
                    if let w = workers[lease.worker] { send(w.peer, .cancel(Cancel(taskID: tasks[d].id, reason: "its baseline runs again"))) }
                    release(d, outcome: .coordinatorRestart, reason: "its baseline's checkpoint is \(reason)", now: now, then: .block)
                } else if rows[d].state != .blocked {
                    var dr = rows[d]
                    dr.state = .blocked
                    setRow(d, dr, event: nil, now: now)
                }
            }
            makeWaiting(b, now: now)
        }
    }

    // MARK: leases

    /// Puts a waiting task in front of a free worker, or in its queue.
    func makeWaiting(_ t: Int, now: Int64) {
        let key = tasks[t].data
        if stopped { return dispatcher.addTask(t, key: key) }
        let avoid = failedOn[t] ?? []
        if let w = dispatcher.takeWorker(key: key, valid: { self.isIdle($0, $1) && self.eligible($0, key) }, prefer: { !avoid.contains($0) }) {
            lease(t, to: w, now: now)
        } else {
            dispatcher.addTask(t, key: key)
        }
    }

    func isIdle(_ id: String, _ generation: Int) -> Bool {
        guard let w = workers[id] else { return false }
        return w.alive && w.free && !w.draining && w.task == nil && w.generation == generation && w.drainReason == nil
    }

    /// Whether worker `id` holds the data `key` names, with the pinned fingerprint if any.
    func eligible(_ id: String, _ key: DataKey?) -> Bool {
        guard let key else { return true }
        guard let fp = workers[id]?.holdings[key] else { return false }
        return pins[key.pinKey].map { $0 == fp } ?? true
    }

    /// The data keys a worker can serve now (no-data tasks first).
    func keys(_ id: String) -> [DataKey?] {
        [nil] + (workers[id]?.holdings.keys.filter { eligible(id, $0) }.sorted() ?? [])
    }

    func becameFree(_ id: String, now: Int64) {
        guard !stopped, var w = workers[id], w.alive, !w.draining, w.task == nil else { return }
        w.free = true
        w.generation += 1
        workers[id] = w
        let generation = w.generation
        for key in keys(id) {
            while let t = dispatcher.takeTask(key: key, valid: { self.rows[$0].state.isWaiting && self.leases[$0] == nil },
                                               prefer: { !(self.failedOn[$0]?.contains(id) ?? false) }) {
                if failedOn[t]?.contains(id) == true,
                   let other = dispatcher.takeWorker(key: key, valid: { $0 != id && self.isIdle($0, $1) && self.eligible($0, key) }, prefer: { _ in true }) {
                    // It failed here before and another worker is free: that one takes it.
                    lease(t, to: other, now: now)
                    continue
                }
                return lease(t, to: id, now: now)
            }
        }
        dispatcher.addIdle(id, generation: generation, keys: keys(id))
    }

    func lease(_ t: Int, to id: String, now: Int64) {
        if let key = tasks[t].data, pins[key.pinKey] == nil, let fp = workers[id]?.holdings[key] {
            // The first lease of a shard fixes its fingerprint for the rest of the sweep.
            pins[key.pinKey] = fp
            journal(.pin(key: key.pinKey, fingerprint: fp))
        }
        var required: [String] = []
        if let d = tasks[t].dependsOn, let b = index[d], let hash = rows[b].checkpoint { required.append(hash) }
        if let r = tasks[t].requiredBlob { required.append(r) }
        var row = rows[t]
        row.attempt += 1
        row.state = .leased
        row.worker = id
        row.startedMs = now
        leases[t] = Lease(worker: id, attempt: row.attempt, deadlineMs: now + config.leaseMs, restored: false, startedMs: now)
        journal(.lease(LeaseRow(task: t, attempt: row.attempt, worker: id, startedMs: now)))
        setRow(t, row, event: "leased", detail: "attempt \(row.attempt)", worker: id, now: now)
        workers[id]!.task = t
        workers[id]!.free = false
        workers[id]!.generation += 1
        workers[id]!.epoch = 0
        workers[id]!.lastAssignedMs = now
        var a = Assign()
        a.taskID = tasks[t].id
        a.attempt = UInt32(row.attempt)
        a.leaseDeadlineUnixMs = UInt64(max(0, now + config.leaseMs))
        a.specFormat = "apsweep.task.v1+json"
        a.spec = tasks[t].spec
        a.requiredBlobs = required
        send(workers[id]!.peer, .assign(a))
    }

    /// What happens to a task after its lease ends.
    enum AfterRelease { case requeue, block, keepForCaller }

    /// Ends task `t`'s lease. Counts it against the task only when `outcome` says the task (or its
    /// worker) failed; requeues it, or FAILs it when its counts are used up (or `final`). With
    /// `then: .block` the task waits for its dependency again; with `.keepForCaller` the caller
    /// decides (the row is left STALE and not queued).
    func release(_ t: Int, outcome: LeaseOutcome, reason: String, now: Int64, final: Bool = false, then: AfterRelease = .requeue) {
        guard let lease = leases[t] else { return }
        leases[t] = nil
        if parked[t]?.worker == lease.worker { parked[t] = nil }
        journal(.endLease(task: t, attempt: lease.attempt, outcome: outcome))
        if outcome != .busy && outcome != .unsent { formerHolders[t, default: [:]][lease.worker] = lease.attempt }
        if workers[lease.worker]?.task == t { workers[lease.worker]!.task = nil }
        var row = rows[t]
        row.worker = nil
        if outcome.countsAgainstTask {
            row.failures += 1
            failedOn[t, default: []].insert(lease.worker)
        } else if outcome != .busy && outcome != .unsent {
            row.handbacks += 1
        }
        if outcome != .busy && outcome != .unsent { row.lastError = reason }
        if then == .keepForCaller || then == .block {
            row.state = then == .block ? .blocked : .stale
            setRow(t, row, event: "released", detail: "\(outcome.rawValue): \(reason)", worker: lease.worker, now: now)
            return
        }
        if final || row.failures >= config.maxAttempts {
            row.worker = lease.worker
            row.state = .failed
            row.finishedMs = now
            if !final { row.lastError = "\(reason) (\(row.failures) failure(s) of the task, max_attempts \(config.maxAttempts))" }
            setRow(t, row, event: "failed", detail: row.lastError, worker: lease.worker, now: now)
            failDependents(of: t, because: "its baseline \(tasks[t].label) failed: \(reason)", now: now, event: nil)
            checkFinished(now)
        } else if row.handbacks > config.maxHandbacks {
            row.state = .failed
            row.finishedMs = now
            row.lastError = "handed back \(row.handbacks) times (max_handbacks \(config.maxHandbacks)); last: \(reason)"
            setRow(t, row, event: "failed", detail: row.lastError, worker: lease.worker, now: now)
            failDependents(of: t, because: "its baseline \(tasks[t].label) failed: handed back too often", now: now, event: nil)
            checkFinished(now)
        } else {
            row.state = .stale
            let kind = outcome.countsAgainstTask ? "stale" : (outcome == .handedBack ? "failure-retry" : (outcome == .busy ? "busy" : "released"))
            setRow(t, row, event: kind, detail: "\(outcome.rawValue): \(reason)", worker: lease.worker, now: now)
            makeWaiting(t, now: now)
        }
    }

    func failTask(_ t: Int, _ reason: String, worker: String?, now: Int64) {
        guard !rows[t].state.isFinished else { return }
        if let lease = leases[t] {
            if let w = workers[lease.worker] { send(w.peer, .cancel(Cancel(taskID: tasks[t].id, reason: reason))) }
            release(t, outcome: .superseded, reason: reason, now: now, then: .keepForCaller)
        }
        dispatcher.removeTask(t)
        var row = rows[t]
        row.state = .failed
        row.lastError = reason
        row.finishedMs = now
        row.worker = worker ?? row.worker
        setRow(t, row, event: "failed", detail: reason, now: now)
        failDependents(of: t, because: "its baseline \(tasks[t].label) failed: \(reason)", now: now, event: nil)
        checkFinished(now)
    }

    /// FAILs every open dependent of `t` with one reason; with `event`, says so once in the journal.
    func failDependents(of t: Int, because reason: String, now: Int64, event: String?) {
        let open = dependents[t].filter { !rows[$0].state.isFinished }
        guard !open.isEmpty else { return }
        if let event {
            journal(.event(JournalEvent(atMs: now, task: tasks[t].id, worker: nil, kind: event, detail: "\(reason); \(open.count) dependent task(s) failed")))
            log("\(tasks[t].label): \(reason); \(open.count) dependent task(s) failed")
        }
        for d in open { failTask(d, reason, worker: nil, now: now) }
    }

    // MARK: time

    /// A gap of more than half a liveness window since the last event means the coordinator
    /// itself was away (a stalled loop, a paused VM, a clock step forward): nobody could be heard
    /// meanwhile, so that silence is not the workers' fault. Their clocks move by the gap. A
    /// clock stepped backwards moves them back, so that silences stay what they were.
    func noticeAbsence(_ now: Int64) {
        defer { lastTickMs = now }
        guard let last = lastTickMs, now - last > config.livenessMs / 2 || now < last else { return }
        let gap = now - last
        for id in workers.keys where workers[id]!.alive { workers[id]!.lastSeenMs += gap }
        for t in leases.keys {
            leases[t]!.deadlineMs += gap
            leases[t]!.startedMs += gap
            if let c = leases[t]!.confirmedMs { leases[t]!.confirmedMs = c + gap }
        }
        if gap > 0 {
            count("loop-stalls")
            log("the coordinator was away for \(gap) ms; worker silences and leases were extended by as much")
        } else {
            count("clock-steps-back")
        }
    }

    func tick(_ now: Int64) {
        for id in workers.keys.sorted() where workers[id]!.alive && now - workers[id]!.lastSeenMs > config.livenessMs {
            let silent = now - workers[id]!.lastSeenMs
            workers[id]!.alive = false
            workers[id]!.free = false
            workers[id]!.generation += 1
            journal(.event(JournalEvent(atMs: now, task: nil, worker: id, kind: "worker-dead", detail: "silent for \(silent) ms")))
            for (t, lease) in leases.sorted(by: { $0.key < $1.key }) where lease.worker == id {
                release(t, outcome: lease.lost(.workerLost),
                        reason: lease.restored ? "worker \(id) did not come back after the coordinator restarted" : "worker \(id) silent for \(silent) ms", now: now)
            }
        }
        for (t, lease) in leases.sorted(by: { $0.key < $1.key }) where lease.deadlineMs < now {
            release(t, outcome: lease.lost(.expired), reason: lease.restored ? "lease from before the restart expired" : "lease expired", now: now)
        }
        if now - lastSummaryMs >= config.summaryEveryMs { summarise(now) }
    }

    /// One event for everything counted since the last summary (refused frames, rejects, drops).
    func summarise(_ now: Int64) {
        lastSummaryMs = now
        let changed = counters.filter { $0.value != summarised[$0.key] && ($0.key.hasPrefix("refused.") || $0.key.hasPrefix("rejects.") || $0.key.hasPrefix("sends-dropped")) }
        guard !changed.isEmpty else { return }
        let detail = changed.sorted { $0.key < $1.key }.map { "\($0.key) +\($0.value - (summarised[$0.key] ?? 0))" }.joined(separator: ", ")
        for (k, v) in changed { summarised[k] = v }
        journal(.event(JournalEvent(atMs: now, task: nil, worker: nil, kind: "refused-summary", detail: detail)))
    }

    func sendFailed(_ peer: [UInt8], _ message: Message, unreachable: Bool, now: Int64) {
        count(unreachable ? "sends-dropped.unreachable" : "sends-dropped.queue-full")
        guard case let .assign(a) = message else { return }
        let id = workerID(peer)
        guard let t = heldLease(id, a.taskID, a.attempt) else { return }
        // The Assign never left: the worker is gone (killed between its last message and now) or
        // not reading. It is dead as surely as a silent one, and the attempt does not count.
        if workers[id]?.alive == true {
            workers[id]!.alive = false
            workers[id]!.free = false
            workers[id]!.generation += 1
            journal(.event(JournalEvent(atMs: now, task: nil, worker: id, kind: "worker-dead", detail: unreachable ? "unreachable" : "not reading (its queue is full)")))
        }
        release(t, outcome: .unsent, reason: "cannot reach worker \(id)", now: now)
    }

    // MARK: the sweep's end, stops, retries, drains

    func shutDown(_ id: String, _ code: ShutdownCode, _ reason: String) {
        guard let w = workers[id], w.alive else { return }
        send(w.peer, .shutdown(Shutdown(reason: reason, code: code)))
        if code == .drained {
            workers[id]!.alive = false
            workers[id]!.free = false
            workers[id]!.generation += 1
            journal(.event(JournalEvent(atMs: lastTickMs ?? startedMs, task: nil, worker: id, kind: "worker-drained", detail: reason)))
        }
    }

    func checkFinished(_ now: Int64) {
        guard isFinished, !announcedComplete else { return }
        announcedComplete = true
        journal(.event(JournalEvent(atMs: now, task: nil, worker: nil, kind: "sweep-complete",
                                    detail: "\(counts[.done] ?? 0) done, \(counts[.failed] ?? 0) failed")))
        summarise(now)
        guard config.exitWhenDone else { return }
        for id in workers.keys.sorted() where workers[id]!.alive { shutDown(id, .sweepComplete, "sweep complete") }
        effects.finished = true
    }

    func stop(_ reason: String, now: Int64) {
        guard !stopped else { return }
        stopped = true
        for (t, _) in leases.sorted(by: { $0.key < $1.key }) {
            release(t, outcome: .coordinatorStop, reason: "the coordinator stopped (\(reason))", now: now)
        }
        for id in workers.keys.sorted() where workers[id]!.alive {
            send(workers[id]!.peer, .shutdown(Shutdown(reason: "coordinator stopping: \(reason)", code: .coordinatorStopping)))
        }
        summarise(now)
        journal(.event(JournalEvent(atMs: now, task: nil, worker: nil, kind: "coordinator-stop",
                                    detail: "\(reason); \(counts[.done] ?? 0) of \(tasks.count) done")))
        effects.finished = true
    }

    func retryFailed(now: Int64) {
        let failed = rows.indices.filter { rows[$0].state == .failed }
        guard !failed.isEmpty else { return }
        // A journal restored complete has already said so (and asked to finish); the tasks
        // queued here undo that, or the coordinator would end before running them.
        announcedComplete = false
        effects.finished = false
        for t in failed {
            var row = rows[t]
            row.failures = 0
            row.handbacks = 0
            row.worker = nil
            row.finishedMs = nil
            let dep = tasks[t].dependsOn.flatMap { index[$0] }
            row.state = dep.map { rows[$0].state == .done ? TaskState.queued : .blocked } ?? .queued
            setRow(t, row, event: "retry", detail: "was failed: \(row.lastError ?? "")", now: now)
            failedOn[t] = nil
        }
        for t in failed where rows[t].state == .queued { makeWaiting(t, now: now) }
        journal(.event(JournalEvent(atMs: now, task: nil, worker: nil, kind: "retry-failed", detail: "\(failed.count) failed task(s) queued again")))
    }

    func drain(_ id: String, _ reason: String, now: Int64) {
        guard workers[id]?.alive == true else { return }
        workers[id]!.drainReason = reason
        workers[id]!.free = false
        workers[id]!.generation += 1
        if workers[id]!.task == nil { shutDown(id, .drained, reason) }
    }
}
