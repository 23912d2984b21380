import CSQLite
import Foundation
@testable import Journal
import Messages
import Records
import Scheduling
import XCTest

/// The SQLite journal: the plan stored once, batches atomic, the lock, a copied file that holds
/// everything, foreign files refused, damaged records named, version 1 migrated.
final class JournalTests: XCTestCase {
    var dir: String!
    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "apsweep-journal-\(getpid())-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    static func plan(_ n: Int = 3) -> [PlannedTask] {
        let base = PlannedTask(id: "base", kind: .baseline, label: "b", spec: Array("{}".utf8), dependsOn: nil,
                               data: DataKey(dataset: "fashion-mnist", shard: 0, count: 1), epochs: 1...2)
        return [base] + (0..<n).map { PlannedTask(id: "p\($0)", kind: .prune, label: "p\($0)", spec: Array("{\"p\":\($0)}".utf8), dependsOn: "base",
                                                 data: base.data, epochs: 0...3) }
    }

    static func record(_ epoch: Int) -> EpochRecord {
        var r = EpochRecord(epoch: epoch)
        r.trainAccuracy = 90; r.testAccuracy = 88.5 + Double(epoch); r.pdTest = 1.5; r.seconds = 2
        r.layerMetrics = [MetricValues(key: "fc.weight", values: [("ap2", 0.25 * Double(epoch)), ("ap3[gaussian:sigma2=1]", 0.125)])]
        r.totalMetrics = MetricValues(key: "total", values: [("ap2", 0.25 * Double(epoch))])
        return r
    }

    func testPlanIsStoredOnceAndAnotherSweepIsRefusedWithoutWriting() throws {
        let j = try SweepJournal.openForWriting(dir + "/sweep.db")
        defer { j.close() }
        try j.storePlan(Self.plan(), pins: ["fingerprint:fashion-mnist:0/1": "aa"], sweepText: "x", sweepID: "s1")
        try j.storePlan(Self.plan(), pins: [:], sweepText: "x", sweepID: "s2")   // the same plan again: accepted, unchanged
        XCTAssertEqual(try j.meta("sweep_id"), "s1")
        XCTAssertEqual(try j.tasks().map(\.task), Self.plan())
        XCTAssertEqual(try j.tasks().map(\.row.state), [.queued, .blocked, .blocked, .blocked])
        XCTAssertThrowsError(try j.storePlan(Self.plan(4), pins: [:], sweepText: "", sweepID: "")) { XCTAssert("\($0)".contains("holds another sweep"), "\($0)") }
        XCTAssertThrowsError(try j.storePlan(Self.plan(), pins: ["fingerprint:fashion-mnist:0/1": "bb"], sweepText: "", sweepID: "")) {
            XCTAssert("\($0)".contains("fix data.fingerprints or give a new journal"), "\($0)")
        }
        XCTAssertEqual(try j.meta("fingerprint:fashion-mnist:0/1"), "aa", "a refused plan changes nothing")
    }

    /// The first load after planning an empty journal is built from the plan just stored, not
    /// read back: it must be exactly what the file holds, and forgotten once anything is written.
    func testTheLoadAfterAFreshPlanIsWhatTheFileHolds() throws {
        let path = dir + "/sweep.db"
        let j = try SweepJournal.openForWriting(path)
        defer { j.close() }
        try j.apply([.blob(hash: "c0ffee", size: 12)])
        try j.storePlan(Self.plan(), pins: ["fingerprint:fashion-mnist:0/1": "aa"], sweepText: "x", sweepID: "s1")
        let fresh = try j.load()
        let other = try SweepJournal.openForReading(path)
        XCTAssertEqual(fresh, try other.load(), "the state from the plan is the state on disk")
        other.close()
        XCTAssertEqual(fresh.rows.map(\.state), [.queued, .blocked, .blocked, .blocked])
        XCTAssertEqual(fresh.blobs, ["c0ffee": 12])
        // The coordinator holds no specs: each Assign reads its own from the file.
        XCTAssert(try j.load(specs: false).tasks.allSatisfy(\.spec.isEmpty))
        XCTAssertEqual(try j.load(specs: false).tasks.map(\.id), fresh.tasks.map(\.id))
        XCTAssertEqual(try Self.plan().map { try j.spec(ofTask: $0.id) }, Self.plan().map(\.spec))
        XCTAssertThrowsError(try j.spec(ofTask: "nope")) { XCTAssert("\($0)".contains("task nope has no spec"), "\($0)") }
        // A write between the plan and the load is seen by the load.
        let k = try SweepJournal.openForWriting(dir + "/second.db")
        defer { k.close() }
        try k.storePlan(Self.plan(), pins: [:], sweepText: "x", sweepID: "s2")
        var row = TaskRow(state: .done)
        row.attempt = 1
        try k.apply([.task(index: 0, row: row)])
        XCTAssertEqual(try k.load().rows.first, row)
    }

    /// A batch is one transaction: records, rows and leases come back exactly as written.
    func testBatchesRoundTrip() throws {
        let j = try SweepJournal.openForWriting(dir + "/sweep.db")
        defer { j.close() }
        try j.storePlan(Self.plan(), pins: [:], sweepText: "", sweepID: "s")
        var row = TaskRow(state: .done)
        row.attempt = 2; row.failures = 1; row.handbacks = 3; row.worker = "w"; row.checkpoint = "c"
        row.baseline = BaselineSummary(trainAccuracy: 1, testAccuracy: 2, trainLoss: 3, testLoss: 4); row.startedMs = 10; row.finishedMs = 20
        try j.apply([.lease(LeaseRow(task: 0, attempt: 2, worker: "w", startedMs: 10)), .endLease(task: 0, attempt: 2, outcome: .done),
                     .records(task: 1, records: [Self.record(0), Self.record(1)], replace: false), .task(index: 0, row: row),
                     .pin(key: "fingerprint:x:0/1", fingerprint: "ff"), .blob(hash: "c", size: 9)])
        try j.apply([.records(task: 1, records: [Self.record(1)], replace: false)])   // an epoch again: overwritten, not doubled
        let state = try j.load()
        XCTAssertEqual(state.rows[0], row)
        XCTAssertEqual(state.leases, [LeaseRow(task: 0, attempt: 2, worker: "w", startedMs: 10, outcome: .done)])
        XCTAssertEqual(state.pins["fingerprint:x:0/1"], "ff")
        XCTAssertEqual(state.blobs["c"], 9)
        let (records, damaged) = try j.records(ofTask: 1)
        XCTAssertEqual(records, [Self.record(0), Self.record(1)])
        XCTAssertEqual(damaged, [])
    }

    /// A compact record is a fraction of its JSON.
    func testRecordEncodingIsCompactAndChecksummed() throws {
        let names = MemoryNameTable()
        var r = Self.record(3)
        r.layerMetrics = (0..<5).map { l in MetricValues(key: "features.\(l).weight", values: (0..<7).map { ("ap3[gaussian:sigma2=1]#\($0)", Double($0)) }) }
        let bytes = RecordCoding.encode(r, names: names)
        XCTAssertLessThan(bytes.count, 520)
        XCTAssertEqual(try RecordCoding.decode(bytes, names: names), r)
        for i in [0, 7, bytes.count / 2, bytes.count - 1] {
            var flipped = bytes
            flipped[i] ^= 0x10
            XCTAssertThrowsError(try RecordCoding.decode(flipped, names: names), "a flipped bit at \(i) is found")
        }
        XCTAssertThrowsError(try RecordCoding.decode(Array(bytes.prefix(3)), names: names))
    }

    /// A flipped byte in a stored record is reported with its task and epoch, never dropped silently.
    func testDamagedRecordIsNamed() throws {
        let path = dir + "/sweep.db"
        let j = try SweepJournal.openForWriting(path)
        try j.storePlan(Self.plan(), pins: [:], sweepText: "", sweepID: "s")
        try j.apply([.records(task: 2, records: [Self.record(0), Self.record(1)], replace: true)])
        try j.db.execute("UPDATE records SET data = substr(data, 1, 20) || x'ff' || substr(data, 22) WHERE task = 2 AND epoch = 1")
        j.close()
        let r = try SweepJournal.openForReading(path)
        defer { r.close() }
        let (records, damaged) = try r.records(ofTask: 2)
        XCTAssertEqual(records.map(\.epoch), [0])
        XCTAssertEqual(damaged.count, 1)
        XCTAssertEqual(damaged.first?.taskID, "p1")
        XCTAssertEqual(damaged.first?.epoch, 1)
        XCTAssert(damaged.first?.reason.contains("checksum") == true, "\(damaged)")
    }

    /// A reader opened before the writer met a metric name (the correlation service reads all
    /// sweep long) learns the name instead of calling the new records damaged.
    func testALongLivedReaderLearnsNamesWrittenAfterItOpened() throws {
        let path = dir + "/sweep.db"
        let j = try SweepJournal.openForWriting(path)
        defer { j.close() }
        try j.storePlan(Self.plan(), pins: [:], sweepText: "", sweepID: "s")
        try j.apply([.records(task: 1, records: [Self.record(0)], replace: true)])
        let reader = try SweepJournal.openForReading(path)
        defer { reader.close() }
        XCTAssertEqual(try reader.records(ofTask: 1).records.count, 1)
        var novel = Self.record(1)
        novel.layerMetrics.append(MetricValues(key: "conv.weight", values: [("w2[gaussian:sigma2=1]", 0.5), ("hellinger[gaussian:sigma2=1]", 0.1)]))
        try j.apply([.records(task: 1, records: [novel], replace: false)])
        let (records, damaged) = try reader.records(ofTask: 1)
        XCTAssertEqual(damaged, [])
        XCTAssertEqual(records, [Self.record(0), novel])
    }

    /// After close, sweep.db alone holds everything: a copy of just that file reads back whole.
    func testClosedJournalIsOneSelfContainedFile() throws {
        let path = dir + "/sweep.db"
        let j = try SweepJournal.openForWriting(path)
        try j.storePlan(Self.plan(), pins: [:], sweepText: "", sweepID: "s")
        try j.apply([.records(task: 1, records: [Self.record(0)], replace: true), .task(index: 1, row: TaskRow(state: .done))])
        j.close()
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + "-wal"), "no WAL left behind")
        try FileManager.default.copyItem(atPath: path, toPath: dir + "/copy.db")
        let copy = try SweepJournal.openForReading(dir + "/copy.db")
        defer { copy.close() }
        XCTAssertEqual(try copy.tasks().map(\.row.state), [.queued, .done, .blocked, .blocked])
        XCTAssertEqual(try copy.recordCount(), 1)
    }

    /// Read-only opening refuses files that are not apsweep journals, by what they are, and
    /// never writes to them.
    func testReadOnlyRefusesForeignFilesAndWritesNothing() throws {
        let empty = dir + "/empty.db"
        FileManager.default.createFile(atPath: empty, contents: nil)
        XCTAssertThrowsError(try SweepJournal.openForReading(empty)) { XCTAssert("\($0)".contains("an empty file, not an apsweep journal"), "\($0)") }
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: empty)[.size] as? NSNumber, 0, "still empty")
        let other = dir + "/other.db"
        var db: OpaquePointer?
        sqlite3_open(other, &db)
        sqlite3_exec(db, "CREATE TABLE photos(id INTEGER, path TEXT); CREATE TABLE albums(id INTEGER)", nil, nil, nil)
        sqlite3_close(db)
        let before = try Data(contentsOf: URL(fileURLWithPath: other))
        XCTAssertThrowsError(try SweepJournal.openForReading(other)) {
            XCTAssert("\($0)".contains("an SQLite database of another program (tables: albums, photos)"), "\($0)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: other)), before, "not switched to WAL, no tables added")
        let text = dir + "/notes.txt"
        try "hello, this is not a database at all, just text that is long enough".write(toFile: text, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try SweepJournal.openForReading(text)) { XCTAssert("\($0)".contains("not an SQLite database"), "\($0)") }
        XCTAssertThrowsError(try SweepJournal.openForReading(dir + "/missing.db")) { XCTAssert("\($0)".contains("no such journal"), "\($0)") }
        // Another schema version: the version message, before any table is touched.
        let future = dir + "/future.db"
        let j = try SweepJournal.openForWriting(future)
        try j.db.execute("PRAGMA user_version = 9; ALTER TABLE tasks RENAME COLUMN state TO status")
        j.close()
        XCTAssertThrowsError(try SweepJournal.openForReading(future)) { XCTAssert("\($0)".contains("journal schema 9"), "\($0)") }
    }

    /// A second process cannot take a held journal; the message names the holder. A lock left
    /// by a process that died is taken over at once.
    func testLockRefusesASecondHolderAndTakesOverAStaleOne() throws {
        let path = dir + "/sweep.db"
        let lock = try JournalLock(journal: path)
        // Another process (flock(1)) cannot get it while we hold it…
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        probe.arguments = ["-n", path + ".lock", "true"]
        try probe.run()
        probe.waitUntilExit()
        XCTAssertNotEqual(probe.terminationStatus, 0, "held")
        lock.release()
        // …and a holder that is SIGKILLed leaves a lock that is free.
        let holder = Process()   // one process that holds the lock: the shell becomes `sleep` by exec
        holder.executableURL = URL(fileURLWithPath: "/bin/sh")
        holder.arguments = ["-c", "exec 9>>'\(path).lock'; flock 9; exec sleep 60"]
        try holder.run()
        usleep(300_000)
        XCTAssertThrowsError(try JournalLock(journal: path)) { XCTAssert("\($0)".contains("is in use by another apsweep"), "\($0)") }
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        let taken = try JournalLock(journal: path)
        XCTAssert(try String(contentsOfFile: path + ".lock", encoding: .utf8).contains("pid \(getpid())"))
        taken.release()
    }

    /// A journal of schema 1 (apsweep 0.1) is migrated: tasks, rows and records survive, the
    /// records in the compact encoding.
    func testVersion1JournalIsMigrated() throws {
        let path = dir + "/v1.db"
        var db: OpaquePointer?
        sqlite3_open(path, &db)
        let v1Record = #"{"epoch":1,"layers":[{"layer":"fc.weight","values":[{"name":"ap2","value":0.5}]}],"lr":0.05,"pd_test":1.25,"pd_train":0.5,"seconds":3,"test_accuracy":88.75,"test_loss":0.4,"total":{"layer":"total","values":[{"name":"ap2","value":0.5}]},"train_accuracy":90,"train_loss":0.3,"loss_diff_test":0.01,"loss_diff_train":0.02}"#
        sqlite3_exec(db, """
            CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE tasks(id TEXT PRIMARY KEY, position INTEGER NOT NULL, kind TEXT NOT NULL, label TEXT NOT NULL, spec BLOB NOT NULL,
                depends_on TEXT, state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, worker TEXT, lease_deadline_ms INTEGER, last_error TEXT,
                checkpoint TEXT, baseline_train_accuracy REAL, baseline_test_accuracy REAL, baseline_train_loss REAL, baseline_test_loss REAL,
                started_ms INTEGER, finished_ms INTEGER);
            CREATE TABLE records(task_id TEXT NOT NULL, epoch INTEGER NOT NULL, record TEXT NOT NULL, PRIMARY KEY(task_id, epoch));
            CREATE TABLE events(seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, task_id TEXT, worker TEXT, kind TEXT NOT NULL, detail TEXT);
            CREATE TABLE workers(id TEXT PRIMARY KEY, host TEXT, cores INTEGER, version TEXT, data TEXT, first_seen_ms INTEGER, last_seen_ms INTEGER);
            CREATE TABLE blobs(hash TEXT PRIMARY KEY, size INTEGER NOT NULL, stored_ms INTEGER NOT NULL);
            INSERT INTO meta VALUES('schema_version', '1'), ('sweep_id', 'old');
            INSERT INTO tasks(id, position, kind, label, spec, state, attempt, checkpoint, baseline_train_accuracy, baseline_test_accuracy,
                baseline_train_loss, baseline_test_loss) VALUES('base', 0, 'baseline', 'b', '{}', 'done', 1, 'c', 95, 90, 0.1, 0.2);
            INSERT INTO tasks(id, position, kind, label, spec, depends_on, state, attempt, worker) VALUES('p0', 1, 'prune', 'p0', 'x', 'base', 'leased', 2, 'w1');
            INSERT INTO records VALUES('p0', 1, '\(v1Record)');
            INSERT INTO events(at_ms, kind, detail) VALUES(1, 'plan', '2 tasks');
            """, nil, nil, nil)
        sqlite3_close(db)
        let describe: SweepJournal.Describe = { id, kind, label, spec, dependsOn in
            PlannedTask(id: id, kind: kind == "baseline" ? .baseline : .prune, label: label, spec: spec, dependsOn: dependsOn,
                        data: DataKey(dataset: "fashion-mnist", shard: 0, count: 1), epochs: kind == "baseline" ? 1...2 : 0...3)
        }
        // Read-only: through a migrated copy; the original is untouched.
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let reader = try SweepJournal.openForReading(path, describe: describe)
        XCTAssertEqual(try reader.tasks().map(\.row.state), [.done, .leased])
        reader.close()
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
        let j = try SweepJournal.openForWriting(path, describe: describe)
        defer { j.close() }
        let state = try j.load()
        XCTAssertEqual(state.sweepID, "old")
        XCTAssertEqual(state.rows[0].baseline?.testAccuracy, 90)
        XCTAssertEqual(state.rows[1].state, .leased)
        XCTAssertEqual(state.rows[1].failures, 0, "version 1's lease count is not a failure count")
        XCTAssertEqual(state.leases, [LeaseRow(task: 1, attempt: 2, worker: "w1", startedMs: 0)])
        let (records, damaged) = try j.records(ofTask: 1)
        XCTAssertEqual(damaged, [])
        XCTAssertEqual(records.first?.pdTest, 1.25)
        XCTAssertEqual(records.first?.learningRate, 0.05)
        XCTAssertEqual(records.first?.totalMetrics?["ap2"], 0.5)
        XCTAssertEqual(try j.events(kind: "migrated").count, 1)
        XCTAssertEqual(try j.events(kind: "plan").count, 1, "events kept")
    }
}
