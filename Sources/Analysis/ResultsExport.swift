import Experiment
import Foundation
import Journal
import Records

/// A file that cannot be written, or a report that cannot be made, naming it.
public struct ExportError: Error, CustomStringConvertible {
    public let description: String
}

/// The files a sweep leaves for people and tools: results.csv (one row per task × epoch, tidy,
/// loadable by pandas), summary.json (configuration means, correlations, claims with verdicts)
/// and report.html. Output depends only on the journal's content: the same journal gives the same
/// bytes (report.html also states when it was generated).
public enum ResultsExport {
    /// Writes results.csv, summary.json and report.html into `directory` and returns the
    /// aggregation (for the terminal table). Works on any journal, finished or not.
    /// What `write` computed, for the terminal table.
    public struct Written {
        public var aggregation: Aggregation
        public var claims: [ClaimTest]
        public var correlations: [CorrelationResult]
        /// AP2 and the main AP3 against PD_test, pooled and across configurations at the final epoch.
        public var headline: [CorrelationResult] {
            let metrics = ["ap2"] + (aggregation.ap3.map { [$0] } ?? [])
            return correlations.filter { metrics.contains($0.metric) && $0.target == "pd_test" && $0.method != .pearson
                && ($0.scope == "pooled" || $0.scope == "configurations at final epoch") }
        }
    }

    /// `only`, when given, writes everything for the tasks it accepts only (see `Aggregation`);
    /// `ap3` is the AP3 variant the claims use. A filter no task passes, or a variant the journal
    /// does not hold, is an error naming what it holds, before any file is written.
    @discardableResult
    public static func write(journal: SweepJournal, directory: String, resamples: Int = 1000, figures: String? = nil, only: TaskFilter? = nil,
                             ap3: String? = nil) throws -> Written {
        let a = try Aggregation(journal: journal, resamples: resamples, only: only, ap3: ap3)
        if let ap3, !a.apMetrics.contains(ap3) {
            let held = a.apMetrics.filter { $0.hasPrefix("ap3[") }
            throw ExportError(description: "--ap3 \(ap3): not in this journal; it holds \(held.isEmpty ? "no AP3" : held.joined(separator: ", "))")
        }
        if let only, !only.isEmpty, a.tasksTotal == 0 {
            throw ExportError(description: "the journal has no task of \(only.description); `apsweep plan` on its sweep file lists them")
        }
        try writeCSV(journal: journal, to: (directory as NSString).appendingPathComponent("results.csv"), only: only)
        let claims = a.claims(), correlations = a.correlations(), comparisons = a.metricComparisons()
        try atomicWrite(try summaryJSON(a, claims: claims, correlations: correlations, comparisons: comparisons, journal: journal),
                        to: (directory as NSString).appendingPathComponent("summary.json"))
        let html = try HTMLReport.render(a, claims: claims, correlations: correlations, comparisons: comparisons, journal: journal)
        try atomicWrite(Array(html.page.utf8), to: (directory as NSString).appendingPathComponent("report.html"))
        if let figures {
            try FileManager.default.createDirectory(atPath: figures, withIntermediateDirectories: true)
            for (name, svg) in html.figures {
                try atomicWrite(Array(("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n" + svg + "\n").utf8), to: (figures as NSString).appendingPathComponent(name + ".svg"))
            }
        }
        return Written(aggregation: a, claims: claims, correlations: correlations)
    }

    static func clean(_ v: Double) -> Any { v.isFinite ? v : NSNull() }

