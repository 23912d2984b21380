import Experiment
import Foundation
import Wire

/// results.csv from a journal: one row per task × epoch, tidy (loadable by pandas), with the
/// task's configuration in its own columns and every metric as a column.
public enum ResultsExport {
    public static func write(journal: Journal, directory: String) throws {
        let tasks = try journal.loadTasks()
        var metricColumns: [String] = []
        var seen = Set<String>()
        var rows: [(StoredTask, SweepTask, WireEpochRecord)] = []
        for t in tasks {
            guard let spec = try? SweepTask.decode(t.spec) else { continue }
            for r in try journal.records(t.id) {
                rows.append((t, spec, r))
                for v in r.total?.values ?? [] where seen.insert(v.name).inserted { metricColumns.append(v.name) }
            }
        }
        var lines = [(["task_id", "kind", "state", "model", "width", "dataset", "shard", "seed", "method", "sparsity", "scope", "mode",
                       "epoch", "train_accuracy", "test_accuracy", "train_loss", "test_loss", "pd_train", "pd_test",
                       "loss_diff_train", "loss_diff_test", "lr", "seconds"] + metricColumns).map(quote).joined(separator: ",")]
        for (t, spec, r) in rows {
            var values: [String: Double] = [:]
            for v in r.total?.values ?? [] { values[v.name] = v.value }
            let fixed: [String] = [t.id, t.kind, t.state.rawValue, spec.model.name, "\(spec.model.width)", spec.dataset,
                                   "\(spec.shardIndex)/\(spec.shardCount)", "\(spec.seed)", spec.prune?.method.rawValue ?? "",
                                   spec.prune.map { "\($0.sparsity)" } ?? "", spec.prune?.scope ?? "", spec.prune?.mode.rawValue ?? "",
                                   "\(r.epoch)"]
            let numbers = [r.trainAccuracy, r.testAccuracy, r.trainLoss, r.testLoss, r.pdTrain, r.pdTest, r.lossDiffTrain, r.lossDiffTest, r.learningRate, r.seconds]
            lines.append((fixed.map(quote) + numbers.map(number) + metricColumns.map { values[$0].map(number) ?? "" }).joined(separator: ","))
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: (directory as NSString).appendingPathComponent("results.csv"), atomically: true, encoding: .utf8)
    }

    static func number(_ v: Double) -> String { v.isFinite ? "\(v)" : (v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf")) }
    static func quote(_ s: String) -> String { s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }
}
