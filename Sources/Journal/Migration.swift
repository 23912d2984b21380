import Foundation
import Messages
import Records
import Scheduling

/// Schema 1 → 2, in one transaction: records from verbose JSON to the compact checksummed
/// encoding, tasks keyed by their plan position with the scheduler's fields, the lease history
/// rebuilt as far as version 1 kept it (the current lease only).
enum Migration {
    static func fromVersion1(_ db: Database, describe: SweepJournal.Describe) throws {
        try db.transaction {
            var old: [(id: String, kind: String, label: String, spec: [UInt8], dependsOn: String?, state: String, attempt: Int, worker: String?,
                       lastError: String?, checkpoint: String?, baseline: [Double]?, started: Int64?, finished: Int64?)] = []
            try db.run("""
                SELECT id, kind, label, spec, depends_on, state, attempt, worker, last_error, checkpoint,
                       baseline_train_accuracy, baseline_test_accuracy, baseline_train_loss, baseline_test_loss, started_ms, finished_ms
                FROM tasks ORDER BY position
                """) { r in
                old.append((r.text(0) ?? "", r.text(1) ?? "", r.text(2) ?? "", r.blob(3), r.text(4), r.text(5) ?? "queued", Int(r.int(6)), r.text(7),
                            r.text(8), r.text(9), r.isNull(10) ? nil : [r.double(10), r.double(11), r.double(12), r.double(13)],
                            r.isNull(14) ? nil : r.int(14), r.isNull(15) ? nil : r.int(15)))
            }
            var records: [(task: String, epoch: Int64, json: String)] = []
            try db.run("SELECT task_id, epoch, record FROM records") { records.append(($0.text(0) ?? "", $0.int(1), $0.text(2) ?? "")) }
            try db.execute("ALTER TABLE tasks RENAME TO tasks_v1; ALTER TABLE records RENAME TO records_v1; ALTER TABLE events RENAME TO events_v1;")
            try db.execute("DROP INDEX IF EXISTS tasks_depends_on; DROP INDEX IF EXISTS events_kind;")
            var tables: [String] = []
            try db.run("SELECT name FROM sqlite_master WHERE type = 'table'") { tables.append($0.text(0) ?? "") }
            // meta, workers and blobs keep their layout; the rest is made new.
            try db.execute("""
                \(SweepJournal.sweepTables)
                INSERT INTO events(seq, at_ms, task_id, worker, kind, detail) SELECT seq, at_ms, task_id, worker, kind, detail FROM events_v1;
                CREATE INDEX events_kind ON events(kind);
                """)
            if !tables.contains("workers") { try db.execute(SweepJournal.workersTable) }
            if !tables.contains("blobs") { try db.execute(SweepJournal.blobsTable) }
            var position: [String: Int] = [:]
            for (i, t) in old.enumerated() {
                let planned = try describe(t.id, t.kind, t.label, t.spec, t.dependsOn)
                position[t.id] = i
                // Version 1 counted every lease as an attempt; its attempts become failures only
                // for tasks that failed.
                let state = TaskState(rawValue: t.state) ?? .queued
                try db.run("""
                    INSERT INTO tasks(position, id, kind, label, spec, depends_on, data_dataset, data_shard, data_count, epoch_first, epoch_last,
                        required_blob, state, attempt, failures, worker, last_error, checkpoint, baseline_train_accuracy, baseline_test_accuracy,
                        baseline_train_loss, baseline_test_loss, started_ms, finished_ms)
                    VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)
                    """, [.int(Int64(i)), .text(t.id), .text(planned.kind.rawValue), .text(t.label), .blob(t.spec), t.dependsOn.map { .text($0) } ?? .null,
                          planned.data.map { .text($0.dataset) } ?? .null, planned.data.map { .int(Int64($0.shard)) } ?? .null,
                          planned.data.map { .int(Int64($0.count)) } ?? .null, planned.epochs.map { .int(Int64($0.lowerBound)) } ?? .null,
                          planned.epochs.map { .int(Int64($0.upperBound)) } ?? .null, planned.requiredBlob.map { .text($0) } ?? .null,
                          .text(state.rawValue), .int(Int64(t.attempt)), .int(Int64(state == .failed ? t.attempt : 0)),
                          t.worker.map { .text($0) } ?? .null, t.lastError.map { .text($0) } ?? .null, t.checkpoint.map { .text($0) } ?? .null,
                          t.baseline.map { .double($0[0]) } ?? .null, t.baseline.map { .double($0[1]) } ?? .null,
                          t.baseline.map { .double($0[2]) } ?? .null, t.baseline.map { .double($0[3]) } ?? .null,
                          t.started.map { .int($0) } ?? .null, t.finished.map { .int($0) } ?? .null])
                if state == .leased, let w = t.worker {
                    try db.run("INSERT INTO leases(task, attempt, worker, started_ms, outcome) VALUES(?1, ?2, ?3, ?4, NULL)",
                               [.int(Int64(i)), .int(Int64(t.attempt)), .text(w), .int(t.started ?? 0)])
                }
            }
            let names = MemoryNameTable()
            for r in records {
                guard let task = position[r.task] else { continue }
                guard let record = version1Record(r.json) else {
                    throw JournalError.corrupt("\(db.path): a version 1 record of task \(r.task) epoch \(r.epoch) is not readable JSON; the journal cannot be migrated as it is")
                }
                try db.run("INSERT OR REPLACE INTO records(task, epoch, data) VALUES(?1, ?2, ?3)",
                           [.int(Int64(task)), .int(r.epoch), .blob(RecordCoding.encode(record, names: names))])
            }
            for (id, name) in names.takeAdded() { try db.run("INSERT INTO names(id, name) VALUES(?1, ?2)", [.int(Int64(id)), .text(name)]) }
            try db.execute("""
                DROP TABLE tasks_v1; DROP TABLE records_v1; DROP TABLE events_v1;
                UPDATE meta SET value = '\(SweepJournal.schemaVersion)' WHERE key = 'schema_version';
                PRAGMA application_id = \(SweepJournal.applicationID);
                PRAGMA user_version = \(SweepJournal.schemaVersion);
                """)
            try db.run("INSERT INTO events(at_ms, kind, detail) VALUES(?1, 'migrated', ?2)",
                       [.int(nowMs()), .text("journal schema 1 → \(SweepJournal.schemaVersion): \(old.count) tasks, \(records.count) records")])
        }
    }

