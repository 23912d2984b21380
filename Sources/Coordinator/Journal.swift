import Foundation
import Wire

/// A task's state in the journal and the scheduler.
public enum TaskState: String, Sendable, CaseIterable {
    /// Waiting for the baseline it depends on.
    case blocked
    case queued
    case leased
    /// Its lease ended without a result (worker died, lease expired, retryable failure); it is
    /// queued again with attempt + 1.
    case stale
    case done
    case failed
}

/// The sweep's SQLite journal (WAL mode): the plan, every state change, every record, every worker.
///
/// The coordinator writes here *before* it acts (a lease is committed before its Assign is sent),
/// so after a crash the journal never claims less than what happened. Schema version 1.
public final class Journal {
    public static let schemaVersion = 1
    /// The SQLite connection (module-internal readers such as the report use it directly).
    let db: Database

    public init(path: String) throws {
        db = try Database(path: path)
        try db.execute("PRAGMA journal_mode=WAL")
        try db.execute("PRAGMA synchronous=NORMAL")
        try db.execute("""
            CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS tasks(
                id TEXT PRIMARY KEY, position INTEGER NOT NULL, kind TEXT NOT NULL, label TEXT NOT NULL,
                spec BLOB NOT NULL, depends_on TEXT, state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0,
                worker TEXT, lease_deadline_ms INTEGER, last_error TEXT, checkpoint TEXT,
                baseline_train_accuracy REAL, baseline_test_accuracy REAL, baseline_train_loss REAL, baseline_test_loss REAL,
                started_ms INTEGER, finished_ms INTEGER);
            CREATE TABLE IF NOT EXISTS records(task_id TEXT NOT NULL, epoch INTEGER NOT NULL, record TEXT NOT NULL,
                PRIMARY KEY(task_id, epoch));
            CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL,
                task_id TEXT, worker TEXT, kind TEXT NOT NULL, detail TEXT);
            CREATE TABLE IF NOT EXISTS workers(id TEXT PRIMARY KEY, host TEXT, cores INTEGER, version TEXT, data TEXT,
                first_seen_ms INTEGER, last_seen_ms INTEGER);
            CREATE TABLE IF NOT EXISTS blobs(hash TEXT PRIMARY KEY, size INTEGER NOT NULL, stored_ms INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS tasks_depends_on ON tasks(depends_on);
            CREATE INDEX IF NOT EXISTS events_kind ON events(kind);
            """)
        var version: String?
        try db.run("SELECT value FROM meta WHERE key = 'schema_version'") { version = $0.text(0) }
        if let version {
            guard Int(version) == Journal.schemaVersion else {
                throw JournalError.schema("\(path): journal schema \(version), this apsweep reads \(Journal.schemaVersion); use the apsweep version that wrote it")
            }
        } else {
            try db.run("INSERT INTO meta(key, value) VALUES('schema_version', ?1)", [.text(String(Journal.schemaVersion))])
        }
    }

    public var path: String { db.path }

    public func meta(_ key: String) throws -> String? {
        var value: String?
        try db.run("SELECT value FROM meta WHERE key = ?1", [.text(key)]) { value = $0.text(0) }
        return value
    }

