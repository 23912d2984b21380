import Foundation
import Messages
import Records
import Scheduling

/// The sweep's journal: one SQLite file (WAL while a coordinator runs, a plain single file after
/// it closes) holding the plan, every task row, every lease, every record (compact and
/// checksummed), every worker seen and the event log. It implements the scheduler's
/// `JournalStore`: a batch of operations is one transaction.
///
/// Schema version 2 (`PRAGMA user_version`), marked as apsweep's by `PRAGMA application_id`
/// ('APSW'); journals of version 1 are migrated when opened for writing, and read through a
/// migrated copy when opened read-only.
public final class SweepJournal: JournalStore {
    public static let schemaVersion = 2

    /// The tables of schema version 2 that hold a sweep (a fresh journal and the migration from
    /// version 1 both create them from here).
    static let sweepTables = """
            CREATE TABLE tasks(position INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, label TEXT NOT NULL,
                spec BLOB NOT NULL, depends_on TEXT, data_dataset TEXT, data_shard INTEGER, data_count INTEGER,
                epoch_first INTEGER, epoch_last INTEGER, required_blob TEXT,
                state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,
                handbacks INTEGER NOT NULL DEFAULT 0, worker TEXT, last_error TEXT, checkpoint TEXT,
                baseline_train_accuracy REAL, baseline_test_accuracy REAL, baseline_train_loss REAL, baseline_test_loss REAL,
                started_ms INTEGER, finished_ms INTEGER);
            CREATE TABLE leases(task INTEGER NOT NULL, attempt INTEGER NOT NULL, worker TEXT NOT NULL, started_ms INTEGER NOT NULL,
                outcome TEXT, PRIMARY KEY(task, attempt)) WITHOUT ROWID;
            CREATE TABLE records(task INTEGER NOT NULL, epoch INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY(task, epoch)) WITHOUT ROWID;
            CREATE TABLE names(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
            CREATE TABLE events(seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, task_id TEXT, worker TEXT, kind TEXT NOT NULL, detail TEXT);
        """
    static let workersTable = "CREATE TABLE workers(id TEXT PRIMARY KEY, host TEXT, cores INTEGER, version TEXT, data TEXT, first_seen_ms INTEGER, last_seen_ms INTEGER)"
    static let blobsTable = "CREATE TABLE blobs(hash TEXT PRIMARY KEY, size INTEGER NOT NULL, stored_ms INTEGER NOT NULL)"

    /// 'APSW', in the database header: what tells an apsweep journal from other SQLite files.
    public static let applicationID: Int32 = 0x4150_5357
    let db: Database
    public let path: String
    public let readOnly: Bool
    let names: MemoryNameTable
    /// The tasks `storePlan` just wrote into an empty journal, for the `load` that follows (the
    /// coordinator's start): it then reads no task back (0.2 s at 100,000 tasks) and, with specs,
    /// shares them instead of copying them. Any other write forgets them.
    private var justPlanned: [PlannedTask]?

    /// How to describe the tasks of an older journal (the coordinator's plan knows their specs).
    public typealias Describe = (_ id: String, _ kind: String, _ label: String, _ spec: [UInt8], _ dependsOn: String?) throws -> PlannedTask

    /// Opens (creating when absent) the journal at `path` for writing. Take a `JournalLock` first.
    public static func openForWriting(_ path: String, describe: Describe? = nil) throws -> SweepJournal {
        let db = try Database(path: path)
        let found = try Layout.inspect(db)
        switch found {
        case .empty: try Layout.create(db)
        case .current: break
        case .version1:
            guard let describe else { throw JournalError.schema("\(path): journal schema 1; open it with apsweep sweep, coordinator or report, which migrate it") }
            try Migration.fromVersion1(db, describe: describe)
        case let .other(why): throw JournalError.notAJournal("\(path): \(why)")
        }
        try db.execute("PRAGMA journal_mode=WAL")
        try db.execute("PRAGMA synchronous=NORMAL")
        return try SweepJournal(db: db, readOnly: false)
    }

