import CSQLite
import Foundation
import Journal
import Scheduling
import XCTest

/// What a user can do to a sweep — Ctrl-C, SIGKILL, a second run, copying the journal, feeding
/// report the wrong file, flipping a byte — done to the real binary, with what must happen.
final class IntegrityTests: XCTestCase {
    var h: BinaryHarness!

    override func setUpWithError() throws {
        h = try BinaryHarness("integrity")
        try XCTSkipUnless(h.available, "apsweep is not built next to the tests")
    }

    override func tearDown() { h.cleanUp() }

    /// Every task done, none failed, none completed twice, no failure counted.
    func assertFinishedCleanly(_ run: String = "run", file: StaticString = #filePath, line: UInt = #line) throws {
        try h.read(run) { j in
            let tasks = try j.tasks()
            XCTAssertEqual(tasks.filter { $0.row.state == .done }.count, tasks.count,
                           "every task done: \(tasks.filter { $0.row.state != .done }.map { "\($0.task.label) \($0.row.state.rawValue) \($0.row.lastError ?? "")" })",
                           file: file, line: line)
            XCTAssertEqual(tasks.map(\.row.failures), Array(repeating: 0, count: tasks.count), "no attempt counted", file: file, line: line)
            let done = try j.events(kind: "done").compactMap(\.task)
            XCTAssertEqual(done.count, Set(done).count, "no task completed twice", file: file, line: line)
            XCTAssertEqual(done.count, tasks.count, file: file, line: line)
        }
    }

    /// Ctrl-C three times while baselines run, then the same command again: the sweep finishes,
    /// nothing is FAILED, no attempt was counted; each interrupted run exits 130, writes the
    /// results of what is done and says how to resume (seen before: all 10 tasks FAILED).
    func testCtrlCThreeTimesThenResume() throws {
        let file = try h.sweep(baselineEpochs: 150)
        for round in 1...3 {
            let p = try h.start(h.sweepArguments(file), name: "round\(round)")
            try h.waitUntil(60, "a baseline running (round \(round))") {
                try h.read { j in try j.tasks().contains { $0.row.state == .leased && $0.task.kind == .baseline } }
            }
            usleep(400_000)
            kill(p.processIdentifier, SIGINT)
            try h.wait(p, timeout: 60)
            let out = h.output(of: p)
            XCTAssertEqual(out.status, 130, "round \(round): \(out.stderr)")
            XCTAssert(out.stdout.contains("stopped by SIGINT"), out.stdout)
            XCTAssert(out.stdout.contains("run `apsweep sweep \(file)` again to resume"), out.stdout)
            XCTAssertFalse(out.stderr.contains("Interrupted system call"), out.stderr)
            for f in ["results.csv", "summary.json", "report.html"] {
                XCTAssert(FileManager.default.fileExists(atPath: "\(h.dir)/run/\(f)"), "round \(round): \(f) written")
            }
        }
        let last = try h.run(h.sweepArguments(file), timeout: 240)
        XCTAssertEqual(last.status, 0, last.stderr)
        try assertFinishedCleanly()
        try h.read { j in
            XCTAssertGreaterThanOrEqual(try j.events(kind: "coordinator-stop").count, 3)
            XCTAssertEqual(try j.leases().filter { $0.outcome?.countsAgainstTask == true }.count, 0)
        }
    }

    /// SIGTERM: exit 143, results written.
    func testSIGTERMExits143AndWritesWhatIsDone() throws {
        let file = try h.sweep(baselineEpochs: 150)
        let p = try h.start(h.sweepArguments(file))
        try h.waitUntil(60, "a baseline running") { try h.read { try $0.tasks().contains { $0.row.state == .leased } } }
        kill(p.processIdentifier, SIGTERM)
        try h.wait(p, timeout: 60)
        XCTAssertEqual(h.output(of: p).status, 143, h.output(of: p).stderr)
        XCTAssert(FileManager.default.fileExists(atPath: "\(h.dir)/run/summary.json"))
        try h.read { XCTAssertEqual(try $0.tasks().filter { $0.row.state == .leased }.count, 0, "no lease left LEASED") }
    }