    /// A record as version 1 stored it (JSON; non-finite numbers as "nan"/"inf" strings).
    static func version1Record(_ text: String) -> EpochRecord? {
        guard let d = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return nil }
        func num(_ v: Any?) -> Double {
            if let n = v as? NSNumber { return n.doubleValue }
            switch v as? String { case "inf": return .infinity; case "-inf": return -.infinity; default: return .nan }
        }
        func set(_ v: Any?) -> MetricValues? {
            guard let l = v as? [String: Any] else { return nil }
            return MetricValues(key: l["layer"] as? String ?? "", values: (l["values"] as? [[String: Any]] ?? []).map { ($0["name"] as? String ?? "", num($0["value"])) })
        }
        var r = EpochRecord(epoch: (d["epoch"] as? NSNumber)?.intValue ?? 0)
        r.trainAccuracy = num(d["train_accuracy"]); r.trainLoss = num(d["train_loss"])
        r.testAccuracy = num(d["test_accuracy"]); r.testLoss = num(d["test_loss"])
        r.pdTrain = num(d["pd_train"]); r.pdTest = num(d["pd_test"])
        r.lossDiffTrain = num(d["loss_diff_train"]); r.lossDiffTest = num(d["loss_diff_test"])
        r.learningRate = num(d["lr"]); r.seconds = num(d["seconds"])
        r.layerMetrics = (d["layers"] as? [Any] ?? []).compactMap(set)
        r.totalMetrics = set(d["total"])
        return r
    }
}