    /// Opens the journal at `path` without writing to it (reports, status, tests), refusing any
    /// file that is not an apsweep journal. A version 1 journal is read through a migrated copy.
    public static func openForReading(_ path: String, describe: Describe? = nil) throws -> SweepJournal {
        guard FileManager.default.fileExists(atPath: path) else { throw JournalError.notAJournal("\(path): no such journal") }
        let db = try Database(path: path, readOnly: true)
        switch try Layout.inspect(db) {
        case .current:
            return try SweepJournal(db: db, readOnly: true)
        case .empty:
            throw JournalError.notAJournal("\(path): an empty file, not an apsweep journal (journals are the sweep.db a sweep or coordinator writes)")
        case let .other(why):
            throw JournalError.notAJournal("\(path): \(why)")
        case .version1:
            db.close()
            guard let describe else { throw JournalError.schema("\(path): journal schema 1 needs migrating; open it with apsweep report") }
            let copy = NSTemporaryDirectory() + "apsweep-migrated-\(getpid())-\(UUID().uuidString.prefix(8)).db"
            try FileManager.default.copyItem(atPath: path, toPath: copy)
            for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
                try? FileManager.default.copyItem(atPath: path + suffix, toPath: copy + suffix)
            }
            let migrated = try openForWriting(copy, describe: describe)
            migrated.close()
            return try openForReading(copy)
        }
    }

    init(db: Database, readOnly: Bool) throws {
        self.db = db
        self.path = db.path
        self.readOnly = readOnly
        var pairs: [(UInt32, String)] = []
        try db.run("SELECT id, name FROM names") { pairs.append((UInt32($0.int(0)), $0.text(1) ?? "")) }
        names = MemoryNameTable(pairs)
    }

    /// Checkpoints the WAL into the file, switches it to a plain single-file database and closes
    /// it: after this, copying sweep.db copies everything.
    public func close() {
        guard db.isOpen else { return }
        if !readOnly {
            try? db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            try? db.execute("PRAGMA journal_mode=DELETE")
        }
        db.close()
    }

    /// Copies the WAL's committed pages into the main file (cheap; the coordinator does it now
    /// and then, so that a copy of sweep.db alone is never far behind).
    public func checkpoint() {
        guard !readOnly else { return }
        try? db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    }

    // MARK: meta

    public func meta(_ key: String) throws -> String? { try db.scalar("SELECT value FROM meta WHERE key = ?1", [.text(key)]) }

    public func setMeta(_ key: String, _ value: String) throws {
        try db.run("INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [.text(key), .text(value)])
    }

    /// Meta entries whose key starts with `prefix`, sorted by key.
    public func meta(prefix: String) throws -> [(key: String, value: String)] {
        var out: [(String, String)] = []
        try db.run("SELECT key, value FROM meta WHERE key >= ?1 AND key < ?2 ORDER BY key", [.text(prefix), .text(prefix + "\u{10FFFF}")]) {
            out.append(($0.text(0) ?? "", $0.text(1) ?? ""))
        }
        return out
    }

    // MARK: the plan

    /// Whether the journal holds a plan made from exactly this sweep file's text (so planning it
    /// again would store nothing new).
    public func wasPlanned(from sweepText: String) throws -> Bool {
        guard !sweepText.isEmpty, try meta("sweep") == sweepText else { return false }
        return try taskCount() > 0
    }

    /// Stores the plan once; a journal that holds another plan is refused (one sweep per
    /// journal). The data fingerprints the plan pins must agree with those already pinned.
    /// Nothing is written unless every check passes.
    public func storePlan(_ tasks: [PlannedTask], pins: [String: String], sweepText: String, sweepID: String) throws {
        var known: [String] = []
        try db.run("SELECT id FROM tasks ORDER BY position") { known.append($0.text(0) ?? "") }
        if !known.isEmpty && known != tasks.map(\.id) {
            throw JournalError.schema("\(path) holds another sweep (\(known.count) tasks, different ids); give a new journal (--journal / --dir) or the sweep file it was made from")
        }
        let sortedPins = pins.sorted { $0.key < $1.key }
        for (key, fp) in sortedPins {
            if let pinned = try meta(key), pinned != fp {
                throw JournalError.schema("\(path): the sweep ran on \(key.dropFirst("fingerprint:".count)) with SHA-256 \(pinned), the sweep file says \(fp); fix data.fingerprints or give a new journal")
            }
        }
        // The plan goes through the WAL like every write. (Writing the first plan through a
        // rollback journal saved 0.25 s at 100,000 tasks, but a reader that opened the file then,
        // `apsweep status` or a test polling it, could keep it from returning to WAL mode, and in
        // rollback mode readers block the coordinator's commits.)
        try db.transaction {
            for (key, fp) in sortedPins { try setMeta(key, fp) }
            guard known.isEmpty else { return }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            try db.runEach("""
                INSERT INTO tasks(position, id, kind, label, spec, depends_on, data_dataset, data_shard, data_count, epoch_first, epoch_last,
                                  required_blob, state) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                """, tasks.enumerated()) { row, b in
                let (i, t) = row
                b.int(1, i); b.text(2, t.id); b.text(3, t.kind.rawValue); b.text(4, t.label); b.blob(5, t.spec); b.text(6, t.dependsOn)
                b.text(7, t.data?.dataset); b.int(8, t.data?.shard); b.int(9, t.data?.count)
                b.int(10, t.epochs?.lowerBound); b.int(11, t.epochs?.upperBound)
                b.text(12, t.requiredBlob); b.text(13, (t.dependsOn == nil ? TaskState.queued : .blocked).rawValue)
            }
            try setMeta("sweep", sweepText)
            try setMeta("sweep_id", sweepID)
            try setMeta("created_ms", String(now))
            try event(JournalEvent(atMs: now, task: nil, worker: nil, kind: "plan", detail: "\(tasks.count) tasks"))
        }
        if known.isEmpty { justPlanned = tasks }
    }

    // MARK: JournalStore

    public func apply(_ ops: [JournalOp]) throws {
        guard !ops.isEmpty else { return }
        guard !readOnly else { throw JournalError.sqlite("\(path): opened read-only") }
        justPlanned = nil
        do {
            try db.transaction {
                for op in ops { try apply(op) }
                for (id, name) in names.takeAdded() { try db.run("INSERT INTO names(id, name) VALUES(?1, ?2)", [.int(Int64(id)), .text(name)]) }
            }
        } catch {
            names.discardAdded()
            throw error
        }
    }

    func apply(_ op: JournalOp) throws {
        switch op {
        case let .task(index, row):
            try db.run("""
                UPDATE tasks SET state = ?2, attempt = ?3, failures = ?4, handbacks = ?5, worker = ?6, last_error = ?7, checkpoint = ?8,
                    baseline_train_accuracy = ?9, baseline_test_accuracy = ?10, baseline_train_loss = ?11, baseline_test_loss = ?12,
                    started_ms = ?13, finished_ms = ?14 WHERE position = ?1
                """, [.int(Int64(index)), .text(row.state.rawValue), .int(Int64(row.attempt)), .int(Int64(row.failures)), .int(Int64(row.handbacks)),
                      text(row.worker), text(row.lastError), text(row.checkpoint),
                      real(row.baseline?.trainAccuracy), real(row.baseline?.testAccuracy), real(row.baseline?.trainLoss), real(row.baseline?.testLoss),
                      int(row.startedMs), int(row.finishedMs)])
        case let .lease(l):
            try db.run("INSERT OR REPLACE INTO leases(task, attempt, worker, started_ms, outcome) VALUES(?1, ?2, ?3, ?4, NULL)",
                       [.int(Int64(l.task)), .int(Int64(l.attempt)), .text(l.worker), .int(l.startedMs)])
        case let .endLease(task, attempt, outcome):
            try db.run("UPDATE leases SET outcome = ?3 WHERE task = ?1 AND attempt = ?2 AND outcome IS NULL",
                       [.int(Int64(task)), .int(Int64(attempt)), .text(outcome.rawValue)])
        case let .records(task, records, replace):
            if replace { try db.run("DELETE FROM records WHERE task = ?1", [.int(Int64(task))]) }
            for r in records {
                try db.run("INSERT OR REPLACE INTO records(task, epoch, data) VALUES(?1, ?2, ?3)",
                           [.int(Int64(task)), .int(Int64(r.epoch)), .blob(RecordCoding.encode(r, names: names))])
            }
        case let .pin(key, fp):
            try setMeta(key, fp)
        case let .blob(hash, size):
            try db.run("INSERT OR REPLACE INTO blobs(hash, size, stored_ms) VALUES(?1, ?2, ?3)", [.text(hash), .int(Int64(size)), .int(nowMs())])
        case let .blobLost(hash):
            try db.run("DELETE FROM blobs WHERE hash = ?1", [.text(hash)])
        case let .worker(w):
            try db.run("""
                INSERT INTO workers(id, host, cores, version, data, first_seen_ms, last_seen_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)
                ON CONFLICT(id) DO UPDATE SET host = excluded.host, cores = excluded.cores, version = excluded.version,
                    data = excluded.data, last_seen_ms = excluded.last_seen_ms
                """, [.text(w.id), .text(w.host), .int(Int64(w.cores)), .text(w.version), .text(w.data), .int(w.atMs)])
        case let .event(e):
            try event(e)
        case let .meta(key, value):
            try setMeta(key, value)
        }
    }

    func event(_ e: JournalEvent) throws {
        try db.run("INSERT INTO events(at_ms, task_id, worker, kind, detail) VALUES(?1, ?2, ?3, ?4, ?5)",
                   [.int(e.atMs), text(e.task), text(e.worker), .text(e.kind), text(e.detail)])
    }

    public func load() throws -> JournalState { try load(specs: true) }

    /// The state as committed; with `specs: false` every task's spec is left empty (100,000
    /// specs are 64 MB), for a holder that reads each one when it needs it (`spec(ofTask:)`).
    public func load(specs: Bool) throws -> JournalState {
        var tasks: [PlannedTask] = [], rows: [TaskRow] = []
        if let fresh = justPlanned {
            // As storePlan wrote them: nothing has run yet.
            tasks = specs ? fresh : fresh.map { t in var t = t; t.spec = []; return t }
            rows = fresh.map { TaskRow(state: $0.dependsOn == nil ? .queued : .blocked) }
            justPlanned = nil
        } else {
            let n = try taskCount()
            tasks.reserveCapacity(n)
            rows.reserveCapacity(n)
            try forEachTask(withSpec: specs ? nil : { _, _ in false }) { _, task, row in
                tasks.append(task)
                rows.append(row)
            }
        }
        var leases: [LeaseRow] = []
        try db.run("SELECT task, attempt, worker, started_ms, outcome FROM leases ORDER BY task, attempt") { r in
            leases.append(LeaseRow(task: Int(r.int(0)), attempt: Int(r.int(1)), worker: r.text(2) ?? "", startedMs: r.int(3),
                                   outcome: r.text(4).flatMap(LeaseOutcome.init(rawValue:))))
        }
        var pins: [String: String] = [:]
        for (k, v) in try meta(prefix: "fingerprint:") { pins[k] = v }
        var blobs: [String: UInt64] = [:]
        try db.run("SELECT hash, size FROM blobs") { blobs[$0.text(0) ?? ""] = UInt64(max(0, $0.int(1))) }
        return JournalState(sweepID: try meta("sweep_id") ?? "", tasks: tasks, rows: rows, leases: leases, pins: pins, blobs: blobs)
    }

    // MARK: readers

    /// How many tasks the plan holds (0 before one is stored).
    public func taskCount() throws -> Int { Int(try db.scalar("SELECT COUNT(*) FROM tasks") ?? "0") ?? 0 }

    /// The canonical spec of the task with this id (what Assign carries).
    public func spec(ofTask id: String) throws -> [UInt8] {
        var spec: [UInt8]?
        try db.run("SELECT spec FROM tasks WHERE id = ?1", [.text(id)]) { spec = $0.blob(0) }
        guard let spec, !spec.isEmpty else { throw JournalError.schema("\(path): task \(id) has no spec in the journal") }
        return spec
    }

    /// Every task of the plan with its row, in plan order. `withSpec` says, from a task's position and kind,
    /// whether its spec is wanted (an empty spec otherwise: 100,000 specs are ~70 MB).
    public func tasks(withSpec: ((Int, PlannedTask.Kind) -> Bool)? = nil) throws -> [(task: PlannedTask, row: TaskRow)] {
        var out: [(task: PlannedTask, row: TaskRow)] = []
        out.reserveCapacity(try taskCount())
        try forEachTask(withSpec: withSpec) { _, task, row in out.append((task, row)) }
        return out
    }

    /// Every task with its row, in plan order, one at a time (`tasks(withSpec:)` without the
    /// list); `body` gets each one's position.
    public func forEachTask(withSpec: ((Int, PlannedTask.Kind) -> Bool)? = nil,
                            _ body: (_ position: Int, _ task: PlannedTask, _ row: TaskRow) throws -> Void) throws {
        var position = 0
        try db.run("""
            SELECT id, kind, label, spec, depends_on, data_dataset, data_shard, data_count, epoch_first, epoch_last, required_blob,
                   state, attempt, failures, handbacks, worker, last_error, checkpoint,
                   baseline_train_accuracy, baseline_test_accuracy, baseline_train_loss, baseline_test_loss, started_ms, finished_ms
            FROM tasks ORDER BY position
            """) { r in
            let data = r.isNull(5) ? nil : DataKey(dataset: r.text(5) ?? "", shard: Int(r.int(6)), count: Int(r.int(7)))
            let first = r.int(8), last = r.int(9)
            let epochs: ClosedRange<Int>? = r.isNull(8) || last < first || last - first > 1 << 20 ? nil : Int(first)...Int(last)
            let kind = PlannedTask.Kind(rawValue: r.text(1) ?? "") ?? .noop
            let task = PlannedTask(id: r.text(0) ?? "", kind: kind, label: r.text(2) ?? "",
                                   spec: withSpec?(position, kind) ?? true ? r.blob(3) : [], dependsOn: r.text(4), data: data, epochs: epochs, requiredBlob: r.text(10))
            var row = TaskRow(state: TaskState(rawValue: r.text(11) ?? "") ?? .queued)
            row.attempt = Int(r.int(12)); row.failures = Int(r.int(13)); row.handbacks = Int(r.int(14))
            row.worker = r.text(15); row.lastError = r.text(16); row.checkpoint = r.text(17)
            if !r.isNull(18) {
                row.baseline = BaselineSummary(trainAccuracy: r.double(18), testAccuracy: r.double(19), trainLoss: r.double(20), testLoss: r.double(21))
            }
            row.startedMs = r.isNull(22) ? nil : r.int(22)
            row.finishedMs = r.isNull(23) ? nil : r.int(23)
            try body(position, task, row)
            position += 1
        }
    }

    /// A stored record that cannot be read, with the task and epoch it belongs to.
    public struct DamagedRecord: Sendable, Equatable, CustomStringConvertible {
        public var task: Int, taskID: String, epoch: Int, reason: String
        public var description: String { "record of task \(taskID) epoch \(epoch): \(reason)" }
        public init(task: Int, taskID: String, epoch: Int, reason: String) {
            self.task = task; self.taskID = taskID; self.epoch = epoch; self.reason = reason
        }
    }

    /// Every stored record in (task, epoch) order, one at a time (the whole journal is never in
    /// memory); damaged ones are passed to `damaged`, never dropped silently. `only`: just the
    /// records of these tasks (positions, in the order given).
    public func forEachRecord(tasks only: [Int]? = nil, _ body: (_ task: Int, _ record: EpochRecord) throws -> Void,
                              damaged: (DamagedRecord) throws -> Void) throws {
        var ids: [Int: String] = [:]
        try db.run("SELECT position, id FROM tasks") { ids[Int($0.int(0))] = $0.text(1) ?? "" }
        guard let only else {
            return try db.run("SELECT task, epoch, data FROM records ORDER BY task, epoch") { try readRecord($0, ids, body, damaged) }
        }
        for task in only {
            try db.run("SELECT task, epoch, data FROM records WHERE task = ?1 ORDER BY epoch", [.int(Int64(task))]) { try readRecord($0, ids, body, damaged) }
        }
    }

    private func readRecord(_ r: Database.Row, _ ids: [Int: String], _ body: (_ task: Int, _ record: EpochRecord) throws -> Void,
                            _ damaged: (DamagedRecord) throws -> Void) throws {
        let task = Int(r.int(0)), epoch = Int(clamping: r.int(1))
        do {
            let bytes = r.blob(2)
            var decoded = try? RecordCoding.decode(bytes, names: names)
            // A reader opened before the writer stored a new metric name learns it here.
            if decoded == nil && readOnly && (try? learnNames()) ?? 0 > 0 { decoded = try? RecordCoding.decode(bytes, names: names) }
            let record = try decoded ?? RecordCoding.decode(bytes, names: names)
            guard record.epoch == epoch else { throw RecordError("stored under epoch \(epoch) but holds epoch \(record.epoch)") }
            try body(task, record)
        } catch let e as RecordError {
            try damaged(DamagedRecord(task: task, taskID: ids[task] ?? "#\(task)", epoch: epoch, reason: e.description))
        }
    }

    /// Loads names the writer added since this connection read them; returns how many.
    func learnNames() throws -> Int {
        var pairs: [(UInt32, String)] = []
        try db.run("SELECT id, name FROM names WHERE id >= ?1 ORDER BY id", [.int(Int64(names.names.count))]) { pairs.append((UInt32($0.int(0)), $0.text(1) ?? "")) }
        return names.learn(pairs)
    }

    /// The readable records of one task, and the damaged ones.
    public func records(ofTask task: Int) throws -> (records: [EpochRecord], damaged: [DamagedRecord]) {
        var records: [EpochRecord] = [], damaged: [DamagedRecord] = []
        try forEachRecord(tasks: [task], { records.append($1) }, damaged: { damaged.append($0) })
        return (records, damaged)
    }

    /// Changes whenever another connection commits (SQLite's data_version): tells a reader that
    /// re-reading is worth it.
    public func dataVersion() throws -> String? { try db.scalar("PRAGMA data_version") }

    /// Records the finished and running tasks hold or will hold (from the plan's epoch ranges;
    /// no scan of the records).
    public func expectedRecordCount() throws -> Int {
        Int(try db.scalar("SELECT COALESCE(SUM(epoch_last - epoch_first + 1), 0) FROM tasks WHERE state IN ('done', 'leased') AND epoch_last IS NOT NULL") ?? "0") ?? 0
    }

    public func recordCount() throws -> Int { Int(try db.scalar("SELECT COUNT(*) FROM records") ?? "0") ?? 0 }

    /// Events of one kind in order (or every event).
    public func events(kind: String? = nil) throws -> [JournalEvent] {
        var out: [JournalEvent] = []
        let sql = kind == nil ? "SELECT at_ms, task_id, worker, kind, detail FROM events ORDER BY seq"
                              : "SELECT at_ms, task_id, worker, kind, detail FROM events WHERE kind = ?1 ORDER BY seq"
        try db.run(sql, kind.map { [.text($0)] } ?? []) { r in
            out.append(JournalEvent(atMs: r.int(0), task: r.text(1), worker: r.text(2), kind: r.text(3) ?? "", detail: r.text(4)))
        }
        return out
    }

    public func eventCount() throws -> Int { Int(try db.scalar("SELECT COUNT(*) FROM events") ?? "0") ?? 0 }

    /// Every lease in (task, attempt) order.
    public func leases() throws -> [LeaseRow] { try load().leases }

    /// Workers seen, in the order they first said Hello.
    public func workersSeen() throws -> [WorkerSeen] {
        var out: [WorkerSeen] = []
        try db.run("SELECT id, host, cores, version, data, first_seen_ms FROM workers ORDER BY first_seen_ms, id") { r in
            out.append(WorkerSeen(id: r.text(0) ?? "", host: r.text(1) ?? "", cores: Int(r.int(2)), version: r.text(3) ?? "", data: r.text(4) ?? "", atMs: r.int(5)))
        }
        return out
    }

    /// The file's size in bytes (main file and WAL).
    public var bytes: Int {
        let size = { (p: String) in ((try? FileManager.default.attributesOfItem(atPath: p))?[.size] as? NSNumber)?.intValue ?? 0 }
        return size(path) + size(path + "-wal")
    }

    func text(_ s: String?) -> Database.Value { s.map { .text($0) } ?? .null }
    func real(_ d: Double?) -> Database.Value { d.map { .double($0) } ?? .null }
    func int(_ i: Int64?) -> Database.Value { i.map { .int($0) } ?? .null }
}

