import Records

/// A journal in memory with the SQLite journal's semantics: batches are atomic, and what a
/// "crashed" coordinator leaves behind is exactly what was committed. The simulator restores
/// coordinators from it; tests compare it against the SQLite journal fed the same operations.
public final class MemoryJournal: JournalStore {
    public private(set) var state: JournalState
    /// Records by task index, then epoch.
    public private(set) var records: [Int: [Int: EpochRecord]] = [:]
    public private(set) var events: [JournalEvent] = []
    public private(set) var workers: [String: WorkerSeen] = [:]
    public private(set) var meta: [String: String] = [:]
    /// Every batch committed, in order (the simulator's record of what was made durable).
    public private(set) var committed: [[JournalOp]] = []
    /// When set, `apply` throws instead of committing (a full disk), as long as it returns true.
    public var failNext: (([JournalOp]) -> Bool)?

    public struct Full: Error, CustomStringConvertible {
        public var description: String { "the journal's disk is full (simulated)" }
    }

    public init(_ initial: JournalState) { state = initial }

    public func apply(_ ops: [JournalOp]) throws {
        if let failNext, failNext(ops) { throw Full() }
        var s = state, r = records, e = events, w = workers, m = meta
        for op in ops {
            switch op {
            case let .task(index, row): s.rows[index] = row
            case let .lease(lease): s.leases.append(lease)
            case let .endLease(task, attempt, outcome):
                if let i = s.leases.lastIndex(where: { $0.task == task && $0.attempt == attempt && $0.outcome == nil }) { s.leases[i].outcome = outcome }
            case let .records(task, list, replace):
                if replace { r[task] = [:] }
                for rec in list { r[task, default: [:]][rec.epoch] = rec }
            case let .pin(key, fp): s.pins[key] = fp
            case let .blob(hash, size): s.blobs[hash] = size
            case let .blobLost(hash): s.blobs[hash] = nil
            case let .worker(seen): w[seen.id] = seen
            case let .event(event): e.append(event)
            case let .meta(key, value): m[key] = value
            }
        }
        state = s; records = r; events = e; workers = w; meta = m
        committed.append(ops)
    }

    public func load() throws -> JournalState { state }

    /// The stored records of a task in epoch order.
    public func records(of task: Int) -> [EpochRecord] { (records[task] ?? [:]).sorted { $0.key < $1.key }.map(\.value) }
}
