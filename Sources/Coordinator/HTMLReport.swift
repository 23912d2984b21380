import Experiment
import Foundation
import Plot

/// report.html: a self-contained page (inline SVG and CSS, nothing fetched) with the sweep's
/// provenance, baselines, the paper's figures, AP–PD scatters, per-layer heat maps and the claims.
/// The markup is well-formed XML so that tests (and any XML tool) can parse it.
public enum HTMLReport {
    public static func write(_ a: Aggregation, journal: Journal, to path: String) throws -> [String: Int] {
        let (html, omitted) = try render(a, journal: journal)
        try html.write(toFile: path, atomically: true, encoding: .utf8)
        return omitted
    }

    public static func render(_ a: Aggregation, journal: Journal) throws -> (String, [String: Int]) {
        var omitted: [String: Int] = [:]
        func add(_ r: Rendered) -> String {
            for (k, v) in r.omitted { omitted[k, default: 0] += v }
            return "<figure>\(r.svg)</figure>"
        }
        let tasks = try journal.loadTasks()
        let started = (try journal.meta("created_ms")).flatMap { Int64($0) }
        let finished = tasks.compactMap(\.finishedMs).max()
        var workers: [String] = []
        try journal.db.run("SELECT id, host, cores, version FROM workers ORDER BY first_seen_ms") {
            workers.append("\($0.text(0) ?? "") (\($0.text(1) ?? ""), \($0.int(2)) cores, apsweep \($0.text(3) ?? ""))")
        }
        var fingerprints: [String] = []
        try journal.db.run("SELECT key, value FROM meta WHERE key LIKE 'fingerprint:%' ORDER BY key") {
            fingerprints.append("\(($0.text(0) ?? "").dropFirst("fingerprint:".count)): \($0.text(1) ?? "")")
        }
        let ap3 = a.ap3 ?? "ap2"
        var body = "<h1>apsweep report: sweep \(xmlEscape(try journal.meta("sweep_id") ?? ""))</h1>"
        body += "<section><h2>Provenance</h2><table>"
        body += row(["apsweep", "coordinator \(try journal.meta("apsweep_version") ?? "?"), report \(apsweepVersion)"])
        body += row(["tasks", "\(a.tasksDone) of \(a.tasksTotal) done"])
        body += row(["wall time", started.flatMap { s in finished.map { String(format: "%.1f s", Double($0 - s) / 1000) } } ?? "–"])
        body += row(["data fingerprints (SHA-256)", fingerprints.isEmpty ? "–" : fingerprints.joined(separator: "; ")])
        body += row(["workers", workers.isEmpty ? "–" : workers.joined(separator: "; ")])
        body += row(["journal", xmlEscape(journal.path)])
        body += "</table><details><summary>sweep file</summary><pre>\(xmlEscape(try journal.meta("sweep") ?? ""))</pre></details></section>"

        body += "<section><h2>Baselines</h2><table><tr><th>model</th><th>seed</th><th>train accuracy (%)</th><th>test accuracy (%)</th></tr>"
        for b in a.baselines { body += row([b.model, "\(b.seed)", String(format: "%.2f", b.train), String(format: "%.2f", b.test)]) }
        body += "</table></section>"

        body += "<section><h2>AP and PD during fine-tuning</h2><p>Solid: \(xmlEscape(ap3)) (AP3, whole network); dashed: PD_test in percentage points. Mean over trials, band ± one standard deviation; log-scale y as in the paper.</p>"
        let models = Set(a.configurations.map(\.model)).sorted()
        for model in models {
            let configs = a.configurations.filter { $0.model == model }
            func series(_ c: Aggregation.Configuration, _ q: String, _ color: String, dashed: Bool, name: String) -> Series {
                let m = a.moments(c, q)
                return Series(name: name, points: m.map { (Double($0.epoch), $0.1.mean) },
                              band: m.filter { $0.1.std.isFinite }.map { (Double($0.epoch), $0.1.mean - $0.1.std, $0.1.mean + $0.1.std) },
                              color: color, dashed: dashed)
            }
            /// One panel: an AP3 line (solid) and a PD line (dashed) per configuration, one colour each.
            func panel(_ title: String, _ cs: [Aggregation.Configuration], _ name: (Aggregation.Configuration) -> String) -> String {
                var s: [Series] = []
                for (i, c) in cs.enumerated() {
                    let color = okabeIto[i % okabeIto.count]
                    s.append(series(c, ap3, color, dashed: false, name: "AP3 \(name(c))"))
                    s.append(series(c, "pd_test", color, dashed: true, name: "PD \(name(c))"))
                }
                return add(LineChart(title: title, xLabel: "fine-tuning epoch", yLabel: "AP3 (solid), PD_test in points (dashed)", logY: true, series: s).render())
            }
            body += "<h3>\(xmlEscape(model)): one panel per method</h3><div class=\"panels\">"
            for method in Set(configs.map(\.method)).sorted() {
                body += panel("\(model) · \(method)", configs.filter { $0.method == method }.sorted { $0.sparsity < $1.sparsity }) { "p=\($0.sparsity)" }
            }
            body += "</div><h3>\(xmlEscape(model)): one panel per sparsity</h3><div class=\"panels\">"
            for sparsity in Set(configs.map(\.sparsity)).sorted() {
                body += panel("\(model) · sparsity \(sparsity)", configs.filter { $0.sparsity == sparsity }.sorted { $0.method < $1.method }) { $0.method }
            }
            body += "</div>"
        }
        body += "</section>"

        body += "<section><h2>AP against PD at the final epoch</h2><div class=\"panels\">"
        let correlations = a.correlations()
        if let final = a.finalEpoch {
            for metric in ["ap2", ap3] where a.apMetrics.contains(metric) {
                let methods = Set(a.configurations.map(\.method)).sorted()
                let groups = methods.enumerated().map { (i, m) -> (name: String, color: String, points: [(x: Double, y: Double)]) in
                    (m, okabeIto[i % okabeIto.count], a.configurations.filter { $0.method == m }.compactMap { c in
                        guard let x = a.moments(c, metric).first(where: { $0.epoch == final })?.1.mean,
                              let y = a.moments(c, "pd_test").first(where: { $0.epoch == final })?.1.mean else { return nil }
                        return (x, y)
                    })
                }
                let note = correlations.filter { $0.metric == metric && $0.target == "pd_test" && $0.scope == "configurations at final epoch" && $0.method != .pearson }
                    .map { "\($0.method.rawValue) \(String(format: "%.3f", $0.value)) [\(String(format: "%.3f", $0.low)), \(String(format: "%.3f", $0.high))]" }.joined(separator: ", ")
                body += add(ScatterChart(title: "\(metric) vs PD_test, epoch \(final)", xLabel: metric, yLabel: "PD_test (points)", note: note, groups: groups).render())
            }
        }
        body += "</div></section>"

        // Per-layer AP3 heat map when several layers were pruned.
        let layerRows = try layerAP3(journal: journal, metric: ap3)
        if layerRows.layers.count > 1 {
            body += "<section><h2>Per-layer \(xmlEscape(ap3)) at the final epoch</h2>"
            body += add(HeatMap(title: "per-layer \(ap3), mean over trials", rowLabels: layerRows.layers, columnLabels: layerRows.configs, values: layerRows.values).render())
            body += "</section>"
        }

        body += "<section><h2>Correlations of AP with PD</h2><table><tr><th>metric</th><th>target</th><th>scope</th><th>method</th><th>value</th><th>95 % interval</th><th>points</th></tr>"
        for r in correlations where !r.scope.hasPrefix("epochs:") {
            body += row([r.metric, r.target, r.scope, r.method.rawValue, String(format: "%.3f", r.value), String(format: "[%.3f, %.3f]", r.low, r.high), "\(r.points)"])
        }
        body += "</table></section>"

        body += "<section><h2>Claims of the paper</h2><table class=\"claims\"><tr><th>#</th><th>claim</th><th>verdict</th><th>evidence</th></tr>"
        for c in a.claims() {
            body += "<tr class=\"\(c.verdict == .held ? "held" : (c.verdict == .notHeld ? "not-held" : "no-data"))\"><td>\(c.number)</td><td>\(xmlEscape(c.statement))</td><td>\(xmlEscape(c.verdict.rawValue))</td><td>\(xmlEscape(c.evidence))</td></tr>"
        }
        body += "</table></section>"
        if !omitted.isEmpty {
            body += "<section><h2>Not drawn</h2><p>Values that cannot be drawn (NaN, ∞, or ≤ 0 on a log axis) are shown as gaps: "
                + xmlEscape(omitted.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")) + ".</p></section>"
        }
        let css = """
            body{font-family:sans-serif;max-width:1150px;margin:1em auto;color:#111}table{border-collapse:collapse;margin:.5em 0}
            td,th{border:1px solid #999;padding:2px 6px;font-size:13px;text-align:left}figure{margin:4px;display:inline-block}
            .panels{display:flex;flex-wrap:wrap}.chart text{font-size:11px;fill:#111}.chart .chart-title{font-size:13px;font-weight:bold}
            .chart .warning{fill:#a00}.held td:nth-child(3){background:#cde8d5}.not-held td:nth-child(3){background:#f6d2c8}
            .no-data td:nth-child(3){background:#eee}@media print{figure{break-inside:avoid}}
            """
        let html = "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"utf-8\"/><title>apsweep report</title><style>\(css)</style></head><body>\(body)</body></html>\n"
        return (html, omitted)
    }

    static func row(_ cells: [String]) -> String { "<tr>" + cells.map { "<td>\(xmlEscape($0))</td>" }.joined() + "</tr>" }

    /// Mean per-layer values of `metric` at each configuration's final epoch.
    static func layerAP3(journal: Journal, metric: String) throws -> (layers: [String], configs: [String], values: [[Double]]) {
        var table: [String: [String: [Double]]] = [:]   // config → layer → values over trials
        var layers: [String] = []
        for t in try journal.loadTasks() where t.kind == "prune" {
            guard let spec = try? SweepTask.decode(t.spec), let p = spec.prune, let last = try journal.records(t.id).last else { continue }
            let key = "\(spec.model.name) \(p.method.rawValue) \(p.sparsity) \(p.scope)"
            for l in last.layers {
                if !layers.contains(l.layer) { layers.append(l.layer) }
                if let v = l.values.first(where: { $0.name == metric })?.value { table[key, default: [:]][l.layer, default: []].append(v) }
            }
        }
        let configs = table.keys.sorted()
        // Keep layers that are non-zero somewhere (the pruned ones).
        let active = layers.filter { l in configs.contains { (table[$0]?[l] ?? []).contains { $0 > 0 } } }
        let values = active.map { l in configs.map { c -> Double in
            let v = table[c]?[l] ?? []
            return v.isEmpty ? .nan : v.reduce(0, +) / Double(v.count)
        } }
        return (active, configs, values)
    }
}
