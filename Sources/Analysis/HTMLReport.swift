import Foundation
import Journal
import Plot
import Records

/// report.html: a self-contained page (inline SVG and CSS, nothing fetched) with the sweep's
/// provenance, baselines and their convergence, the paper's figures, AP–PD scatters, per-layer
/// heat maps, correlations and the claims with their tests, intervals and verdicts. The markup is
/// well-formed XML so that tests (and any XML tool) can parse it. Every figure is also returned
/// by name, for `apsweep report --figures DIR`.
public enum HTMLReport {
    public struct Page {
        public var page: String
        public var figures: [(name: String, svg: String)]
        public var omitted: [String: Int]
    }

    public static func render(_ a: Aggregation, claims: [ClaimTest], correlations: [CorrelationResult], comparisons: [MetricComparison],
                              journal: SweepJournal, generated: Date = Date()) throws -> Page {
        var omitted: [String: Int] = [:]
        var figures: [(String, String)] = []
        func add(_ name: String, _ r: Rendered) -> String {
            for (k, v) in r.omitted { omitted[k, default: 0] += v }
            let file = name.lowercased().map { $0.isLetter || $0.isNumber ? String($0) : "-" }.joined()
            figures.append((file, r.svg))
            return "<figure>\(r.svg)</figure>"
        }
        let tasks = try journal.tasks()
        let started = (try journal.meta("created_ms")).flatMap { Int64($0) }
        let finished = tasks.compactMap(\.row.finishedMs).max()
        let workers = try journal.workersSeen().map { "\($0.id) (\($0.host), \($0.cores) cores, apsweep \($0.version))" }
        let fingerprints = try journal.meta(prefix: "fingerprint:").map { "\($0.key.dropFirst("fingerprint:".count)): \($0.value)" }
        let ap3 = a.ap3 ?? "ap2"
        var body = "<h1>apsweep report: sweep \(xmlEscape(try journal.meta("sweep_id") ?? ""))</h1>"
        body += "<section><h2>Provenance</h2><table>"
        body += row(["apsweep", "coordinator \(try journal.meta("apsweep_version") ?? "?"), report \(apsweepVersion)"])
        body += row(["tasks", "\(a.tasksDone) of \(a.tasksTotal) done, \(a.failed.count) failed"])
        body += row(["wall time", started.flatMap { s in finished.map { String(format: "%.1f s", Double($0 - s) / 1000) } } ?? "–"])
        body += row(["data fingerprints (SHA-256)", fingerprints.isEmpty ? "–" : fingerprints.joined(separator: "; ")])
        body += row(["workers", workers.isEmpty ? "–" : workers.joined(separator: "; ")])
        body += row(["journal", journal.path])
        body += row(["report generated", ISO8601DateFormatter().string(from: generated)])
        body += "</table><details><summary>sweep file</summary><pre>\(xmlEscape(try journal.meta("sweep") ?? ""))</pre></details></section>"

        body += "<section><h2>Baselines</h2><p>PD is measured against each trial's own baseline. The last two epochs' test accuracies show whether it converged: an under-trained baseline lets fine-tuning climb above it, and |PD| then folds.</p><table><tr><th>model</th><th>seed</th><th>train accuracy (%)</th><th>test accuracy (%)</th><th>test accuracy, last two epochs</th></tr>"
        for b in a.baselines {
            body += row([b.model, "\(b.seed)", String(format: "%.2f", b.train), String(format: "%.2f", b.test),
                         b.lastTwoTest.map { String(format: "%.2f, %.2f", $0.0, $0.1) } ?? "–"])
        }
        body += "</table></section>"
        if !a.failed.isEmpty || !a.damaged.isEmpty {
            body += "<section><h2>Failures</h2><table><tr><th>task</th><th>what</th></tr>"
            for f in a.failed { body += row(["\(f.label) (\(f.id))", "FAILED: \(f.error)"]) }
            for d in a.damaged { body += row([d.taskID, "damaged record, epoch \(d.epoch): \(d.reason)"]) }
            body += "</table></section>"
        }

        body += "<section><h2>AP and PD during fine-tuning</h2><p>Solid: \(xmlEscape(ap3)) (AP3, whole network); dashed: |PD_test| in percentage points. Mean over trials, band ± one standard deviation; log-scale y as in the paper.</p>"
        for model in Set(a.configurations.map(\.model)).sorted() {
            let configs = a.configurations.filter { $0.model == model }
            func series(_ c: Aggregation.Configuration, _ q: String, _ color: String, dashed: Bool, name: String) -> Series {
                let m = a.moments(c, q)
                return Series(name: name, points: m.map { (Double($0.epoch), $0.1.mean) },
                              band: m.filter { $0.1.std.isFinite }.map { (Double($0.epoch), $0.1.mean - $0.1.std, $0.1.mean + $0.1.std) },
                              color: color, dashed: dashed)
            }
            func panel(_ title: String, _ cs: [Aggregation.Configuration], _ name: (Aggregation.Configuration) -> String) -> String {
                var s: [Series] = []
                for (i, c) in cs.enumerated() {
                    let color = okabeIto[i % okabeIto.count]
                    s.append(series(c, ap3, color, dashed: false, name: "AP3 \(name(c))"))
                    s.append(series(c, "pd_test", color, dashed: true, name: "PD \(name(c))"))
                }
                return add(title, LineChart(title: title, xLabel: "fine-tuning epoch", yLabel: "AP3 (solid), PD_test in points (dashed)", logY: true, series: s).render())
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
        if let final = a.finalEpoch {
            for metric in ["ap2", ap3] where a.apMetrics.contains(metric) {
                let methods = Set(a.configurations.map(\.method)).sorted()
                let groups = methods.enumerated().map { (i, m) -> (name: String, color: String, points: [(x: Double, y: Double)]) in
                    (m, okabeIto[i % okabeIto.count], a.configurations.filter { $0.method == m }.compactMap { c in
                        guard let x = a.mean(c, metric, epoch: final), let y = a.mean(c, "pd_test", epoch: final) else { return nil }
                        return (x, y)
                    })
                }
                let note = correlations.filter { $0.metric == metric && $0.target == "pd_test" && $0.scope == "configurations at final epoch" && $0.method != .pearson }
                    .map { "\($0.method.rawValue) \(Stats.fmt($0.value)) \(Stats.interval($0.interval))" }.joined(separator: ", ")
                body += add("\(metric) vs PD_test", ScatterChart(title: "\(metric) vs PD_test, epoch \(final)", xLabel: metric, yLabel: "PD_test (points)", note: note, groups: groups).render())
            }
        }
        body += "</div></section>"

        let active = a.layerNames.filter { l in a.layerFinal.contains { ($0[l]?.mean ?? 0) > 0 } }
        if active.count > 1 {
            let values = active.map { l in a.configurations.indices.map { a.layerFinal[$0][l]?.mean ?? .nan } }
            body += "<section><h2>Per-layer \(xmlEscape(ap3)) at the final epoch</h2>"
            body += add("per-layer AP3", HeatMap(title: "per-layer \(ap3), mean over trials", rowLabels: active, columnLabels: a.configurations.map(\.label), values: values).render())
            body += "</section>"
        }

        body += "<section><h2>Claims of the paper</h2><p>Each claim is a hypothesis with a test; verdicts are decided after Holm's correction of the seven tests together (family-wise α = 0.05): <b>held</b> — the effect differs from the null on the claimed side; <b>contradicted</b> — on the other side; <b>inconclusive</b> — the interval spans the null; <b>not enough data</b>. Trials are the replicates: intervals resample trials (and configurations where a claim is across configurations), with B = \(a.resamples) resamples from a fixed seed.</p>"
        body += "<table class=\"claims\"><tr><th>#</th><th>claim</th><th>test</th><th>effect</th><th>95 % interval</th><th>null</th><th>p (Holm)</th><th>verdict</th><th>evidence</th></tr>"
        for c in claims {
            let cls = c.verdict == .held ? "held" : (c.verdict == .contradicted ? "contradicted" : (c.verdict == .inconclusive ? "inconclusive" : "no-data"))
            body += "<tr class=\"\(cls)\"><td>\(c.number)</td><td>\(xmlEscape(c.statement))<br/><small>\(xmlEscape(c.hypothesis))</small></td><td>\(xmlEscape(c.test))</td>"
                + "<td>\(Stats.fmt(c.effect))</td><td>\(Stats.interval(c.interval))</td><td>\(Stats.fmt(c.null))</td>"
                + "<td>\(Stats.fmt(c.pValue)) (\(Stats.fmt(c.adjustedP)))</td><td>\(xmlEscape(c.verdict.rawValue))</td><td>\(xmlEscape(c.evidence))</td></tr>"
        }
        body += "</table>"
        if !comparisons.isEmpty {
            body += "<h3>Open question: is AP2 or AP3 more correlated with PD?</h3><table><tr><th>AP3 variant</th><th>|ρ(AP2)| − |ρ(AP3)|</th><th>95 % interval</th><th>p</th><th>answer</th></tr>"
            for m in comparisons { body += row([m.variant, Stats.fmt(m.difference), Stats.interval(m.interval), Stats.fmt(m.pValue), m.answer]) }
            body += "</table>"
        }
        body += "</section>"

        body += "<section><h2>Correlations of AP with PD</h2><table><tr><th>metric</th><th>target</th><th>scope</th><th>method</th><th>value</th><th>95 % interval</th><th>interval by</th><th>points</th></tr>"
        for r in correlations where !r.scope.hasPrefix("epochs:") {
            body += row([r.metric, r.target, r.scope, r.method.rawValue, Stats.fmt(r.value), Stats.interval(r.interval), r.interval.method, "\(r.points)"])
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
            .chart .warning{fill:#a00}.held td:nth-child(8){background:#cde8d5}.contradicted td:nth-child(8){background:#f6d2c8}
            .inconclusive td:nth-child(8){background:#f3ecc9}.no-data td:nth-child(8){background:#eee}@media print{figure{break-inside:avoid}}
            """
        let html = "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"utf-8\"/><title>apsweep report</title><style>\(css)</style></head><body>\(body)</body></html>\n"
        return Page(page: html, figures: figures, omitted: omitted)
    }

    static func row(_ cells: [String]) -> String { "<tr>" + cells.map { "<td>\(xmlEscape($0))</td>" }.joined() + "</tr>" }
}
