@testable import Analysis
import Foundation
import Journal
import Records
import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Aggregation on a hand-made journal whose numbers are chosen so every figure can be checked by hand.
final class AggregationTests: XCTestCase {
    static let sweep = """
        models: [{architecture: lenet5}]
        trials: 2
        prune: {methods: [lowest, random, highest], sparsities: [0.2, 0.5, 0.8], fine_tune: {epochs: 3}}
        """
    static let rank = ["lowest": 0.0, "random": 1.0, "highest": 2.0]

    /// Two trials × lowest/random/highest × sparsities 0.2/0.5/0.8, 3 fine-tuning epochs. AP2 at
    /// epoch e of (method m, sparsity p, trial t) is (1 + m)·p·10 + e + t/10; AP3 = AP2/2 (σ² = 1);
    /// PD_test = AP2/10 — so every AP–PD correlation is exactly 1.
    func makeJournal(finishedTrials: UInt64 = 2) throws -> JournalBuilder {
        let b = try JournalBuilder(Self.sweep)
        try b.fill { method, p, seed in
            guard seed <= finishedTrials else { return nil }
            return (0...3).map { e in
                let ap2 = (1 + Self.rank[method]!) * p * 10 + Double(e) + Double(seed) / 10
                return JournalBuilder.record(epoch: e, ap2: ap2, pdTest: ap2 / 10)
            }
        }
        return b
    }

