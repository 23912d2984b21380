import Messages
import Records

/// A task's state in the journal and the scheduler.
public enum TaskState: String, Sendable, CaseIterable {
    /// Waiting for the baseline it depends on.
    case blocked
    case queued
    case leased
    /// Its lease ended without a result (worker died, lease expired, handed back); it waits to be
    /// leased again. Scheduled exactly like `queued`.
    case stale
    case done
    case failed

    public var isFinished: Bool { self == .done || self == .failed }
    public var isWaiting: Bool { self == .queued || self == .stale }
}

/// The data a task needs: one shard of a data set. Tasks without data (no-op calibration tasks)
/// have none, and every worker can take them.
public struct DataKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var dataset: String
    public var shard: Int
    public var count: Int
    public init(dataset: String, shard: Int, count: Int) { self.dataset = dataset; self.shard = shard; self.count = count }

    /// The journal's meta key under which this shard's fingerprint is pinned.
    public var pinKey: String { "fingerprint:\(dataset):\(shard)/\(count)" }
    public var description: String { "\(dataset) shard \(shard)/\(count)" }
    public static func < (a: DataKey, b: DataKey) -> Bool { (a.dataset, a.shard, a.count) < (b.dataset, b.shard, b.count) }
}

/// What the scheduler needs to know of a planned task: fixed when the plan is journaled.
public struct PlannedTask: Sendable, Equatable {
    public enum Kind: String, Sendable { case baseline, prune, noop }
    public var id: String
    public var kind: Kind
    public var label: String
    /// The spec as `Assign` carries it (`apsweep.task.v1+json`).
    public var spec: [UInt8]
    /// The task (a baseline) whose result this one needs.
    public var dependsOn: String?
    public var data: DataKey?
    /// The epochs a result must hold, each once (nil: none, as for no-op tasks).
    public var epochs: ClosedRange<Int>?
    /// A checkpoint the task needs that is not another task's output (a baseline given as a file).
    public var requiredBlob: String?

    public init(id: String, kind: Kind, label: String, spec: [UInt8], dependsOn: String?, data: DataKey?, epochs: ClosedRange<Int>?,
                requiredBlob: String? = nil) {
        self.id = id; self.kind = kind; self.label = label; self.spec = spec; self.dependsOn = dependsOn
        self.data = data; self.epochs = epochs; self.requiredBlob = requiredBlob
    }
}

/// A task's mutable state as the journal stores it (one row per task).
public struct TaskRow: Sendable, Equatable {
    public var state: TaskState
    /// Leases issued so far; the number the current `Assign` carries.
    public var attempt = 0
    /// Failures of the task itself (its worker died or was cut off, it raised, its result was
    /// invalid, it ran past its lease): what `max_attempts` counts.
    public var failures = 0
    /// Leases that ended for reasons outside the task (hand-backs, preemption, BUSY, coordinator
    /// restarts or stops): counted against the larger `max_handbacks` only.
    public var handbacks = 0
    /// The lease holder while leased; who finished it when done or failed.
    public var worker: String?
    public var lastError: String?
    /// A baseline's checkpoint (content hash).
    public var checkpoint: String?
    public var baseline: BaselineSummary?
    public var startedMs: Int64?
    public var finishedMs: Int64?

    public init(state: TaskState) { self.state = state }
}

/// Why a lease ended.
public enum LeaseOutcome: String, Sendable, CaseIterable {
    case done
    /// Finished by another holder (the late-result rule) or cancelled.
    case superseded
    /// The worker said the task failed (not retryable), or its result was invalid.
    case taskFailed = "task-failed"
    /// The worker went silent past the liveness window or came back without the task.
    case workerLost = "worker-lost"
    /// The lease ran out without a heartbeat renewing it.
    case expired
    /// The worker handed it back (SIGTERM, preemption, lost data): not the task's fault.
    case handedBack = "handed-back"
    /// The worker was busy (a reconnect raced the Assign).
    case busy
    /// The Assign could not be sent (the worker's connection was gone).
    case unsent
    /// Lost before the holder ever confirmed running it (no heartbeat naming it, no Progress):
    /// the task never ran, so this is not its failure.
    case unconfirmed
    /// The coordinator restarted (crash) and the holder did not come back with the task.
    case coordinatorRestart = "coordinator-restart"
    /// The coordinator stopped cleanly (SIGTERM/SIGINT).
    case coordinatorStop = "coordinator-stop"

