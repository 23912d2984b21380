import Experiment
import Foundation
import Wire

/// results.csv from a journal: one row per task × epoch, tidy (loadable by pandas), with the
/// task's configuration in its own columns and every metric as a column.
public enum ResultsExport {
    /// Writes results.csv and summary.json into `directory` and returns the aggregation (for the
    /// terminal table). Works on any journal, finished or not.
    @discardableResult
    public static func write(journal: Journal, directory: String) throws -> Aggregation {
        try writeCSV(journal: journal, directory: directory)
        let aggregation = try Aggregation(journal: journal)
        try summaryJSON(aggregation, journal: journal).write(to: URL(fileURLWithPath: (directory as NSString).appendingPathComponent("summary.json")), options: .atomic)
        _ = try HTMLReport.write(aggregation, journal: journal, to: (directory as NSString).appendingPathComponent("report.html"))
        return aggregation
    }

    static func clean(_ v: Double) -> Any { v.isFinite ? v : NSNull() }

    public static func summaryJSON(_ a: Aggregation, journal: Journal) throws -> Data {
        let configs: [[String: Any]] = a.configurations.map { c in
            let epochs = Set(a.quantities.flatMap { q in a.moments(c, q).map(\.epoch) }).sorted()
            return ["model": c.model, "method": c.method, "sparsity": c.sparsity, "scope": c.scope,
                    "epochs": epochs.map { e -> [String: Any] in
                        var d: [String: Any] = ["epoch": e]
                        for q in a.quantities {
                            if let m = a.moments(c, q).first(where: { $0.epoch == e })?.1, m.count > 0 {
                                d[q] = ["mean": clean(m.mean), "std": clean(m.std), "n": m.count]
                            }
                        }
                        return d
                    }]
        }
        let correlations: [[String: Any]] = a.correlations().map {
            ["metric": $0.metric, "target": $0.target, "method": $0.method.rawValue, "scope": $0.scope,
             "value": clean($0.value), "ci95": [clean($0.low), clean($0.high)], "points": $0.points]
        }
        let claims: [[String: Any]] = a.claims().map { ["claim": $0.number, "statement": $0.statement, "verdict": $0.verdict.rawValue, "evidence": $0.evidence] }
        let summary: [String: Any] = [
            "sweep_id": try journal.meta("sweep_id") ?? "", "tasks": ["done": a.tasksDone, "total": a.tasksTotal],
            "final_epoch": a.finalEpoch.map { $0 as Any } ?? NSNull(),
            "baselines": a.baselines.map { ["model": $0.model, "seed": $0.seed, "train_accuracy": clean($0.train), "test_accuracy": clean($0.test)] },
            "configurations": configs, "correlations": correlations, "claims": claims,
        ]
        return try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys])
    }

    /// The terminal summary: final-epoch means per configuration, the headline correlations, the claims.
    public static func table(_ a: Aggregation) -> String {
        var out = ""
        guard let final = a.finalEpoch else { return "no prune records yet\n" }
        let ap3 = a.ap3 ?? "ap2"
        out += "configuration means at epoch \(final) (over trials):\n"
        out += "  " + ["model", "method", "sparsity", "AP2", "AP3", "PD_test", "test acc", "n"].map { $0.padding(toLength: 12, withPad: " ", startingAt: 0) }.joined() + "\n"
        for c in a.configurations {
            func m(_ q: String) -> String { a.moments(c, q).first { $0.epoch == final }.map { String(format: "%.4g", $0.1.mean) } ?? "–" }
            let n = a.moments(c, "pd_test").first { $0.epoch == final }?.1.count ?? 0
            out += "  " + [c.model, c.method, "\(c.sparsity)", m("ap2"), m(ap3), m("pd_test"), m("test_accuracy"), "\(n)"]
                .map { String($0.prefix(11)).padding(toLength: 12, withPad: " ", startingAt: 0) }.joined() + "\n"
        }
        out += "correlation with PD_test (\(ap3) is AP3):\n"
        for r in a.headline() {
            out += "  " + String(r.metric.prefix(28)).padding(toLength: 29, withPad: " ", startingAt: 0)
                + r.scope.padding(toLength: 13, withPad: " ", startingAt: 0) + r.method.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)
                + String(format: "%7.3f  [%.3f, %.3f]  n=%d\n", r.value, r.low, r.high, r.points)
        }
        out += "claims of the paper:\n"
        for c in a.claims() { out += "  \(c.number). \(c.verdict.rawValue.uppercased()) — \(c.statement)\n     \(c.evidence)\n" }
        return out
    }

    public static func writeCSV(journal: Journal, directory: String) throws {
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
