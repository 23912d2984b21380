@testable import Analysis
import Foundation
import Records
import XCTest

/// The verdict logic on data where the answer is known, Holm's adjustment by hand, the binomial
/// test and Wilson interval and the paired bootstrap against SciPy, and resampling of trials.
final class VerdictTests: XCTestCase {
    static let sweep = """
        models: [{architecture: lenet5}]
        trials: 4
        prune: {methods: [lowest, random, highest], sparsities: [0.1, 0.3, 0.5, 0.8], fine_tune: {epochs: 5}}
        """

    /// A sweep whose PD follows AP3 (`slope` +1), runs against it (−1), or ignores it (0), with
    /// trial-to-trial noise of `noise`.
    func journal(slope: Double, noise: Double, seed: UInt64) throws -> JournalBuilder {
        let b = try JournalBuilder(Self.sweep)
        var rng = SplitMix(seed: seed)
        func u() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
        let rank = ["lowest": 1.0, "random": 2.0, "highest": 3.0]
        try b.fill { method, p, _ in
            (0...5).map { e in
                let ap2 = rank[method]! * p * 10 * (1 + 0.1 * Double(e)) + 0.5 * u()
                let signal = slope == 0 ? 10 * u() : (slope > 0 ? ap2 : 40 - ap2)
                return JournalBuilder.record(epoch: e, ap2: ap2, pdTest: max(0.01, min(99, signal + noise * u())))
            }
        }
        return b
    }

    func testStrongPositiveEffectIsHeld() throws {
        let b = try journal(slope: 1, noise: 0.5, seed: 1)
        let a = try Aggregation(journal: b.journal, resamples: 1000)
        let claims = a.claims()
        XCTAssertEqual(claims[0].verdict, .held, claims[0].evidence)
        XCTAssertEqual(claims[3].verdict, .held, claims[3].evidence)
        XCTAssertGreaterThan(claims[3].interval.low, 0)
    }

    func testReversedEffectIsContradicted() throws {
        let b = try journal(slope: -1, noise: 0.5, seed: 2)
        let a = try Aggregation(journal: b.journal, resamples: 1000)
        let claims = a.claims()
        XCTAssertEqual(claims[0].verdict, .contradicted, claims[0].evidence)
        XCTAssertEqual(claims[3].verdict, .contradicted, claims[3].evidence)
        XCTAssertLessThan(claims[3].interval.high, 0)
    }

    /// Pure noise: claim 4 (ranking configurations) is inconclusive in at least 90 % of seeds.
    func testNoiseIsInconclusiveInNineOfTenSeeds() throws {
        var inconclusive = 0
        let seeds = 20
        for seed in 0..<seeds {
            let b = try journal(slope: 0, noise: 0, seed: 100 + UInt64(seed))
            let a = try Aggregation(journal: b.journal, resamples: 300)
            if a.claims()[3].verdict == .inconclusive { inconclusive += 1 }
        }
        XCTAssertGreaterThanOrEqual(Double(inconclusive) / Double(seeds), 0.9, "\(inconclusive) of \(seeds)")
    }

    func testHolmAgainstHandComputedValues() {
        // Sorted 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 → 0.02, 0.03, 0.06, 0.04 → running max.
        let adjusted = Stats.holm([0.01, 0.04, 0.03, 0.005])
        for (x, y) in zip(adjusted, [0.03, 0.06, 0.06, 0.02]) { XCTAssertEqual(x, y, accuracy: 1e-15) }
        let withNaN = Stats.holm([0.02, .nan, 0.5])
        XCTAssertEqual(withNaN[0], 0.04, accuracy: 1e-15)
        XCTAssert(withNaN[1].isNaN)
        XCTAssertEqual(withNaN[2], 0.5, accuracy: 1e-15)
        XCTAssertEqual(Stats.holm([0.9, 0.8]), [1, 1], "0.8 × 2 is capped at 1, and 0.9 may not fall below it")
    }

    func fixture() throws -> [String: Any] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "statistics", withExtension: "json", subdirectory: "Fixtures"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    func testBinomialTestAndWilsonIntervalAgainstSciPy() throws {
        for case let c as [String: Any] in try XCTUnwrap(try fixture()["binomial"] as? [Any]) {
            let k = c["k"] as! Int, n = c["n"] as! Int, p0 = c["p0"] as! Double
            XCTAssertEqual(Stats.binomialP(k, n, p0), c["p"] as! Double, accuracy: 1e-9, "\(k)/\(n) vs \(p0)")
            let w = c["wilson"] as! [Double], ours = Stats.wilson(k, n)
            XCTAssertEqual(ours.low, w[0], accuracy: 1e-9)
            XCTAssertEqual(ours.high, w[1], accuracy: 1e-9)
        }
    }