    /// Whether this ending counts against `max_attempts`.
    public var countsAgainstTask: Bool {
        switch self {
        case .taskFailed, .workerLost, .expired: return true
        default: return false
        }
    }
}

/// One lease as the journal keeps it.
public struct LeaseRow: Sendable, Equatable {
    public var task: Int
    public var attempt: Int
    public var worker: String
    public var startedMs: Int64
    /// Nil while the lease is live.
    public var outcome: LeaseOutcome?
    public init(task: Int, attempt: Int, worker: String, startedMs: Int64, outcome: LeaseOutcome? = nil) {
        self.task = task; self.attempt = attempt; self.worker = worker; self.startedMs = startedMs; self.outcome = outcome
    }
}

/// A line of the journal's event log (what `status`, reports and people read).
public struct JournalEvent: Sendable, Equatable {
    public var atMs: Int64
    public var task: String?
    public var worker: String?
    public var kind: String
    public var detail: String?
    public init(atMs: Int64, task: String?, worker: String?, kind: String, detail: String?) {
        self.atMs = atMs; self.task = task; self.worker = worker; self.kind = kind; self.detail = detail
    }
}

/// A worker as the journal remembers it.
public struct WorkerSeen: Sendable, Equatable {
    public var id: String, host: String, cores: Int, version: String, data: String, atMs: Int64
    public init(id: String, host: String, cores: Int, version: String, data: String, atMs: Int64) {
        self.id = id; self.host = host; self.cores = cores; self.version = version; self.data = data; self.atMs = atMs
    }
}

/// One change the scheduler asks the journal to make. A batch of operations is applied as one
/// transaction, and the coordinator sends nothing that depends on a batch before it commits.
public enum JournalOp: Sendable, Equatable {
    /// The whole row of task `index` (plan order) after the change.
    case task(index: Int, row: TaskRow)
    case lease(LeaseRow)
    case endLease(task: Int, attempt: Int, outcome: LeaseOutcome)
    /// Records of task `index`: `replace` drops every stored record of the task first (a Result);
    /// otherwise the epochs given are stored or overwritten (Progress).
    case records(task: Int, records: [EpochRecord], replace: Bool)
    case pin(key: String, fingerprint: String)
    case blob(hash: String, size: UInt64)
    /// A blob the store no longer holds intact.
    case blobLost(hash: String)
    case worker(WorkerSeen)
    case event(JournalEvent)
    case meta(key: String, value: String)
}

/// What a coordinator restores from its journal: the plan, every row, the lease history, the
/// pinned fingerprints and the stored blobs.
public struct JournalState: Sendable, Equatable {
    public var sweepID: String
    public var tasks: [PlannedTask]
    public var rows: [TaskRow]
    public var leases: [LeaseRow]
    public var pins: [String: String]
    public var blobs: [String: UInt64]
    public init(sweepID: String, tasks: [PlannedTask], rows: [TaskRow], leases: [LeaseRow] = [], pins: [String: String] = [:],
                blobs: [String: UInt64] = [:]) {
        self.sweepID = sweepID; self.tasks = tasks; self.rows = rows; self.leases = leases; self.pins = pins; self.blobs = blobs
    }
}

/// Where the scheduler's decisions are made durable. The SQLite journal implements it in
/// production; `MemoryJournal` in the simulator, where a coordinator crash keeps exactly what was
/// committed.
public protocol JournalStore: AnyObject {
    /// Applies `ops` atomically: all of them or, when it throws, none.
    func apply(_ ops: [JournalOp]) throws
    /// The state as committed so far.
    func load() throws -> JournalState
}
