@testable import Coordinator
import Compression
import Experiment
import Foundation
import NeuralCore
import Wire
import XCTest

/// Aggregation on a hand-made journal whose numbers are chosen so every figure can be checked by hand.
final class AggregationTests: XCTestCase {
    var path: String!
    override func setUp() { path = NSTemporaryDirectory() + "apsweep-agg-\(getpid())-\(UUID().uuidString.prefix(6)).db" }
    override func tearDown() { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }

    /// Two trials × lowest/random/highest × sparsities 0.2/0.5/0.8, 3 fine-tuning epochs. AP2 at
    /// epoch e of (method m, sparsity p, trial t) is (1 + m)·p·10 + e + t/10; AP3 = AP2/2 (σ² = 1);
    /// PD_test = AP2/10 — so every AP–PD correlation is exactly 1 and every claim holds.
    func makeJournal(finishedTrials: Int = 2, epochs: Int = 3) throws -> (Journal, Plan) {
        let yaml = """
            models: [{architecture: lenet5}]
            trials: 2
            prune: {methods: [lowest, random, highest], sparsities: [0.2, 0.5, 0.8], fine_tune: {epochs: 3}}
            """
        let plan = try Plan(try SweepFile.parse(yaml))
        let journal = try Journal(path: path)
        try journal.storePlan(plan, sweepText: yaml)
        let methods = ["lowest": 0.0, "random": 1.0, "highest": 2.0]
        for e in plan.entries {
            if e.task.kind == .baseline {
                try journal.complete(e.id, records: [], checkpoint: "c", baseline: BaselineSummary(trainAccuracy: 95, testAccuracy: 90), worker: "w", attempt: 1)
                continue
            }
            let p = e.task.prune!
            let trial = Double(e.task.seed)
            guard Int(e.task.seed) <= finishedTrials else { continue }
            let records: [WireEpochRecord] = (0...epochs).map { epoch in
                let ap2 = (1 + methods[p.method.rawValue]!) * p.sparsity * 10 + Double(epoch) + trial / 10
                var r = WireEpochRecord()
                r.epoch = UInt32(epoch)
                r.pdTest = ap2 / 10; r.pdTrain = ap2 / 20; r.testAccuracy = 90 - ap2 / 10
                r.total = LayerMetricValues(layer: "total", values: [MetricValue("ap2", ap2), MetricValue("ap3[gaussian:sigma2=1]", ap2 / 2)])
                return r
            }
            try journal.complete(e.id, records: records, checkpoint: nil, baseline: nil, worker: "w", attempt: 1)
        }
        return (journal, plan)
    }