public func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

/// The tables of schema version 2, and telling what a file holds.
enum Layout {
    enum Found { case empty, current, version1, other(String) }

    static func inspect(_ db: Database) throws -> Found {
        let appID: String
        do { appID = try db.scalar("PRAGMA application_id") ?? "0" } catch let e as JournalError {
            if case .corrupt = e { return .other("not an SQLite database (\(e))") }
            throw e
        }
        var tables: [String] = []
        try db.run("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") { tables.append($0.text(0) ?? "") }
        if Int32(appID) == SweepJournal.applicationID {
            let version = Int(try db.scalar("PRAGMA user_version") ?? "0") ?? 0
            guard version == SweepJournal.schemaVersion else {
                throw JournalError.schema("\(db.path): journal schema \(version), apsweep \(apsweepVersion) reads schema \(SweepJournal.schemaVersion); use the apsweep version that wrote it")
            }
            return .current
        }
        if tables.isEmpty { return .empty }
        if tables.contains("meta"), let v = try? db.scalar("SELECT value FROM meta WHERE key = 'schema_version'") {
            if v == "1" && tables.contains("tasks") && tables.contains("records") { return .version1 }
            return .other("an apsweep journal of schema \(v), which this apsweep cannot read; use the apsweep version that wrote it")
        }
        return .other("an SQLite database of another program (tables: \(tables.prefix(8).joined(separator: ", "))), not an apsweep journal")
    }

    static func create(_ db: Database) throws {
        try db.transaction {
            try db.execute("""
                PRAGMA application_id = \(SweepJournal.applicationID);
                PRAGMA user_version = \(SweepJournal.schemaVersion);
                CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                \(SweepJournal.sweepTables)
                \(SweepJournal.workersTable);
                \(SweepJournal.blobsTable);
                CREATE INDEX events_kind ON events(kind);
                INSERT INTO meta(key, value) VALUES('schema_version', '\(SweepJournal.schemaVersion)');
                """)
        }
    }
}
