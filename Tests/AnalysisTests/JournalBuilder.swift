@testable import Analysis
import Coordinator
import Foundation
import Journal
import Messages
import Records
import Scheduling

/// A journal made by hand: a sweep file's plan, with every baseline done and each prune task's
/// records chosen by the test.
final class JournalBuilder {
    let path: String
    let journal: SweepJournal
    let plan: Plan

    init(_ yaml: String) throws {
        path = NSTemporaryDirectory() + "apsweep-analysis-\(getpid())-\(UUID().uuidString.prefix(8)).db"
        journal = try SweepJournal.openForWriting(path)
        plan = try Plan(try SweepFile.parse(yaml))
        try journal.storePlan(plan.planned, pins: [:], sweepText: yaml, sweepID: "test")
    }

    /// Marks every baseline done (train 95 %, test 90 %) and gives each prune task the records
    /// `records` returns for (method, sparsity, seed); nil leaves the task open.
    func fill(baseline: BaselineSummary = BaselineSummary(trainAccuracy: 95, testAccuracy: 90, trainLoss: 0.1, testLoss: 0.2),
              _ records: (_ method: String, _ sparsity: Double, _ seed: UInt64) -> [EpochRecord]?) throws {
        var ops: [JournalOp] = []
        for (i, e) in plan.entries.enumerated() {
            if e.task.kind == .baseline {
                var row = TaskRow(state: .done)
                row.baseline = baseline
                row.checkpoint = String(repeating: "0", count: 64)
                ops.append(.task(index: i, row: row))
                continue
            }
            let p = e.task.prune!
            guard let list = records(p.method.rawValue, p.sparsity, e.task.seed) else { continue }
            ops.append(.records(task: i, records: list, replace: true))
            ops.append(.task(index: i, row: TaskRow(state: .done)))
        }
        try journal.apply(ops)
    }

    /// A record with these values (the rest valid defaults).
    static func record(epoch: Int, ap2: Double, ap3: Double? = nil, pdTest: Double, testAccuracy: Double? = nil, sigma2: Double = 1) -> EpochRecord {
        var r = EpochRecord(epoch: epoch)
        r.pdTest = pdTest
        r.pdTrain = pdTest / 2
        r.testAccuracy = testAccuracy ?? max(0, 90 - pdTest)
        r.trainAccuracy = 95 - pdTest / 2
        r.totalMetrics = MetricValues(key: "total", values: [("ap2", ap2), ("ap3[gaussian:sigma2=\(sigma2 == 1 ? "1" : String(sigma2))]", ap3 ?? ap2 / (2 * sigma2))])
        r.layerMetrics = [MetricValues(key: "fc.weight", values: [("ap2", ap2)])]
        return r
    }

    deinit {
        journal.close()
        for s in ["", "-wal", "-shm", ".lock"] { try? FileManager.default.removeItem(atPath: path + s) }
    }
}
