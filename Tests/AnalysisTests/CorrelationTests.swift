@testable import Analysis
import Foundation
import XCTest

final class CorrelationTests: XCTestCase {
    /// Coefficients against SciPy (Scripts/gen_metric_fixtures.py), ties included.
    func testAgainstSciPyWithTies() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "correlations", withExtension: "json", subdirectory: "Fixtures"))
        let cases = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(cases.count, 4)
        for (i, c) in cases.enumerated() {
            guard let x = c["x"] as? [Double], let y = c["y"] as? [Double] else { continue }
            for method in Correlation.allCases {
                XCTAssertEqual(method.coefficient(x, y), try XCTUnwrap(c[method.rawValue] as? Double), accuracy: 1e-12, "case \(i) \(method)")
            }
        }
    }

    func testRanksAverageTiesAndUndefinedCases() {
        XCTAssertEqual(Correlation.ranks([3, 1, 3, 2]), [3.5, 1, 3.5, 2])
        XCTAssert(Correlation.spearman.coefficient([1, 1, 1], [1, 2, 3]).isNaN)
        XCTAssert(Correlation.kendall.coefficient([1], [2]).isNaN)
        XCTAssert(Correlation.kendall.coefficient([2, 2, 2], [1, 2, 3]).isNaN, "constant x")
        XCTAssertEqual(Correlation.kendall.coefficient([1, 2, 3, 4], [4, 3, 2, 1]), -1)
    }

    /// The O(n²) definition of τ-b, as the oracle for Knight's algorithm.
    func bruteForceTauB(_ x: [Double], _ y: [Double]) -> Double {
        var c = 0.0, d = 0.0, tx = 0.0, ty = 0.0
        for i in x.indices { for j in (i + 1)..<x.count {
            let dx = x[i] - x[j], dy = y[i] - y[j]
            if dx == 0 && dy == 0 { continue }
            if dx == 0 { tx += 1; continue }
            if dy == 0 { ty += 1; continue }
            if (dx > 0) == (dy > 0) { c += 1 } else { d += 1 }
        } }
        let den = ((c + d + tx) * (c + d + ty)).squareRoot()
        return den > 0 ? (c - d) / den : .nan
    }

    /// Knight's O(n log n) τ-b equals the pairwise definition on 300 random samples with heavy
    /// ties in either variable, both, and none.
    func testKnightsAlgorithmEqualsThePairwiseDefinition() {
        var rng = SplitMix(seed: 11)
        for trial in 0..<300 {
            let n = 2 + rng.below(60)
            let levels = [2, 3, 5, 1000][trial % 4]
            let x = (0..<n).map { _ in Double(rng.below(levels)) }
            let y = x.map { $0 * Double(trial % 3 - 1) + Double(rng.below(levels)) }
            let fast = Correlation.kendallTauB(x, y), slow = bruteForceTauB(x, y)
            if slow.isNaN { XCTAssert(fast.isNaN, "trial \(trial)") } else { XCTAssertEqual(fast, slow, accuracy: 1e-12, "trial \(trial) n=\(n)") }
        }
    }

    /// τ-b on 200,000 points is computed (the quadratic form would take minutes) and is right
    /// for a known relation: y = x gives 1, y = −x gives −1.
    func testKendallOnManyPoints() {
        let x = (0..<200_000).map { Double($0 % 7919) + Double($0) * 1e-6 }
        XCTAssertEqual(Correlation.kendall.coefficient(x, x), 1, accuracy: 1e-12)
        XCTAssertEqual(Correlation.kendall.coefficient(x, x.map { -$0 }), -1, accuracy: 1e-12)
    }

    /// The same seed gives the same resamples, wherever they run.
    func testBootstrapIsSeededAndCoversTheEstimate() {
        var rng = SplitMix(seed: 5)
        func normal() -> Double {
            let u = Double(rng.next() >> 11) / Double(1 << 53) + 1e-12, v = Double(rng.next() >> 11) / Double(1 << 53)
            return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
        }
        let x = (0..<40).map { _ in normal() }
        let y = x.map { $0 + 0.7 * normal() }
        for method in Correlation.allCases {
            let r = method.coefficient(x, y)
            let run = { Bootstrap.distribution(resamples: 1000, seed: 1) { rng in
                let picks = (0..<40).map { _ in rng.below(40) }
                return method.coefficient(picks.map { x[$0] }, picks.map { y[$0] })
            } }
            let a = run(), b = run()
            XCTAssertEqual(a, b, "reproducible")
            let ci = Bootstrap.percentile(a, method: "test")
            XCTAssertLessThan(ci.low, r)
            XCTAssertGreaterThan(ci.high, r)
            XCTAssertGreaterThan(ci.low, 0, "\(method): a clear positive relation")
        }
    }
}