    /// The paired bootstrap of |ρ(AP2, PD)| − |ρ(AP3, PD)| across 12 configurations of one trial
    /// each (the two-level bootstrap then resamples configurations only, as SciPy's paired one
    /// does) agrees with scipy.stats.bootstrap within Monte Carlo error.
    func testPairedBootstrapAgainstSciPy() throws {
        let f = try XCTUnwrap(try fixture()["paired_bootstrap"] as? [String: Any])
        let ap2 = f["ap2"] as! [Double], ap3 = f["ap3"] as! [Double], pd = f["pd"] as! [Double]
        let b = try JournalBuilder("""
            models: [{architecture: lenet5}]
            trials: 1
            prune: {methods: [lowest, random, highest], sparsities: [0.1, 0.3, 0.5, 0.8], fine_tune: {epochs: 1}}
            """)
        let methods = ["lowest", "random", "highest"], sparsities = [0.1, 0.3, 0.5, 0.8]
        try b.fill { method, p, _ in
            let i = methods.firstIndex(of: method)! * 4 + sparsities.firstIndex(of: p)!
            return (0...1).map { e in JournalBuilder.record(epoch: e, ap2: ap2[i], ap3: ap3[i], pdTest: pd[i]) }
        }
        let a = try Aggregation(journal: b.journal, resamples: 20_000)
        let comparison = try XCTUnwrap(a.metricComparisons().first)
        XCTAssertEqual(comparison.configurations, 12)
        XCTAssertEqual(comparison.difference, f["difference"] as! Double, accuracy: 1e-12)
        let ci = f["ci95"] as! [Double]
        XCTAssertEqual(comparison.interval.low, ci[0], accuracy: 0.04)
        XCTAssertEqual(comparison.interval.high, ci[1], accuracy: 0.04)
    }

    /// The pooled interval resamples trials, not (trial, epoch) points: a sweep whose every trial
    /// repeats one point over 21 epochs holds 3 independent points per configuration, not 63, and
    /// its interval must be as wide as 3 points allow. Resampling the points would narrow it.
    func testPooledIntervalResamplesTrialsNotEpochs() throws {
        let b = try JournalBuilder("""
            models: [{architecture: lenet5}]
            trials: 3
            prune: {methods: [lowest], sparsities: [0.5], fine_tune: {epochs: 20}}
            """)
        let levels: [UInt64: (Double, Double)] = [1: (1, 3), 2: (2, 1), 3: (3, 2)]
        try b.fill { _, _, seed in
            (0...20).map { e in JournalBuilder.record(epoch: e, ap2: levels[seed]!.0 + Double(e) * 1e-9, pdTest: levels[seed]!.1 + Double(e) * 1e-9) }
        }
        let a = try Aggregation(journal: b.journal, resamples: 2000)
        let pooled = try XCTUnwrap(a.pooledCorrelations().first { $0.metric == "ap2" && $0.target == "pd_test" && $0.method == .pearson })
        XCTAssertEqual(pooled.points, 63)
        XCTAssertGreaterThan(pooled.high - pooled.low, 1.0, "three independent trials leave the correlation wide open: \(pooled.interval)")
        // What resampling the 63 points as if independent would give: much narrower.
        var xs: [Double] = [], ys: [Double] = []
        for t in a.trials[0] { for row in t.values { xs.append(row[a.correlated.firstIndex(of: "ap2")!]); ys.append(row[0]) } }
        let (px, py) = (xs, ys)
        let naive = Bootstrap.percentile(Bootstrap.distribution(resamples: 2000, seed: 3) { rng in
            let picks = (0..<px.count).map { _ in rng.below(px.count) }
            return Correlation.pearson.coefficient(picks.map { px[$0] }, picks.map { py[$0] })
        }, method: "naive")
        XCTAssertLessThan(naive.high - naive.low, 0.8 * (pooled.high - pooled.low), "naive \(naive) vs trials \(pooled.interval)")
    }
}