    public func setMeta(_ key: String, _ value: String) throws {
        try db.run("INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [.text(key), .text(value)])
    }

    /// Stores the plan once; a journal that holds another plan is refused (one sweep per journal).
    /// The data fingerprints the plan fixes are pinned; one that contradicts a fingerprint the
    /// journal already pinned is refused (the sweep ran on other data).
    public func storePlan(_ plan: Plan, sweepText: String) throws {
        let count = try countTasks()
        if count > 0 {
            var known = Set<String>()
            try db.run("SELECT id FROM tasks") { known.insert($0.text(0)!) }
            guard known == Set(plan.entries.map(\.id)) else {
                throw JournalError.schema("\(path) holds another sweep (\(count) tasks, different ids); give a new --journal or the sweep file it was made from")
            }
        }
        let pins = plan.fingerprints.sorted(by: { $0.key < $1.key })
        for (key, fp) in pins {
            if let pinned = try meta(key), pinned != fp {
                throw JournalError.schema("\(path): the sweep ran on \(key.dropFirst("fingerprint:".count)) with SHA-256 \(pinned), the sweep file says \(fp); fix data.fingerprints or give a new --journal")
            }
        }
        // Nothing is written until every check above has passed.
        try db.transaction {
            for (key, fp) in pins { try setMeta(key, fp) }
            guard count == 0 else { return }
            for (i, e) in plan.entries.enumerated() {
                try db.run("INSERT INTO tasks(id, position, kind, label, spec, depends_on, state, attempt) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
                           [.text(e.id), .int(Int64(i)), .text(e.task.kind.rawValue), .text(e.task.label), .blob(try e.task.canonicalJSON()),
                            e.dependsOn.map { .text($0) } ?? .null, .text((e.dependsOn == nil ? TaskState.queued : .blocked).rawValue)])
            }
            try setMeta("sweep", sweepText)
            try setMeta("created_ms", String(nowMs()))
            try event(nil, nil, "plan", "\(plan.entries.count) tasks")
        }
    }

    func countTasks() throws -> Int {
        var n = 0
        try db.run("SELECT COUNT(*) FROM tasks") { n = Int($0.int(0)) }
        return n
    }

    /// Every task as stored, in plan order.
    public func loadTasks() throws -> [StoredTask] {
        var out: [StoredTask] = []
        try db.run("""
            SELECT id, kind, label, spec, depends_on, state, attempt, worker, lease_deadline_ms, last_error, checkpoint,
                   baseline_train_accuracy, baseline_test_accuracy, baseline_train_loss, baseline_test_loss, started_ms, finished_ms
            FROM tasks ORDER BY position
            """) { r in
            out.append(StoredTask(id: r.text(0)!, kind: r.text(1)!, label: r.text(2)!, spec: r.blob(3), dependsOn: r.text(4),
                                  state: TaskState(rawValue: r.text(5)!) ?? .queued, attempt: Int(r.int(6)), worker: r.text(7),
                                  leaseDeadlineMs: r.isNull(8) ? nil : r.int(8), lastError: r.text(9), checkpoint: r.text(10),
                                  baseline: r.isNull(11) ? nil : BaselineSummary(trainAccuracy: r.double(11), testAccuracy: r.double(12),
                                                                              trainLoss: r.double(13), testLoss: r.double(14)),
                                  startedMs: r.isNull(15) ? nil : r.int(15), finishedMs: r.isNull(16) ? nil : r.int(16)))
        }
        return out
    }

    public func setState(_ id: String, _ state: TaskState, attempt: Int, worker: String?, leaseDeadlineMs: Int64?,
                         error: String? = nil, event kind: String, detail: String? = nil) throws {
        try db.transaction {
            let now = nowMs()
            try db.run("""
                UPDATE tasks SET state = ?2, attempt = ?3, worker = ?4, lease_deadline_ms = ?5,
                    last_error = COALESCE(?6, last_error),
                    started_ms = CASE WHEN ?2 = 'leased' THEN ?7 ELSE started_ms END,
                    finished_ms = CASE WHEN ?2 IN ('done', 'failed') THEN ?7 ELSE finished_ms END
                WHERE id = ?1
                """, [.text(id), .text(state.rawValue), .int(Int64(attempt)), worker.map { .text($0) } ?? .null,
                      leaseDeadlineMs.map { .int($0) } ?? .null, error.map { .text($0) } ?? .null, .int(now)])
            try event(id, worker, kind, detail ?? error)
        }
    }

    public func extendLease(_ id: String, deadlineMs: Int64) throws {
        try db.run("UPDATE tasks SET lease_deadline_ms = ?2 WHERE id = ?1 AND state = 'leased'", [.text(id), .int(deadlineMs)])
    }

    /// Records of a task; an epoch stored twice keeps the latest (a re-run after a lost lease).
    public func storeRecords(_ taskID: String, _ records: [WireEpochRecord]) throws {
        try db.transaction {
            for r in records {
                try db.run("INSERT OR REPLACE INTO records(task_id, epoch, record) VALUES(?1, ?2, ?3)",
                           [.text(taskID), .int(Int64(r.epoch)), .text(RecordCoding.json(r))])
            }
        }
    }

    /// Marks a task done with its records, in one transaction.
    public func complete(_ id: String, records: [WireEpochRecord], checkpoint: String?, baseline: BaselineSummary?, worker: String, attempt: Int) throws {
        try db.transaction {
            try db.run("DELETE FROM records WHERE task_id = ?1", [.text(id)])
            for r in records {
                try db.run("INSERT INTO records(task_id, epoch, record) VALUES(?1, ?2, ?3)", [.text(id), .int(Int64(r.epoch)), .text(RecordCoding.json(r))])
            }
            try db.run("""
                UPDATE tasks SET state = 'done', worker = ?2, attempt = ?3, lease_deadline_ms = NULL, checkpoint = ?4, finished_ms = ?5,
                    baseline_train_accuracy = ?6, baseline_test_accuracy = ?7, baseline_train_loss = ?8, baseline_test_loss = ?9
                WHERE id = ?1
                """, [.text(id), .text(worker), .int(Int64(attempt)), checkpoint.map { .text($0) } ?? .null, .int(nowMs()),
                      baseline.map { .double($0.trainAccuracy) } ?? .null, baseline.map { .double($0.testAccuracy) } ?? .null,
                      baseline.map { .double($0.trainLoss) } ?? .null, baseline.map { .double($0.testLoss) } ?? .null])
            try db.run("UPDATE tasks SET state = 'queued' WHERE depends_on = ?1 AND state = 'blocked'", [.text(id)])
            try event(id, worker, "done", "\(records.count) records")
        }
    }

    public func records(_ taskID: String) throws -> [WireEpochRecord] {
        var out: [WireEpochRecord] = []
        try db.run("SELECT record FROM records WHERE task_id = ?1 ORDER BY epoch", [.text(taskID)]) { r in
            if let text = r.text(0), let rec = RecordCoding.record(text) { out.append(rec) }
        }
        return out
    }

    public func recordCount() throws -> Int {
        var n = 0
        try db.run("SELECT COUNT(*) FROM records") { n = Int($0.int(0)) }
        return n
    }

    public func seenWorker(_ hello: Hello) throws {
        let data = hello.data.map { "\($0.dataset)[\($0.shardIndex)/\($0.shardCount)]=\($0.fingerprint.prefix(12))" }.joined(separator: ",")
        try db.run("""
            INSERT INTO workers(id, host, cores, version, data, first_seen_ms, last_seen_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)
            ON CONFLICT(id) DO UPDATE SET host = excluded.host, cores = excluded.cores, version = excluded.version,
                data = excluded.data, last_seen_ms = excluded.last_seen_ms
            """, [.text(hello.workerID), .text(hello.host), .int(Int64(hello.cores)), .text(hello.softwareVersion), .text(data), .int(nowMs())])
        try event(nil, hello.workerID, "hello", "\(hello.host), \(hello.cores) cores, \(data)")
    }

    public func storedBlob(_ hash: String, size: Int) throws {
        try db.run("INSERT OR IGNORE INTO blobs(hash, size, stored_ms) VALUES(?1, ?2, ?3)", [.text(hash), .int(Int64(size)), .int(nowMs())])
    }

    public func event(_ task: String?, _ worker: String?, _ kind: String, _ detail: String?) throws {
        try db.run("INSERT INTO events(at_ms, task_id, worker, kind, detail) VALUES(?1, ?2, ?3, ?4, ?5)",
                   [.int(nowMs()), task.map { .text($0) } ?? .null, worker.map { .text($0) } ?? .null, .text(kind), detail.map { .text($0) } ?? .null])
    }

    /// Events of one kind (tests and reports).
    public func events(kind: String) throws -> [(task: String?, worker: String?, detail: String?)] {
        var out: [(String?, String?, String?)] = []
        try db.run("SELECT task_id, worker, detail FROM events WHERE kind = ?1 ORDER BY seq", [.text(kind)]) { out.append(($0.text(0), $0.text(1), $0.text(2))) }
        return out
    }
}

public struct StoredTask: Sendable {
    public var id: String
    public var kind: String
    public var label: String
    public var spec: [UInt8]
    public var dependsOn: String?
    public var state: TaskState
    public var attempt: Int
    public var worker: String?
    public var leaseDeadlineMs: Int64?
    public var lastError: String?
    public var checkpoint: String?
    public var baseline: BaselineSummary?
    public var startedMs: Int64?
    public var finishedMs: Int64?
}

public func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

/// Epoch records as JSON text in the journal.
public enum RecordCoding {
    public static func json(_ r: WireEpochRecord) -> String {
        func clean(_ v: Double) -> Any { v.isFinite ? v : (v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf")) }
        func layer(_ l: LayerMetricValues) -> [String: Any] {
            ["layer": l.layer, "values": l.values.map { ["name": $0.name, "value": clean($0.value)] }]
        }
        var d: [String: Any] = ["epoch": r.epoch, "train_accuracy": clean(r.trainAccuracy), "train_loss": clean(r.trainLoss),
                                "test_accuracy": clean(r.testAccuracy), "test_loss": clean(r.testLoss), "pd_train": clean(r.pdTrain),
                                "pd_test": clean(r.pdTest), "loss_diff_train": clean(r.lossDiffTrain), "loss_diff_test": clean(r.lossDiffTest),
                                "lr": clean(r.learningRate), "seconds": clean(r.seconds), "layers": r.layers.map(layer)]
        if let t = r.total { d["total"] = layer(t) }
        return String(decoding: (try? JSONSerialization.data(withJSONObject: d, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
    }

    public static func record(_ text: String) -> WireEpochRecord? {
        guard let d = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return nil }
        func num(_ v: Any?) -> Double {
            if let n = v as? NSNumber { return n.doubleValue }
            switch v as? String { case "inf": return .infinity; case "-inf": return -.infinity; default: return .nan }
        }
        func layer(_ v: Any?) -> LayerMetricValues? {
            guard let l = v as? [String: Any] else { return nil }
            return LayerMetricValues(layer: l["layer"] as? String ?? "", values: (l["values"] as? [[String: Any]] ?? []).map { MetricValue($0["name"] as? String ?? "", num($0["value"])) })
        }
        var r = WireEpochRecord()
        r.epoch = UInt32((d["epoch"] as? NSNumber)?.intValue ?? 0)
        r.trainAccuracy = num(d["train_accuracy"]); r.trainLoss = num(d["train_loss"])
        r.testAccuracy = num(d["test_accuracy"]); r.testLoss = num(d["test_loss"])
        r.pdTrain = num(d["pd_train"]); r.pdTest = num(d["pd_test"])
        r.lossDiffTrain = num(d["loss_diff_train"]); r.lossDiffTest = num(d["loss_diff_test"])
        r.learningRate = num(d["lr"]); r.seconds = num(d["seconds"])
        r.layers = (d["layers"] as? [Any] ?? []).compactMap(layer)
        r.total = layer(d["total"])
        return r
    }
}
