import Foundation
import Records

/// One task's records as files (`apsweep run-task`): a tidy CSV (one row per epoch, the record's
/// scalar fields by `EpochRecord.fields`, then metric columns by name) and JSON.
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
        var lines = [(["epoch"] + EpochRecord.fields.map(\.name) + metricColumns).map(quote).joined(separator: ",")]
        for r in records {
            var values: [String: Double] = [:]
            for (name, v) in r.totalMetrics?.values ?? [] { values["total.\(name)"] = v }
            for layer in r.layerMetrics { for (name, v) in layer.values { values["\(layer.key).\(name)"] = v } }
            lines.append(([String(r.epoch)] + EpochRecord.fields.map { number(r[keyPath: $0.keyPath]) } + metricColumns.map { values[$0].map(number) ?? "" })
                .joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func number(_ v: Double) -> String { v.isFinite ? "\(v)" : (v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf")) }
    static func quote(_ s: String) -> String { s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }

    public static func jsonObject(_ r: EpochRecord) -> [String: Any] {
        func clean(_ v: Double) -> Any { v.isFinite ? v : NSNull() }
        var d: [String: Any] = ["epoch": r.epoch]
        for f in EpochRecord.fields { d[f.name] = clean(r[keyPath: f.keyPath]) }
        func set(_ m: MetricValues) -> [String: Any] { Dictionary(m.values.map { ($0.0, clean($0.1)) }, uniquingKeysWith: { a, _ in a }) }
        if let t = r.totalMetrics { d["total"] = set(t) }
        d["layers"] = Dictionary(r.layerMetrics.map { ($0.key, set($0)) }, uniquingKeysWith: { a, _ in a })
        return d
    }

    public static func write(_ records: [EpochRecord], csv csvPath: String, json jsonPath: String) throws {
        try csv(records).write(toFile: csvPath, atomically: true, encoding: .utf8)
        try JSONSerialization.data(withJSONObject: records.map(jsonObject), options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: jsonPath), options: .atomic)
    }
}