    func testMeansCorrelationsAndClaimsOnAHandMadeJournal() throws {
        let b = try makeJournal()
        let a = try Aggregation(journal: b.journal, resamples: 1000)
        XCTAssertEqual(a.configurations.count, 9)
        XCTAssertEqual(a.finalEpoch, 3)
        let c = Aggregation.Configuration(model: "lenet5", method: "random", sparsity: 0.5, scope: "last")
        let m = try XCTUnwrap(a.moments(c, "ap2").first { $0.epoch == 2 }?.1)
        // Trials 1 and 2: 2·0.5·10 + 2 + 0.1 = 12.1 and 12.2 → mean 12.15, sd √0.005.
        XCTAssertEqual(m.mean, 12.15, accuracy: 1e-12)
        XCTAssertEqual(m.std, 0.005.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(m.count, 2)
        let correlations = a.correlations()
        for r in correlations where r.target == "pd_test" {
            XCTAssertEqual(r.value, 1, accuracy: 1e-12, "\(r.metric) ~ \(r.target) \(r.method) \(r.scope)")
        }
        // Signed PD (baseline 90 % − test accuracy, here PD up to rounding: 90 − (90 − x) is not
        // always x, which may break a tie) correlates the same way.
        for r in correlations where r.target == "pd_test_signed" {
            XCTAssertGreaterThan(r.value, r.method == .pearson ? 1 - 1e-9 : 0.99, "\(r.scope) \(r.method)")
        }
        let pooled = try XCTUnwrap(correlations.first { $0.scope == "pooled" && $0.metric == "ap2" && $0.target == "pd_test" && $0.method == .kendall })
        XCTAssertEqual(pooled.points, 9 * 2 * 4)
        let claims = a.claims()
        XCTAssertEqual(claims.map(\.verdict), [.held, .held, .held, .held, .held, .held, .inconclusive],
                       claims.map { "\($0.number): \($0.verdict.rawValue) p=\($0.pValue) holm=\($0.adjustedP) \($0.evidence)" }.joined(separator: "\n"))
        XCTAssertEqual(claims[0].effect, 1, "every configuration has ρ > 0")
        XCTAssertEqual(claims[2].effect, 1, "every ordering holds")
        // summary.json carries the same numbers as the claims.
        let data = try ResultsExport.summaryJSON(a, claims: claims, correlations: correlations, comparisons: a.metricComparisons(), journal: b.journal)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(data)) as? [String: Any])
        let rows = try XCTUnwrap(json["claims"] as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["verdict"] as? String }, claims.map(\.verdict.rawValue))
        XCTAssertEqual(rows.map { $0["evidence"] as? String }, claims.map(\.evidence))
        // AP3 = AP2/2 ranks configurations identically: the open question's difference is 0.
        let comparison = try XCTUnwrap(a.metricComparisons().first)
        XCTAssertEqual(comparison.difference, 0)
        XCTAssertEqual(comparison.answer, "identical (same ranking of configurations)")
    }

    /// A sampled pass (live status on a huge journal) reads every baseline and exactly every
    /// k-th prune task in plan order, counts all of them, and keeps each sampled task's numbers
    /// (its signed PD uses its own baseline's accuracy) as the full pass has them.
    func testASampledPassReadsEveryKthPruneTaskAndCountsAll() throws {
        let b = try makeJournal()
        let full = try Aggregation(journal: b.journal, resamples: 50)
        let sampled = try Aggregation(journal: b.journal, resamples: 50, sampleEvery: 4)
        let prunes = b.plan.entries.filter { $0.task.kind == .prune }.map(\.id)
        XCTAssertEqual(prunes.count, 18)
        let expected = Set(prunes.enumerated().filter { $0.offset % 4 == 0 }.map(\.element))
        let read = Set(sampled.trials.flatMap { $0.map(\.task) })
        XCTAssertEqual(read, expected, "the 1st, 5th, 9th, … prune task")
        XCTAssertEqual(sampled.tasksTotal, full.tasksTotal)
        XCTAssertEqual(sampled.tasksDone, full.tasksDone)
        XCTAssertEqual(sampled.baselines.count, 2)
        XCTAssertEqual(sampled.baselines.map(\.test), full.baselines.map(\.test))
        for (c, config) in sampled.configurations.enumerated() {
            let f = try XCTUnwrap(full.configurations.firstIndex(of: config))
            for t in sampled.trials[c] {
                let same = try XCTUnwrap(full.trials[f].first { $0.task == t.task })
                XCTAssertEqual(t.epochs, same.epochs)
                XCTAssertEqual(sampled.correlated, full.correlated)
                for e in t.epochs.indices {
                    let mine = (0..<t.values[e].count).map { t.values[e][$0] }
                    let theirs = (0..<same.values[e].count).map { same.values[e][$0] }
                    XCTAssertEqual(mine, theirs, "\(config) \(t.task) epoch \(t.epochs[e])")
                    // Signed PD = the baseline's test accuracy (90) − the record's.
                    XCTAssert(mine[sampled.correlated.firstIndex(of: "pd_test_signed")!].isFinite)
                }
            }
        }
    }

    /// One family's tables out of a sweep over two are those of a sweep over that family alone:
    /// the same configurations, counts and claims (`apsweep report --model`).
    func testOneFamilysReportOutOfASweepOverTwo() throws {
        func filled(_ yaml: String) throws -> JournalBuilder {
            let b = try JournalBuilder(yaml)
            try b.fill { method, p, seed in
                (0...3).map { e in
                    let ap2 = (1 + Self.rank[method]!) * p * 10 + Double(e) + Double(seed) / 10
                    return JournalBuilder.record(epoch: e, ap2: ap2, pdTest: ap2 / 10 + (e == 3 && method == "random" ? 5 : 0))
                }
            }
            return b
        }
        let two = try filled(Self.sweep.replacingOccurrences(of: "models: [{architecture: lenet5}]", with: "models: [{architecture: lenet5}, {architecture: mlp}]"))
        let one = try filled(Self.sweep)
        let pooled = try Aggregation(journal: two.journal, resamples: 200)
        let family = try Aggregation(journal: two.journal, resamples: 200, only: TaskFilter(models: ["lenet5"]))
        let alone = try Aggregation(journal: one.journal, resamples: 200)
        XCTAssertEqual(pooled.configurations.count, 18)
        XCTAssertEqual(family.configurations, alone.configurations)
        XCTAssertEqual([family.tasksTotal, family.tasksDone], [alone.tasksTotal, alone.tasksDone])
        XCTAssertEqual(family.baselines.map(\.model), ["lenet5", "lenet5"])
        XCTAssertEqual(family.claims().map(\.effect.description), alone.claims().map(\.effect.description))
        XCTAssertEqual(family.claims().map(\.verdict), alone.claims().map(\.verdict))
        XCTAssertEqual(try Aggregation(journal: two.journal, only: TaskFilter(models: ["vit"])).tasksTotal, 0)
        // One method: its configurations, with every baseline (they have no method).
        let lowest = try Aggregation(journal: two.journal, resamples: 100, only: TaskFilter(models: ["mlp"], methods: ["lowest"]))
        XCTAssertEqual(lowest.configurations.map(\.method), ["lowest", "lowest", "lowest"])
        XCTAssertEqual(lowest.baselines.count, 2)
        XCTAssertEqual(lowest.tasksTotal, 2 + 3 * 2)
        let dir = NSTemporaryDirectory() + "apsweep-agg-family-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ResultsExport.write(journal: two.journal, directory: dir, resamples: 100, only: TaskFilter(models: ["mlp"]))
        let rows = try String(contentsOfFile: dir + "/results.csv", encoding: .utf8).split(separator: "\n").dropFirst()
        XCTAssertEqual(rows.count, 18 * 4, "2 trials × 9 configurations × 4 epochs of mlp only")
        XCTAssert(rows.allSatisfy { $0.split(separator: ",")[3] == "mlp" })
        let empty = dir + "/none"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        XCTAssertThrowsError(try ResultsExport.write(journal: two.journal, directory: empty, resamples: 100, only: TaskFilter(models: ["vit"]))) {
            XCTAssert("\($0)".contains("no task of model vit"), "\($0)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: empty), [], "nothing written")
    }

    /// `--ap3`: the claims are tested with the AP3 variant asked for. Here the second variant
    /// ranks the configurations against PD, so claim 4 turns from held to contradicted; a variant
    /// the journal lacks is named with those it holds.
    func testClaimsUseTheAP3VariantAskedFor() throws {
        let b = try JournalBuilder(Self.sweep)
        try b.fill { method, p, seed in
            (0...3).map { e in
                let ap2 = (1 + Self.rank[method]!) * p * 10 + Double(e) + Double(seed) / 10
                var r = JournalBuilder.record(epoch: e, ap2: ap2, pdTest: ap2 / 10)
                r.totalMetrics = MetricValues(key: "total", values: r.totalMetrics!.values + [("ap3[gaussian-diag:estimate=row]", 100 - ap2)])
                return r
            }
        }
        let first = try Aggregation(journal: b.journal, resamples: 200)
        let diag = try Aggregation(journal: b.journal, resamples: 200, ap3: "ap3[gaussian-diag:estimate=row]")
        XCTAssertEqual(first.ap3, "ap3[gaussian:sigma2=1]")
        XCTAssertEqual(diag.ap3, "ap3[gaussian-diag:estimate=row]")
        XCTAssertEqual(first.claims()[3].verdict, .held)
        XCTAssertEqual(diag.claims()[3].verdict, .contradicted)
        XCTAssertEqual(diag.claims()[3].effect, -1, accuracy: 1e-12)
        let dir = NSTemporaryDirectory() + "apsweep-agg-ap3-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertThrowsError(try ResultsExport.write(journal: b.journal, directory: dir, resamples: 100, ap3: "ap3[student-t:df=4]")) {
            XCTAssert("\($0)".contains("it holds ap3[gaussian:sigma2=1], ap3[gaussian-diag:estimate=row]"), "\($0)")
        }
        let w = try ResultsExport.write(journal: b.journal, directory: dir, resamples: 100, ap3: "ap3[gaussian-diag:estimate=row]")
        XCTAssert(ResultsExport.table(w).contains("claims of the paper (AP3 = ap3[gaussian-diag:estimate=row]"))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/summary.json"))) as! [String: Any]
        XCTAssertEqual(json["claims_ap3"] as? String, "ap3[gaussian-diag:estimate=row]")
    }

    /// A partly finished journal reports only what exists: one trial, not enough for trends.
    func testPartialJournalReportsOnlyWhatExists() throws {
        let b = try makeJournal(finishedTrials: 1)
        let a = try Aggregation(journal: b.journal, resamples: 100)
        XCTAssertEqual(a.tasksDone, 2 + 9)
        XCTAssertEqual(a.tasksTotal, b.plan.entries.count)
        let c = Aggregation.Configuration(model: "lenet5", method: "lowest", sparsity: 0.2, scope: "last")
        XCTAssertEqual(a.moments(c, "ap2").first?.1.count, 1)
        XCTAssert(a.moments(c, "ap2").first!.1.std.isNaN, "one trial has no spread")
        let dir = NSTemporaryDirectory() + "apsweep-agg-out-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ResultsExport.write(journal: b.journal, directory: dir, resamples: 100)
        let csv = try String(contentsOfFile: dir + "/results.csv", encoding: .utf8)
        XCTAssertEqual(csv.split(separator: "\n").count, 1 + 9 * 4, "header + 9 tasks × 4 epochs")
        XCTAssert(csv.split(separator: "\n")[0].contains("ap3[gaussian:sigma2=1]"))
        XCTAssert(csv.split(separator: "\n")[0].contains("learning_rate"), "the record's fields by their table names")
        // A record stored under an epoch the task cannot have (4294967293: a hostile or damaged
        // journal) is named as damaged; nothing is sized from it.
        let open = b.plan.entries.indices.first { b.plan.entries[$0].task.kind == .prune && b.plan.entries[$0].task.seed == 2 }!
        try b.journal.apply([.records(task: open, records: [JournalBuilder.record(epoch: 50, ap2: 1, pdTest: 1),
                                                            JournalBuilder.record(epoch: 4_294_967_293, ap2: 1, pdTest: 1)], replace: false)])
        let withHostile = try Aggregation(journal: b.journal, resamples: 100)
        XCTAssertEqual(withHostile.damaged.map(\.epoch), [50, 4_294_967_293])
        XCTAssert(withHostile.damaged.first?.reason.contains("outside the task's epochs (0…3)") == true, "\(withHostile.damaged)")
        XCTAssert(withHostile.damaged.last?.reason.contains("4294967293") == true, "\(withHostile.damaged)")
        // A report on part of the sweep still names the damage of tasks it leaves out.
        let method = b.plan.entries[open].task.prune!.method.rawValue
        let other = try Aggregation(journal: b.journal, resamples: 100, only: TaskFilter(methods: Set(["lowest", "random", "highest"]).subtracting([method])))
        XCTAssertEqual(other.damaged.map(\.epoch), [50, 4_294_967_293])
        // An empty journal: every claim lacks data, nothing crashes.
        let empty = try JournalBuilder(Self.sweep)
        XCTAssert(try Aggregation(journal: empty.journal).claims().allSatisfy { $0.verdict == .notEnoughData })
    }

    /// The same journal gives the same bytes: results.csv and summary.json identical, report.html
    /// identical but for its generation time.
    func testReportsOfOneJournalAreIdentical() throws {
        let b = try makeJournal()
        var outputs: [[String: [UInt8]]] = []
        for run in 0..<2 {
            let dir = NSTemporaryDirectory() + "apsweep-agg-repro-\(getpid())-\(run)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try ResultsExport.write(journal: b.journal, directory: dir, resamples: 300)
            var files: [String: [UInt8]] = [:]
            for name in ["results.csv", "summary.json", "report.html"] {
                var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)))
                if name == "report.html" {
                    let text = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: #"<td>report generated</td><td>[^<]*</td>"#, with: "", options: .regularExpression)
                    bytes = Array(text.utf8)
                }
                files[name] = bytes
            }
            outputs.append(files)
        }
        for name in ["results.csv", "summary.json", "report.html"] { XCTAssertEqual(outputs[0][name], outputs[1][name], name) }
    }

    /// report.html: well-formed, every figure with the right series and points, the claims table
    /// saying exactly what summary.json says, and every scatter point inside its frame.
    func testHTMLReportOnAHandMadeJournal() throws {
        let b = try makeJournal()
        let a = try Aggregation(journal: b.journal, resamples: 200)
        let claims = a.claims(), correlations = a.correlations()
        let page = try HTMLReport.render(a, claims: claims, correlations: correlations, comparisons: a.metricComparisons(), journal: b.journal)
        XCTAssertTrue(page.omitted.isEmpty, "\(page.omitted)")
        let doc = try XMLDocument(xmlString: page.page)
        let svgs = try doc.nodes(forXPath: "//*[local-name()='svg']").compactMap { $0 as? XMLElement }
        // 3 method panels + 3 sparsity panels (6 series: AP and PD per line) + 2 scatters.
        XCTAssertEqual(svgs.count, 3 + 3 + 2)
        XCTAssertEqual(page.figures.count, svgs.count, "every figure can be saved on its own")
        for svg in svgs.prefix(6) {
            XCTAssertEqual(svg.attributes?.first(where: { $0.name == "data-series" })?.stringValue, "6")
            let counts = try svg.nodes(forXPath: ".//*[@class='series']").compactMap { ($0 as? XMLElement)?.attributes?.first(where: { $0.name == "data-points" })?.stringValue }
            XCTAssertEqual(counts, Array(repeating: "4", count: 6), "epochs 0–3 in every series")
        }
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(ResultsExport.summaryJSON(a, claims: claims, correlations: correlations,
                                                                                                  comparisons: [], journal: b.journal))) as? [String: Any])
        let rows = try doc.nodes(forXPath: "//*[local-name()='table'][@class='claims']/*[local-name()='tr']").dropFirst()
        let expected = try XCTUnwrap(summary["claims"] as? [[String: Any]])
        XCTAssertEqual(rows.count, expected.count)
        for (row, claim) in zip(rows, expected) {
            let cells = try row.nodes(forXPath: "./*[local-name()='td']").map { $0.stringValue ?? "" }
            XCTAssertEqual(cells[7], claim["verdict"] as? String)
            XCTAssertEqual(cells[8], claim["evidence"] as? String)
        }
        XCTAssertFalse(page.page.contains("<script"), "no scripts")
        XCTAssertFalse(page.page.contains("<link"), "no external stylesheets")
    }
}