    /// SIGKILL of `apsweep sweep` at five seeded moments, then the same command: every task ends
    /// DONE exactly once with max_attempts 3 (seen before: 2–10 tasks FAILED per series).
    func testSIGKILLAtSeededMomentsFinishesEveryTaskOnce() throws {
        let file = try h.sweep(baselineEpochs: 40, fineTuneEpochs: 3, sparsities: "[0.2, 0.5, 0.8]", trials: 2)
        var rng: UInt64 = 20261202
        for round in 1...5 {
            let p = try h.start(h.sweepArguments(file), name: "kill\(round)")
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            let delay = 0.5 + Double(rng >> 40 % 1000) / 1000 * 2.0
            usleep(UInt32(delay * 1_000_000))
            let children = BinaryHarness.children(of: p.processIdentifier)
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            // Its local workers die with it (they watch a pipe from their parent).
            try h.waitUntil(10, "the local workers of round \(round) to exit") { children.allSatisfy { !BinaryHarness.isAlive($0) } }
        }
        let last = try h.run(h.sweepArguments(file), timeout: 300)
        XCTAssertEqual(last.status, 0, last.stderr)
        try assertFinishedCleanly()
    }

    /// SIGKILL of `apsweep sweep` leaves no worker behind.
    func testLocalWorkersDieWithTheirParent() throws {
        let file = try h.sweep(baselineEpochs: 300)
        let p = try h.start(h.sweepArguments(file))
        try h.waitUntil(60, "two local workers") { BinaryHarness.children(of: p.processIdentifier).count >= 2 }
        let workers = BinaryHarness.children(of: p.processIdentifier)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        try h.waitUntil(10, "the orphaned workers to exit") { workers.allSatisfy { !BinaryHarness.isAlive($0) } }
    }

    /// A second `apsweep sweep` on the same journal is refused at start, naming the journal and
    /// the process that holds it; the journal shows one lease per task.
    func testASecondRunOnOneJournalIsRefused() throws {
        let file = try h.sweep(baselineEpochs: 60)
        let first = try h.start(h.sweepArguments(file))
        try h.waitUntil(60, "the first run's journal") { h.journal() != nil && FileManager.default.fileExists(atPath: "\(h.dir)/run/sweep.db.lock") }
        let second = try h.run(h.sweepArguments(file), timeout: 60)
        XCTAssertNotEqual(second.status, 0)
        XCTAssert(second.stderr.contains("\(h.dir)/run/sweep.db is in use by another apsweep (pid \(first.processIdentifier)"), second.stderr)
        try h.wait(first, timeout: 240)
        XCTAssertEqual(h.output(of: first).status, 0, h.output(of: first).stderr)
        try assertFinishedCleanly()
        try h.read { j in
            let leases = try j.leases()
            XCTAssertEqual(leases.count, try j.tasks().count, "one lease per task")
        }
        // And a coordinator on the same journal is refused the same way while a sweep holds it.
        let holder = try h.start(h.sweepArguments(file, extra: ["--retry-failed"]))
        try h.waitUntil(30, "the lock") { (try? String(contentsOfFile: "\(h.dir)/run/sweep.db.lock", encoding: .utf8))?.contains("pid \(holder.processIdentifier)") == true }
        let coordinator = try h.run(["coordinator", file, "--journal", "\(h.dir)/run/sweep.db", "--insecure", "--bind", "tcp://127.0.0.1:*"], timeout: 30)
        if holder.isRunning {
            XCTAssertNotEqual(coordinator.status, 0)
            XCTAssert(coordinator.stderr.contains("is in use by another apsweep"), coordinator.stderr)
        }
        try h.wait(holder, timeout: 60)
    }

