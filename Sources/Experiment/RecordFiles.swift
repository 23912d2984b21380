import Foundation

/// Records as files: a tidy CSV (one row per epoch, metric columns by name) and JSON.
public enum RecordFiles {
    /// The CSV header and rows for `records`; metric columns are `total.<name>` then
    /// `<layer>.<name>`, in first-seen order.
    public static func csv(_ records: [EpochRecord]) -> String {
        var metricColumns: [String] = []
        var seen = Set<String>()
        for r in records {
            for (name, _) in r.totalMetrics?.values ?? [] where seen.insert("total.\(name)").inserted { metricColumns.append("total.\(name)") }
            for layer in r.layerMetrics {
                for (name, _) in layer.values where seen.insert("\(layer.key).\(name)").inserted { metricColumns.append("\(layer.key).\(name)") }
            }
        }
        var lines = [(["epoch", "train_accuracy", "train_loss", "test_accuracy", "test_loss", "pd_train", "pd_test",
                       "loss_diff_train", "loss_diff_test", "lr", "seconds"] + metricColumns).map(quote).joined(separator: ",")]
        for r in records {
            var values: [String: Double] = [:]
            for (name, v) in r.totalMetrics?.values ?? [] { values["total.\(name)"] = v }
            for layer in r.layerMetrics { for (name, v) in layer.values { values["\(layer.key).\(name)"] = v } }
            let fixed = [r.trainAccuracy, r.trainLoss, r.testAccuracy, r.testLoss, r.pdTrain, r.pdTest, r.lossDiffTrain, r.lossDiffTest, r.learningRate, r.seconds]
            lines.append(([String(r.epoch)] + fixed.map(number) + metricColumns.map { values[$0].map(number) ?? "" }).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func number(_ v: Double) -> String { v.isFinite ? "\(v)" : (v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf")) }
    static func quote(_ s: String) -> String { s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }

    public static func jsonObject(_ r: EpochRecord) -> [String: Any] {
        func clean(_ v: Double) -> Any { v.isFinite ? v : NSNull() }
        var d: [String: Any] = ["epoch": r.epoch, "train_accuracy": clean(r.trainAccuracy), "train_loss": clean(r.trainLoss),
                                "test_accuracy": clean(r.testAccuracy), "test_loss": clean(r.testLoss), "pd_train": clean(r.pdTrain),
                                "pd_test": clean(r.pdTest), "loss_diff_train": clean(r.lossDiffTrain), "loss_diff_test": clean(r.lossDiffTest),
                                "lr": r.learningRate, "seconds": r.seconds]
        if let t = r.totalMetrics { d["total"] = Dictionary(t.values.map { ($0.0, clean($0.1)) }, uniquingKeysWith: { a, _ in a }) }
        d["layers"] = Dictionary(r.layerMetrics.map { m in (m.key, Dictionary(m.values.map { ($0.0, clean($0.1)) }, uniquingKeysWith: { a, _ in a })) },
                                 uniquingKeysWith: { a, _ in a })
        return d
    }

    public static func write(_ records: [EpochRecord], csv csvPath: String, json jsonPath: String) throws {
        try csv(records).write(toFile: csvPath, atomically: true, encoding: .utf8)
        try JSONSerialization.data(withJSONObject: records.map(jsonObject), options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: jsonPath), options: .atomic)
    }
}
