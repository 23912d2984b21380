import Foundation
@testable import Plot
import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif

final class ScaleTests: XCTestCase {
    func testLinearScaleMapsAndTicksNicely() {
        let s = LinearScale(domain: 0...10, range: (100, 200))
        XCTAssertEqual(s.position(0), 100)
        XCTAssertEqual(s.position(10), 200)
        XCTAssertEqual(s.position(2.5), 125)
        XCTAssertNil(s.position(.nan))
        XCTAssertNil(s.position(.infinity))
        XCTAssertEqual(s.ticks(), [0, 2, 4, 6, 8, 10])
        XCTAssertEqual(LinearScale(domain: 0...1, range: (0, 1)).ticks(), [0, 0.2, 0.4, 0.6, 0.8, 1].map { $0 }, "steps of 2 × 10⁻¹")
        // A single value: the domain is widened so the point sits in the middle.
        XCTAssertEqual(LinearScale(domain: 3...3, range: (0, 100)).position(3), 50)
    }

    func testLogScaleTicksAtDecadesAndRejectsNonPositive() {
        let s = LogScale(domain: 0.01...1000, range: (0, 500))
        XCTAssertEqual(s.ticks(), [0.01, 0.1, 1, 10, 100, 1000])
        XCTAssertEqual(s.position(1)!, 200, accuracy: 1e-9)
        XCTAssertNil(s.position(0))
        XCTAssertNil(s.position(-1))
        XCTAssertEqual(LogScale(domain: 1...20, range: (0, 1)).ticks(), [1, 2, 5, 10, 20], "narrow domains get 2× and 5× ticks")
        XCTAssertEqual(tickLabel(1e5), "10^5")
        XCTAssertEqual(tickLabel(0.25), "0.25")
        XCTAssertEqual(tickLabel(2), "2")
    }
}

final class ChartTests: XCTestCase {
    /// Parses SVG as XML; fails the test on malformed markup.
    func parse(_ svg: String, file: StaticString = #filePath, line: UInt = #line) -> XMLDocument? {
        do { return try XMLDocument(xmlString: svg) } catch {
            XCTFail("malformed SVG: \(error)", file: file, line: line)
            return nil
        }
    }

    func seriesNodes(_ doc: XMLDocument) throws -> [XMLElement] {
        try doc.nodes(forXPath: "//*[local-name()='g'][@class='series']").compactMap { $0 as? XMLElement }
    }

    func testNaNAndInfinityAreGapsAndReported() throws {
        let chart = LineChart(title: "t <&> \"q\"", xLabel: "epoch", yLabel: "AP3", logY: true, series: [
            Series(name: "a", points: [(0, 1), (1, .nan), (2, 4), (3, 8), (4, .infinity), (5, 0)], color: "#000"),
            Series(name: "b", points: [(0, 2), (1, 3)], color: "#111", dashed: true),
        ])
        let r = chart.render()
        let doc = try XCTUnwrap(parse(r.svg))
        XCTAssertEqual(r.omitted, ["a": 3], "NaN, ∞ and 0 on a log axis")
        let series = try seriesNodes(doc)
        XCTAssertEqual(series.count, 2)
        XCTAssertEqual(series[0].attributes?.first(where: { $0.name == "data-points" })?.stringValue, "3")
        // Series a: a lone point (circle) before the gap, a polyline of two after it.
        XCTAssertEqual(try series[0].nodes(forXPath: "./*[local-name()='polyline']").count, 1)
        XCTAssertEqual(try series[0].nodes(forXPath: "./*[local-name()='circle']").count, 1)
        XCTAssert(r.svg.contains("t &lt;&amp;&gt; &quot;q&quot;"), "titles are escaped")
        XCTAssert(r.svg.contains("shown as gaps"))
    }

    func testEmptyAndSinglePointSeries() throws {
        let empty = LineChart(title: "empty", xLabel: "x", yLabel: "y", series: [Series(name: "e", points: [], color: "#000")]).render()
        XCTAssert(empty.svg.contains("no data to plot"))
        _ = parse(empty.svg)
        let single = LineChart(title: "one", xLabel: "x", yLabel: "y", logY: true, series: [Series(name: "s", points: [(1, 5)], color: "#000")]).render()
        let doc = try XCTUnwrap(parse(single.svg))
        XCTAssertEqual(try seriesNodes(doc).first?.attributes?.first(where: { $0.name == "data-points" })?.stringValue, "1")
        XCTAssertTrue(single.omitted.isEmpty)
        let allBad = LineChart(title: "bad", xLabel: "x", yLabel: "y", series: [Series(name: "n", points: [(0, .nan)], color: "#000")]).render()
        XCTAssert(allBad.svg.contains("no data to plot"))
        XCTAssertEqual(allBad.omitted["n"], 1)
    }

    func testScatterAndHeatMapAreWellFormed() throws {
        let scatter = ScatterChart(title: "s", xLabel: "AP3", yLabel: "PD", note: "spearman 0.5", groups: [
            ("lowest", okabeIto[0], [(1, 2), (10, 3)]), ("highest", okabeIto[1], [(100, 9), (-1, 1)]),
        ]).render()
        let doc = try XCTUnwrap(parse(scatter.svg))
        XCTAssertEqual(try seriesNodes(doc).map { $0.attributes?.first(where: { $0.name == "data-points" })?.stringValue }, ["2", "1"])
        XCTAssertEqual(scatter.omitted, ["highest": 1], "a non-positive x on the log axis")
        let heat = HeatMap(title: "h", rowLabels: ["a", "b"], columnLabels: ["x", "y", "z"], values: [[1, 10, .nan], [100, 0.5, 2]]).render()
        _ = parse(heat.svg)
        XCTAssertEqual(heat.omitted, ["cells": 1])
    }
}