    /// After a finished sweep, sweep.db alone holds everything: a copy of it reports every row
    /// (seen before: "0 of 0 tasks", everything in sweep.db-wal).
    func testACopiedJournalReportsEverything() throws {
        let file = try h.sweep()
        XCTAssertEqual(try h.run(h.sweepArguments(file), timeout: 240).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(h.dir)/run/sweep.db-wal"), "the WAL is checkpointed on close")
        // The same command on a finished sweep reports it and exits 0 (seen before: it waited
        // for its workers, which were told the sweep was complete, and then said they had died).
        let again = try h.run(h.sweepArguments(file), timeout: 60)
        XCTAssertEqual(again.status, 0, again.stdout + again.stderr)
        XCTAssert(again.stdout.contains("5 done, 0 failed of 5"), again.stdout)
        XCTAssertFalse((again.stdout + again.stderr).contains("exited before the sweep finished"), again.stderr)
        try assertFinishedCleanly()
        try FileManager.default.createDirectory(atPath: h.dir + "/copy", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(h.dir)/run/sweep.db", toPath: "\(h.dir)/copy/sweep.db")
        let report = try h.run(["report", "\(h.dir)/copy/sweep.db"])
        XCTAssertEqual(report.status, 0, report.stderr)
        XCTAssert(report.stdout.contains("5 of 5 tasks done"), report.stdout)
        let csv = try String(contentsOfFile: "\(h.dir)/copy/results.csv", encoding: .utf8)
        XCTAssertEqual(csv.split(separator: "\n").count, 1 + 2 + 4 * 3, "header, 2 baseline epochs, 4 prune tasks × epochs 0…2")
    }

    /// `report` reads without writing, and refuses files that are not apsweep journals, naming
    /// what they are (seen before: apsweep's tables added to them and WAL switched on).
    func testReportRefusesFilesThatAreNotJournals() throws {
        let empty = h.dir + "/empty.db"
        _ = FileManager.default.createFile(atPath: empty, contents: nil)
        let other = h.dir + "/photos.db"
        var db: OpaquePointer?
        sqlite3_open(other, &db)
        sqlite3_exec(db, "CREATE TABLE photos(id INTEGER, path TEXT)", nil, nil, nil)
        sqlite3_close(db)
        let before = try Data(contentsOf: URL(fileURLWithPath: other))
        for (path, expected) in [(empty, "an empty file, not an apsweep journal"), (other, "an SQLite database of another program (tables: photos)")] {
            let out = try h.run(["report", path, "--out", h.dir + "/out"])
            XCTAssertNotEqual(out.status, 0)
            XCTAssert(out.stderr.contains(expected), out.stderr)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: empty)).count, 0)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: other)), before)
        XCTAssertFalse(FileManager.default.fileExists(atPath: other + "-wal"))
    }

    /// A flipped byte in one stored record is reported with its task, never dropped silently;
    /// the same journal gives the same bytes out twice.
    func testAFlippedRecordIsNamedAndReportsAreReproducible() throws {
        let file = try h.sweep()
        XCTAssertEqual(try h.run(h.sweepArguments(file), timeout: 240).status, 0)
        for n in 0..<2 {
            XCTAssertEqual(try h.run(["report", "\(h.dir)/run/sweep.db", "--out", "\(h.dir)/r\(n)", "--resamples", "200"]).status, 0)
        }
        for f in ["results.csv", "summary.json"] {
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(h.dir)/r0/\(f)")), try Data(contentsOf: URL(fileURLWithPath: "\(h.dir)/r1/\(f)")), f)
        }
        var db: OpaquePointer?
        sqlite3_open("\(h.dir)/run/sweep.db", &db)
        sqlite3_exec(db, "UPDATE records SET data = substr(data, 1, 30) || x'5a' || substr(data, 32) WHERE task = 2 AND epoch = 1", nil, nil, nil)
        var statement: OpaquePointer?
        sqlite3_prepare_v2(db, "SELECT id FROM tasks WHERE position = 2", -1, &statement, nil)
        sqlite3_step(statement)
        let task = String(cString: sqlite3_column_text(statement, 0))
        sqlite3_finalize(statement)
        sqlite3_close(db)
        let out = try h.run(["report", "\(h.dir)/run/sweep.db", "--out", "\(h.dir)/r2", "--resamples", "200"])
        XCTAssertEqual(out.status, 0, out.stderr)
        XCTAssert(out.stdout.contains("1 stored record(s) are damaged"), out.stdout)
        XCTAssert(out.stdout.contains("record of task \(task) epoch 1: checksum mismatch"), out.stdout)
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(h.dir)/r2/summary.json"))) as? [String: Any])
        let damaged = try XCTUnwrap(summary["damaged_records"] as? [[String: Any]])
        XCTAssertEqual(damaged.first?["task"] as? String, task)
        // `status` of a coordinator on that journal says so too.
        let port = try freePort()
        let coordinator = try h.start(["coordinator", file, "--journal", "\(h.dir)/run/sweep.db", "--bind", "tcp://127.0.0.1:\(port)", "--insecure", "--stay"])
        defer { kill(coordinator.processIdentifier, SIGINT); try? h.wait(coordinator, timeout: 20) }
        var last = ""
        try h.waitUntil(60, "status to report the damaged record") {
            let status = try h.run(["status", "--connect", "tcp://127.0.0.1:\(port)", "--insecure", "--json"], timeout: 20)
            last = status.stdout + status.stderr
            let object = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
            return object?["damaged_records"] as? Int == 1
        }
        let text = try h.run(["status", "--connect", "tcp://127.0.0.1:\(port)", "--insecure"], timeout: 20).stdout
        XCTAssert(text.contains("1 stored record(s) failed their checksum"), text + last)
    }

    /// Correlations that are not defined yet (one prune task: n = 1) are null in `status --json`
    /// (JSON has no NaN) and "–" on screen, never "nan" or a failed encoding.
    func testStatusOfUndefinedCorrelationsIsValidJSON() throws {
        let file = try h.sweep(sparsities: "[0.5]", methods: "[lowest]")
        XCTAssertEqual(try h.run(h.sweepArguments(file), timeout: 240).status, 0)
        let port = try freePort()
        let coordinator = try h.start(["coordinator", file, "--journal", "\(h.dir)/run/sweep.db", "--bind", "tcp://127.0.0.1:\(port)", "--insecure", "--stay"])
        defer { kill(coordinator.processIdentifier, SIGINT); try? h.wait(coordinator, timeout: 20) }
        var last = ""
        try h.waitUntil(60, "status to show the correlations") {
            let status = try h.run(["status", "--connect", "tcp://127.0.0.1:\(port)", "--insecure", "--json"], timeout: 20)
            last = status.stdout + status.stderr
            guard status.status == 0, let object = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any],
                  let correlations = object["correlations"] as? [[String: Any]], !correlations.isEmpty else { return false }
            let finalEpoch = correlations.filter { $0["scope"] as? String == "final epoch" }
            XCTAssert(!finalEpoch.isEmpty && finalEpoch.allSatisfy { $0["value"] is NSNull && $0["points"] as? UInt32 ?? ($0["points"] as? Int).map(UInt32.init) == 1 }, "\(finalEpoch)")
            return true
        }
        let text = try h.run(["status", "--connect", "tcp://127.0.0.1:\(port)", "--insecure"], timeout: 20).stdout
        XCTAssertFalse(text.contains("nan"), text + last)
        XCTAssert(text.contains("final epoch): – n=1 (too few points)"), text)
    }

    /// A sweep whose tasks fail exits non-zero, says how many and where the errors are.
    func testFailedTasksMakeTheSweepExitNonZero() throws {
        let file = try h.sweep(methods: "[lowest]", metrics: "[\"gaussian-diag:file=\(h.dir)/no-such-variances.safetensors\"]", maxAttempts: 1)
        let out = try h.run(h.sweepArguments(file), timeout: 240)
        XCTAssertEqual(out.status, 1, out.stderr)
        XCTAssert(out.stderr.contains("2 task(s) FAILED; their errors are in \(h.dir)/run/summary.json (failed_tasks)"), out.stderr)
        XCTAssert(out.stderr.contains("--retry-failed"), out.stderr)
        XCTAssert(out.stdout.contains("cannot read the variance file"), out.stdout)
        // --retry-failed queues them again (they fail again here: the file is still missing).
        let again = try h.run(h.sweepArguments(file, extra: ["--retry-failed"]), timeout: 240)
        XCTAssertEqual(again.status, 1)
        try h.read { XCTAssertEqual(try $0.events(kind: "retry-failed").count, 1) }
    }

    /// Input that names nothing is refused before anything is journaled.
    func testBadInputIsRefusedBeforeAnythingIsJournaled() throws {
        let typo = h.dir + "/typo.yaml"
        try "models: [{architecture: lenet5}]\nbaseline: {epoch: 50}\nprune: {}\n".write(toFile: typo, atomically: true, encoding: .utf8)
        let a = try h.run(["sweep", typo, "--dir", h.dir + "/typo-run"])
        XCTAssertNotEqual(a.status, 0)
        XCTAssert(a.stderr.contains("line 2: baseline.epoch: unknown key 'epoch' in baseline"), a.stderr)
        let file = try h.sweep()
        let b = try h.run(["sweep", file, "--dir", h.dir + "/missing-run", "--data", h.dir + "/no-such-dir"])
        XCTAssertNotEqual(b.status, 0)
        XCTAssert(b.stderr.contains("--data \(h.dir)/no-such-dir: no such directory"), b.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: h.dir + "/missing-run/sweep.db"), "nothing journaled")
        let c = try h.run(["data", "synthetic", "--out", h.dir + "/x.apshard", "--train=-5"])
        XCTAssertNotEqual(c.status, 0)
        XCTAssert(c.stderr.contains("--train must be in 1…10000000"), c.stderr)
        let d = try h.run(["sweep", file, "--workers", "0"])
        XCTAssert(d.stderr.contains("--workers must be in 1…256"), d.stderr)
    }

    /// Counts that make no sense are refused; prune does not overwrite its input unasked; metrics
    /// --json keeps every key of every layer.
    func testCountsOutputsAndJSONOfTheSmallCommands() throws {
        let data = ["--data", h.dir + "/data"]
        for limit in ["-5", "0"] {
            let t = try h.run(["train", "--model", "lenet5", "--width", "0.25", "--epochs", "1", "--limit=\(limit)", "--out", h.dir + "/x.safetensors"] + data)
            XCTAssertNotEqual(t.status, 0)
            XCTAssert(t.stderr.contains("--limit must be at least 1 image, got \(limit)"), t.stderr)
        }
        let base = h.dir + "/base.safetensors", pruned = h.dir + "/pruned.safetensors"
        let t = try h.run(["train", "--model", "lenet5", "--width", "0.25", "--epochs", "1", "--limit", "128", "--out", base, "--threads", "1"] + data)
        XCTAssertEqual(t.status, 0, t.stderr)
        let before = try Data(contentsOf: URL(fileURLWithPath: base))
        let same = try h.run(["prune", "--checkpoint", base, "--method", "lowest", "--sparsity", "0.5", "--out", base])
        XCTAssertNotEqual(same.status, 0)
        XCTAssert(same.stderr.contains("is the checkpoint being pruned; give another file, or --force"), same.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: base)), before, "the input is untouched")
        XCTAssertEqual(try h.run(["prune", "--checkpoint", base, "--method", "lowest", "--sparsity", "0.5", "--out", pruned]).status, 0)
        let m = try h.run(["metrics", base, pruned, "--json", "--ap3", "gaussian:sigma2=1", "--ap3", "gaussian-diag:estimate=row"])
        XCTAssertEqual(m.status, 0, m.stderr)
        let rows = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(m.stdout.utf8)) as? [[String: Any]])
        let table = try h.run(["metrics", base, pruned, "--ap3", "gaussian:sigma2=1", "--ap3", "gaussian-diag:estimate=row"]).stdout
        let columns = (table.split(separator: "\n").first ?? "").split(separator: " ").map(String.init).dropFirst()
        XCTAssertGreaterThan(columns.count, 2)
        XCTAssertEqual(rows.count, table.split(separator: "\n").count - 1, "one JSON row per table row")
        for row in rows { for c in columns { XCTAssertNotNil(row[c], "\(row["layer"] ?? "?") lacks \(c)") } }
    }
}

