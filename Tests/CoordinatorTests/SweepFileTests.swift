@testable import Coordinator
import Experiment
import XCTest

final class SweepFileTests: XCTestCase {
    let minimal = """
        models: [{architecture: lenet5}]
        trials: 2
        prune: {methods: [lowest, random], sparsities: [0.3, 0.6]}
        """

    func testPlanHasBaselinesAndPruneTasksWithStableUniqueIDs() throws {
        let sweep = try SweepFile.parse(minimal)
        let plan = try Plan(sweep)
        XCTAssertEqual(plan.entries.count, 2 + 2 * 2 * 2)
        XCTAssertEqual(Set(plan.entries.map(\.id)).count, plan.entries.count)
        let again = try Plan(try SweepFile.parse(minimal))
        XCTAssertEqual(plan.entries.map(\.id), again.entries.map(\.id), "ids are content hashes")
        for e in plan.entries where e.task.kind == .prune {
            XCTAssertEqual(plan.entries.first { $0.id == e.dependsOn }?.task.kind, .baseline)
            XCTAssertEqual(plan.entries.first { $0.id == e.dependsOn }?.task.seed, e.task.seed)
        }
        // A changed fine-tuning setting changes every prune task's id.
        let other = try Plan(try SweepFile.parse(minimal.replacingOccurrences(of: "sparsities: [0.3, 0.6]}", with: "sparsities: [0.3, 0.6], fine_tune: {epochs: 3}}")))
        XCTAssertEqual(Set(other.entries.filter { $0.dependsOn == nil }.map(\.id)), Set(plan.entries.filter { $0.dependsOn == nil }.map(\.id)))
        XCTAssert(Set(other.entries.filter { $0.dependsOn != nil }.map(\.id)).isDisjoint(with: plan.entries.map(\.id)))
    }

    func testValidationNamesTheFieldAndWhatIsAllowed() {
        func message(_ text: String) -> String {
            do { _ = try SweepFile.parse(text); return "no error" } catch { return "\(error)" }
        }
        XCTAssert(message("models: [{architecture: lenet5}]\nprune: {methods: [smallest]}").contains("prune.methods: 'smallest' is not a method; allowed: lowest"))
        XCTAssert(message("models: [{architecture: lenet5}]\nprune: {sparsities: [1.5]}").contains("prune.sparsities: 1.5 is outside [0, 1]"))
        XCTAssert(message("models: []\nprune: {}").contains("models: give at least one"))
        XCTAssert(message("models: [{architecture: lenet5}]\nprune: {}\nepochs: 3").contains("unknown field 'epochs'"))
        XCTAssert(message("models: [{architecture: lenet5}]\nprune: {mode: some}").contains("prune.mode: 'some' is not a mode"))
        XCTAssert(message("models: [{architecture: lenet5}]\nprune: {fine_tune: {lr: -1}}").contains("prune.fine_tune.lr: must be > 0"))
        XCTAssert(message("models: [{architecture: lenet6}]\nprune: {}").contains("models"), message("models: [{architecture: lenet6}]\nprune: {}"))
        XCTAssert(message(": : :").contains("not valid YAML") || message(": : :").contains("mapping"))
        XCTAssert(message("models: [{architecture: lenet5}]\nprune: {metrics: [cauchy]}").contains("prune.metrics: unknown metric"))
        let sha = String(repeating: "ab", count: 32)
        XCTAssert(message("data: {shards: 2, fingerprints: [\(sha)]}\nmodels: [{architecture: lenet5}]\nprune: {}")
            .contains("data.fingerprints: 1 given for 2 shard(s)"))
        XCTAssert(message("data: {fingerprints: [abc]}\nmodels: [{architecture: lenet5}]\nprune: {}").contains("'abc' is not a SHA-256"))
        XCTAssert(message("data: {fingerprint: \(sha)}\nmodels: [{architecture: lenet5}]\nprune: {}").contains("data: unknown field 'fingerprint'"))
        XCTAssertEqual(try SweepFile.parse("data: {fingerprints: [\(sha)]}\nmodels: [{architecture: lenet5}]\nprune: {}").data.fingerprints, [sha])
    }

    func testExamplesParse() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for name in ["quickstart", "paper"] {
            let sweep = try SweepFile.load(path: root.appendingPathComponent("Examples/\(name).yaml").path)
            XCTAssertFalse(try Plan(sweep).entries.isEmpty)
        }
        XCTAssertEqual(try Plan(try SweepFile.load(path: root.appendingPathComponent("Examples/quickstart.yaml").path)).entries.count, 26)
        XCTAssertEqual(try Plan(try SweepFile.load(path: root.appendingPathComponent("Examples/paper.yaml").path)).entries.count, 3 + 36)
    }

    func testJournalRefusesAnotherSweepAndKeepsStateAcrossReopen() throws {
        let path = NSTemporaryDirectory() + "apsweep-journal-\(getpid())-\(UUID().uuidString.prefix(6)).db"
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let plan = try Plan(try SweepFile.parse(minimal))
        do {
            let j = try Journal(path: path)
            try j.storePlan(plan, sweepText: minimal)
            try j.setState(plan.entries[0].id, .leased, attempt: 1, worker: "w", leaseDeadlineMs: 5, event: "leased")
            try j.complete(plan.entries[0].id, records: [], checkpoint: "c", baseline: nil, worker: "w", attempt: 1)
        }
        let j = try Journal(path: path)
        try j.storePlan(plan, sweepText: minimal)   // same plan: accepted, nothing changes
        let tasks = try j.loadTasks()
        XCTAssertEqual(tasks.first?.state, .done)
        XCTAssertEqual(tasks.filter { $0.dependsOn == plan.entries[0].id }.map(\.state), Array(repeating: .queued, count: 4), "dependents unblocked")
        let other = try Plan(try SweepFile.parse(minimal.replacingOccurrences(of: "trials: 2", with: "trials: 3")))
        XCTAssertThrowsError(try j.storePlan(other, sweepText: "")) { XCTAssert("\($0)".contains("holds another sweep"), "\($0)") }
        // A refused sweep file leaves nothing behind, not even the data fingerprints it pins.
        let sha = String(repeating: "ab", count: 32)
        let pinnedOther = try Plan(try SweepFile.parse(minimal.replacingOccurrences(of: "trials: 2", with: "trials: 3")
            + "\ndata: {dataset: fashion-mnist, fingerprints: [\(sha)]}"))
        XCTAssertThrowsError(try j.storePlan(pinnedOther, sweepText: ""))
        XCTAssertNil(try j.meta(Plan.fingerprintKey(dataset: "fashion-mnist", shard: 0, of: 1)))
    }
}