    func testMeansCorrelationsAndClaimsOnAHandMadeJournal() throws {
        let (journal, _) = try makeJournal()
        let a = try Aggregation(journal: journal, resamples: 200)
        XCTAssertEqual(a.configurations.count, 9)
        XCTAssertEqual(a.finalEpoch, 3)
        let c = Aggregation.Configuration(model: "lenet5", method: "random", sparsity: 0.5, scope: "last")
        let m = try XCTUnwrap(a.moments(c, "ap2").first { $0.epoch == 2 }?.1)
        // Trials 1 and 2: 2·0.5·10 + 2 + 0.1 = 12.1 and 12.2 → mean 12.15, sd √0.005.
        XCTAssertEqual(m.mean, 12.15, accuracy: 1e-12)
        XCTAssertEqual(m.std, 0.005.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(m.count, 2)
        for r in a.correlations() where r.metric.hasPrefix("ap") {
            XCTAssertEqual(r.value, 1, accuracy: 1e-12, "\(r.metric) ~ \(r.target) \(r.method) \(r.scope)")
        }
        let pooled = try XCTUnwrap(a.correlations().first { $0.scope == "pooled" && $0.metric == "ap2" && $0.target == "pd_test" && $0.method == .kendall })
        XCTAssertEqual(pooled.points, 9 * 2 * 4)
        for claim in a.claims() { XCTAssertEqual(claim.verdict, claim.number == 7 ? .notHeld : .held, "claim \(claim.number): \(claim.evidence)") }
        // summary.json carries the same numbers as the claims table.
        let data = try ResultsExport.summaryJSON(a, journal: journal)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let claims = try XCTUnwrap(json["claims"] as? [[String: Any]])
        XCTAssertEqual(claims.map { $0["verdict"] as? String }, a.claims().map(\.verdict.rawValue))
        XCTAssertEqual(claims.map { $0["evidence"] as? String }, a.claims().map(\.evidence))
    }

    /// A partly finished journal reports only what exists: one trial, not enough for trends.
    func testPartialJournalReportsOnlyWhatExists() throws {
        let (journal, plan) = try makeJournal(finishedTrials: 1)
        let a = try Aggregation(journal: journal, resamples: 100)
        XCTAssertEqual(a.tasksDone, 2 + 9)
        XCTAssertEqual(a.tasksTotal, plan.entries.count)
        let c = Aggregation.Configuration(model: "lenet5", method: "lowest", sparsity: 0.2, scope: "last")
        XCTAssertEqual(a.moments(c, "ap2").first?.1.count, 1)
        XCTAssert(a.moments(c, "ap2").first!.1.std.isNaN, "one trial has no spread")
        let dir = NSTemporaryDirectory() + "apsweep-agg-out-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ResultsExport.write(journal: journal, directory: dir)
        let csv = try String(contentsOfFile: dir + "/results.csv", encoding: .utf8)
        XCTAssertEqual(csv.split(separator: "\n").count, 1 + 9 * 4, "header + 9 tasks × 4 epochs")
        XCTAssert(csv.split(separator: "\n")[0].contains("ap3[gaussian:sigma2=1]"))
        // An empty journal: every claim lacks data, nothing crashes.
        let emptyPath = path + "-empty"
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: emptyPath + s) } }
        let empty = try Journal(path: emptyPath)
        XCTAssert(try Aggregation(journal: empty).claims().allSatisfy { $0.verdict == .notEnoughData })
    }
}

#if canImport(FoundationXML)
import FoundationXML
#endif

extension AggregationTests {
    /// report.html from a hand-made journal: well-formed, every figure with the right series and
    /// points, and the claims table saying exactly what summary.json says.
    func testHTMLReportOnAHandMadeJournal() throws {
        let (journal, _) = try makeJournal()
        let a = try Aggregation(journal: journal, resamples: 100)
        let (html, omitted) = try HTMLReport.render(a, journal: journal)
        XCTAssertTrue(omitted.isEmpty, "\(omitted)")
        let doc = try XMLDocument(xmlString: html)
        let svgs = try doc.nodes(forXPath: "//*[local-name()='svg']").compactMap { $0 as? XMLElement }
        // 3 method panels + 3 sparsity panels (6 series: AP and PD per line) + 2 scatters.
        XCTAssertEqual(svgs.count, 3 + 3 + 2)
        for svg in svgs.prefix(6) {
            XCTAssertEqual(svg.attributes?.first(where: { $0.name == "data-series" })?.stringValue, "6")
            let counts = try svg.nodes(forXPath: ".//*[@class='series']").compactMap { ($0 as? XMLElement)?.attributes?.first(where: { $0.name == "data-points" })?.stringValue }
            XCTAssertEqual(counts, Array(repeating: "4", count: 6), "epochs 0–3 in every series")
        }
        for svg in svgs.suffix(2) {
            let counts = try svg.nodes(forXPath: ".//*[@class='series']").compactMap { ($0 as? XMLElement)?.attributes?.first(where: { $0.name == "data-points" })?.stringValue }
            XCTAssertEqual(counts, ["3", "3", "3"], "3 sparsities per method")
        }
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: ResultsExport.summaryJSON(a, journal: journal)) as? [String: Any])
        let claims = try XCTUnwrap(summary["claims"] as? [[String: Any]])
        let rows = try doc.nodes(forXPath: "//*[local-name()='table'][@class='claims']/*[local-name()='tr']").dropFirst()
        XCTAssertEqual(rows.count, claims.count)
        for (row, claim) in zip(rows, claims) {
            let cells = try row.nodes(forXPath: "./*[local-name()='td']").map { $0.stringValue ?? "" }
            XCTAssertEqual(cells[2], claim["verdict"] as? String)
            XCTAssertEqual(cells[3], claim["evidence"] as? String)
        }
        XCTAssertFalse(html.contains("http://") && html.contains("<script"), "no scripts, nothing fetched")
        XCTAssertFalse(html.contains("<link"), "no external stylesheets")
    }
}