/// Damage a user meets on disk: a full disk under blobs/, a flipped bit in a stored checkpoint.
final class StorageFaultTests: XCTestCase {
    var h: BinaryHarness!
    var mounted: String?

    override func setUpWithError() throws {
        h = try BinaryHarness("storage")
        try XCTSkipUnless(h.available, "apsweep is not built next to the tests")
    }

    override func tearDown() {
        if let m = mounted { _ = try? Process.run(URL(fileURLWithPath: "/bin/umount"), arguments: [m]).waitUntilExit() }
        h.cleanUp()
    }

    func shell(_ command: String) throws -> Int32 {
        let p = try Process.run(URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", command])
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// blobs/ on a full disk (a tmpfs of 8 KiB): the coordinator stops cleanly with a message,
    /// the journal is intact, and a rerun after freeing space completes (seen before: a trap in
    /// Foundation's FileHandle.write and a backtrace).
    func testAFullDiskUnderBlobsStopsCleanlyAndARerunCompletes() throws {
        try XCTSkipUnless(getuid() == 0, "mounting a small tmpfs needs root (CI runs as root)")
        let blobs = h.dir + "/run/blobs"
        try FileManager.default.createDirectory(atPath: blobs, withIntermediateDirectories: true)
        try XCTSkipUnless(try shell("mount -t tmpfs -o size=8k tmpfs '\(blobs)'") == 0, "cannot mount a tmpfs here")
        mounted = blobs
        let file = try h.sweep()
        let out = try h.run(h.sweepArguments(file), timeout: 240)
        XCTAssertEqual(out.status, 75, out.stderr)
        XCTAssert(out.stderr.contains("stopped cleanly because storage failed"), out.stderr)
        XCTAssert(out.stderr.contains("the disk is full"), out.stderr)
        XCTAssertFalse(out.stderr.contains("Fatal error"), out.stderr)
        try h.read { j in
            XCTAssertEqual(try j.tasks().filter { $0.row.state == .done }.count, 0, "the baseline without its checkpoint is not done")
            XCTAssertEqual(try j.tasks().map(\.row.failures).reduce(0, +), 0, "a full disk costs no attempt")
        }
        XCTAssertEqual(try shell("mount -o remount,size=16m '\(blobs)'"), 0)
        let rerun = try h.run(h.sweepArguments(file), timeout: 240)
        XCTAssertEqual(rerun.status, 0, rerun.stderr)
        try h.read { j in XCTAssert(try j.tasks().allSatisfy { $0.row.state == .done }) }
    }

    /// A flipped bit in the coordinator's stored checkpoint is found when it is served: the
    /// baseline runs again and the sweep completes with intact weights.
    func testAFlippedBitInAStoredCheckpointIsFoundNotUsed() throws {
        let file = try h.sweep(baselineEpochs: 2)
        // Run until the baseline is done, then stop (SIGTERM) before its prune tasks fetch it.
        let p = try h.start(h.sweepArguments(file))
        try h.waitUntil(120, "the baseline done") { try h.read { try $0.tasks().first?.row.state == .done } }
        kill(p.processIdentifier, SIGTERM)
        try h.wait(p, timeout: 60)
        let hash = try XCTUnwrap(try h.read { try $0.tasks().first?.row.checkpoint })
        let path = "\(h.dir)/run/blobs/\(hash)"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count / 2] ^= 0x04
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        // Fresh workers (empty caches) must fetch it from the coordinator.
        for k in 0..<2 { try? FileManager.default.removeItem(atPath: "\(h.dir)/run/cache-\(k)") }
        let out = try h.run(h.sweepArguments(file), timeout: 240)
        XCTAssertEqual(out.status, 0, out.stderr)
        try h.read { j in
            XCTAssert(try j.tasks().allSatisfy { $0.row.state == .done })
            XCTAssertGreaterThan(try j.events(kind: "blob-lost").count, 0, "the corrupt checkpoint was noticed")
            let newHash = try XCTUnwrap(try j.tasks().first?.row.checkpoint)
            XCTAssertEqual(try BlobStoreCheck.hash("\(h.dir)/run/blobs/\(newHash)"), newHash, "the stored checkpoint is intact")
        }
    }
}

import BlobStore

enum BlobStoreCheck {
    static func hash(_ path: String) throws -> String { try BlobStore.hash(file: path) }
}

/// The blob store verifies what it keeps: a corrupt cached blob is moved aside, not used.
final class BlobStoreTests: XCTestCase {
    func testCorruptBlobsAreFoundAndMovedAside() throws {
        let dir = NSTemporaryDirectory() + "apsweep-blobs-\(getpid())-\(UUID().uuidString.prefix(6))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try BlobStore(directory: dir)
        let hash = try store.store(Array("weights".utf8))
        XCTAssertTrue(store.verify(hash))
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: store.path(hash))))
        bytes[0] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: store.path(hash)))
        XCTAssertFalse(store.verify(hash), "re-hashed before use: the flip is found")
        XCTAssertFalse(store.contains(hash))
        XCTAssertTrue(FileManager.default.fileExists(atPath: store.path(hash) + ".corrupt"))
        // A transfer whose bytes do not match its name is refused and leaves nothing behind.
        XCTAssertThrowsError(try store.append(Array("other".utf8), hash: hash, source: "w", offset: 0, last: true)) {
            XCTAssert("\($0)".contains("does not match its hash"), "\($0)")
        }
        XCTAssertFalse(store.contains(hash))
        XCTAssertTrue(try store.append(Array("weights".utf8), hash: hash, source: "w", offset: 0, last: true))
        XCTAssertTrue(store.verify(hash))
    }
}