    public static func summaryJSON(_ a: Aggregation, claims: [ClaimTest], correlations: [CorrelationResult], comparisons: [MetricComparison],
                                   journal: SweepJournal) throws -> [UInt8] {
        let configs: [[String: Any]] = a.configurations.map { c in
            var epochs: [Int: [String: Any]] = [:]
            for q in a.quantities {
                for (e, m) in a.moments(c, q) where m.count > 0 {
                    epochs[e, default: ["epoch": e]][q] = ["mean": clean(m.mean), "std": clean(m.std), "n": m.count]
                }
            }
            return ["model": c.model, "method": c.method, "sparsity": c.sparsity, "scope": c.scope,
                    "epochs": epochs.keys.sorted().map { epochs[$0]! }]
        }
        func interval(_ i: Interval) -> [String: Any] { ["low": clean(i.low), "high": clean(i.high), "method": i.method] }
        let summary: [String: Any] = [
            "sweep_id": try journal.meta("sweep_id") ?? "",
            "tasks": ["done": a.tasksDone, "total": a.tasksTotal, "failed": a.failed.count],
            "failed_tasks": a.failed.map { ["task": $0.id, "label": $0.label, "error": $0.error] },
            "damaged_records": a.damaged.map { ["task": $0.taskID, "epoch": $0.epoch, "reason": $0.reason] },
            "final_epoch": a.finalEpoch.map { $0 as Any } ?? NSNull(),
            "baselines": a.baselines.map { b -> [String: Any] in
                var d: [String: Any] = ["model": b.model, "seed": b.seed, "train_accuracy": clean(b.train), "test_accuracy": clean(b.test)]
                if let (x, y) = b.lastTwoTest { d["test_accuracy_last_two_epochs"] = [clean(x), clean(y)] }
                return d
            },
            "configurations": configs,
            "correlations": correlations.map {
                ["metric": $0.metric, "target": $0.target, "method": $0.method.rawValue, "scope": $0.scope, "value": clean($0.value),
                 "ci95": interval($0.interval), "points": $0.points]
            },
            "claims_ap3": a.ap3.map { $0 as Any } ?? NSNull(),
            "only": a.only.map { $0.description as Any } ?? NSNull(),
            "claims": claims.map {
                ["claim": $0.number, "statement": $0.statement, "hypothesis": $0.hypothesis, "test": $0.test, "effect": clean($0.effect),
                 "ci95": interval($0.interval), "null": clean($0.null), "p": clean($0.pValue), "p_holm": clean($0.adjustedP),
                 "verdict": $0.verdict.rawValue, "evidence": $0.evidence, "target": $0.target]
            },
            "claims_correction": "Holm over the seven claims, family-wise α = \(Aggregation.alpha)",
            "ap2_vs_ap3": comparisons.map {
                ["ap3": $0.variant, "difference_abs_spearman": clean($0.difference), "ci95": interval($0.interval), "p": clean($0.pValue),
                 "answer": $0.answer, "configurations": $0.configurations]
            },
            "resamples": a.resamples,
        ]
        return Array(try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys]))
    }

    /// The terminal summary: final-epoch means per configuration, the headline correlations, the
    /// claims with interval and verdict, failures and damaged records.
    public static func table(_ w: Written) -> String {
        let a = w.aggregation, claims = w.claims, headline = w.headline
        var out = ""
        if let final = a.finalEpoch {
            let ap3 = a.ap3 ?? "ap2"
            out += "configuration means at epoch \(final) (over trials):\n"
            out += "  " + ["model", "method", "sparsity", "AP2", "AP3", "PD_test", "test acc", "n"].map { $0.padding(toLength: 12, withPad: " ", startingAt: 0) }.joined() + "\n"
            for c in a.configurations {
                func m(_ q: String) -> String { a.mean(c, q, epoch: final).map { String(format: "%.4g", $0) } ?? "–" }
                let n = a.moments(c, "pd_test").first { $0.epoch == final }?.1.count ?? 0
                out += "  " + [c.model, c.method, "\(c.sparsity)", m("ap2"), m(ap3), m("pd_test"), m("test_accuracy"), "\(n)"]
                    .map { String($0.prefix(11)).padding(toLength: 12, withPad: " ", startingAt: 0) }.joined() + "\n"
            }
            out += "correlation with PD_test (\(ap3) is AP3), 95 % intervals:\n"
            for r in headline {
                out += "  " + String(r.metric.prefix(28)).padding(toLength: 29, withPad: " ", startingAt: 0)
                    + r.scope.padding(toLength: 13, withPad: " ", startingAt: 0) + r.method.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)
                    + String(format: "%7.3f  ", r.value) + Stats.interval(r.interval) + "  n=\(r.points)\n"
            }
        } else {
            out += "no prune records yet\n"
        }
        out += "claims of the paper (AP3 = \(a.ap3 ?? "none"); verdicts after Holm's correction of the seven tests, α = 0.05):\n"
        for c in claims {
            out += "  \(c.number). \(c.verdict.rawValue.uppercased()) — \(c.statement)\n"
            if !c.effect.isNaN {
                out += "     effect \(Stats.fmt(c.effect)) \(Stats.interval(c.interval)) vs \(Stats.fmt(c.null)); p \(Stats.fmt(c.pValue)), Holm \(Stats.fmt(c.adjustedP))\n"
            }
            out += "     \(c.evidence)\n"
        }
        if !a.failed.isEmpty {
            out += "\(a.failed.count) task(s) FAILED:\n"
            for f in a.failed.prefix(5) { out += "  \(f.label) (\(f.id)): \(f.error.prefix(200))\n" }
            if a.failed.count > 5 { out += "  … all in summary.json (failed_tasks)\n" }
        }
        if !a.damaged.isEmpty {
            out += "\(a.damaged.count) stored record(s) are damaged and were left out:\n"
            for d in a.damaged.prefix(5) { out += "  \(d)\n" }
        }
        return out
    }

    /// results.csv, streamed: the task's configuration in its own columns, every scalar of the
    /// record, then every whole-network metric (in first-seen order).
    public static func writeCSV(journal: SweepJournal, to path: String, only: TaskFilter? = nil) throws {
        let tasks = try journal.tasks()
        let specs = tasks.map { t in (try? SweepTask.decode(t.task.spec)).flatMap { only?.accepts($0) ?? true ? $0 : nil } }
        var metricColumns: [String] = []
        var seen = Set<String>()
        try journal.forEachRecord({ _, r in
            for (name, _) in r.totalMetrics?.values ?? [] where seen.insert(name).inserted { metricColumns.append(name) }
        }, damaged: { _ in })
        let writer = try LineWriter(path: path)
        try writer.line((["task_id", "kind", "state", "model", "width", "dataset", "shard", "seed", "method", "sparsity", "scope", "mode", "epoch"]
            + EpochRecord.fields.map(\.name) + metricColumns).map(quote).joined(separator: ","))
        try journal.forEachRecord({ i, r in
            let t = tasks[i]
            guard let spec = specs[i] else { return }
            var values: [String: Double] = [:]
            for (name, v) in r.totalMetrics?.values ?? [] { values[name] = v }
            let fixed: [String] = [t.task.id, t.task.kind.rawValue, t.row.state.rawValue, spec.model.name, "\(spec.model.width)", spec.dataset,
                                   "\(spec.shardIndex)/\(spec.shardCount)", "\(spec.seed)", spec.prune?.method.rawValue ?? "",
                                   spec.prune.map { "\($0.sparsity)" } ?? "", spec.prune?.scope ?? "", spec.prune?.mode.rawValue ?? "", "\(r.epoch)"]
            try writer.line((fixed.map(quote) + EpochRecord.fields.map { number(r[keyPath: $0.keyPath]) } + metricColumns.map { values[$0].map(number) ?? "" })
                .joined(separator: ","))
        }, damaged: { _ in })
        try writer.finish()
    }

    static func number(_ v: Double) -> String { v.isFinite ? "\(v)" : (v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf")) }
    static func quote(_ s: String) -> String { s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }

    /// Writes `bytes` to a temporary file next to `path`, then renames it into place.
    static func atomicWrite(_ bytes: [UInt8], to path: String) throws {
        let writer = try LineWriter(path: path)
        try writer.write(bytes)
        try writer.finish()
    }
}

/// Buffered writes to `<path>.tmp`, renamed to `path` by `finish()`; errors (a full disk) name
/// the file, and a failed write leaves the old file in place.
final class LineWriter {
    let path: String, temporary: String
    var fd: Int32
    var buffer: [UInt8] = []

    init(path: String) throws {
        self.path = path
        temporary = path + ".tmp-\(getpid())"
        fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ExportError(description: "\(path): cannot write: \(String(cString: strerror(errno)))") }
        buffer.reserveCapacity(1 << 20)
    }

    func line(_ s: String) throws {
        buffer.append(contentsOf: s.utf8)
        buffer.append(10)
        if buffer.count >= 1 << 20 { try flush() }
    }

    func write(_ bytes: [UInt8]) throws {
        buffer.append(contentsOf: bytes)
        try flush()
    }

    func flush() throws {
        var done = 0
        while done < buffer.count {
            let n = buffer.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + done, buffer.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                let why = String(cString: strerror(errno))
                close(fd); fd = -1
                unlink(temporary)
                throw ExportError(description: "\(path): cannot write: \(why)\(errno == ENOSPC ? "; free space and run apsweep report again" : "")")
            }
            done += n
        }
        buffer.removeAll(keepingCapacity: true)
    }

    func finish() throws {
        try flush()
        close(fd)
        fd = -1
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw ExportError(description: "\(path): cannot move the finished file into place: \(String(cString: strerror(errno)))")
        }
    }

    deinit { if fd >= 0 { close(fd); unlink(temporary) } }
}
