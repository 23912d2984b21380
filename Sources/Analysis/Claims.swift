import Foundation

/// A claim's outcome. Decided by the claim's test after Holm's correction of the seven tests
/// together, at family-wise 5 %:
/// - held: the effect differs from the null on the claimed side;
/// - contradicted: it differs on the other side;
/// - inconclusive: the data cannot tell (the interval spans the null);
/// - not enough data: the sweep lacks what the test needs (configurations, trials, epochs).
public enum Verdict: String, Sendable, CaseIterable {
    case held, contradicted, inconclusive, notEnoughData = "not enough data"
}

/// One claim of the paper as a stated hypothesis with its test.
public struct ClaimTest: Sendable {
    public var number: Int
    public var statement: String
    /// H₁ and H₀ in words.
    public var hypothesis: String
    /// The test and what it resamples.
    public var test: String
    public var effect: Double
    public var interval: Interval
    public var null: Double
    /// Raw p-value (two-sided unless the hypothesis says otherwise); NaN without data.
    public var pValue: Double
    /// Holm-adjusted over the seven claims.
    public var adjustedP = Double.nan
    public var verdict = Verdict.notEnoughData
    public var evidence: String
    /// Which PD the test uses.
    public var target: String
    /// +1: the claim is that the effect exceeds the null; 0: non-inferiority (≥ the null).
    var side: Int = 1
}

/// The open question "is AP2 or AP3 more correlated with PD?", for one AP3 variant.
public struct MetricComparison: Sendable {
    public var variant: String
    /// |ρ(AP2, PD)| − |ρ(AP3, PD)| (Spearman across configurations at the final epoch).
    public var difference: Double
    public var interval: Interval
    public var pValue: Double
    public var answer: String
    public var configurations: Int
}

enum Stats {
    /// Wilson's 95 % interval for k successes of n.
    static func wilson(_ k: Int, _ n: Int) -> Interval {
        guard n > 0 else { return .undefined }
        let z = 1.959963984540054, nn = Double(n), p = Double(k) / nn
        let denominator = 1 + z * z / nn
        let center = (p + z * z / (2 * nn)) / denominator
        let half = z * (p * (1 - p) / nn + z * z / (4 * nn * nn)).squareRoot() / denominator
        return Interval(low: max(0, center - half), high: min(1, center + half), method: "Wilson, \(n) configurations")
    }

    /// Exact two-sided binomial test of k of n against p0 (outcomes no more likely than k,
    /// SciPy's binomtest).
    static func binomialP(_ k: Int, _ n: Int, _ p0: Double) -> Double {
        guard n > 0 else { return .nan }
        func logPMF(_ i: Int) -> Double {
            lgamma(Double(n + 1)) - lgamma(Double(i + 1)) - lgamma(Double(n - i + 1)) + Double(i) * log(p0) + Double(n - i) * log(1 - p0)
        }
        let observed = logPMF(k)
        var p = 0.0
        for i in 0...n where logPMF(i) <= observed + 1e-7 * abs(observed) + 1e-12 { p += exp(logPMF(i)) }
        return min(1, p)
    }

    /// Holm's step-down adjustment; NaN p-values stay NaN and do not count in m.
    static func holm(_ p: [Double]) -> [Double] {
        let valid = p.indices.filter { !p[$0].isNaN }.sorted { p[$0] < p[$1] }
        var out = p
        var running = 0.0
        for (rank, i) in valid.enumerated() {
            running = max(running, min(1, Double(valid.count - rank) * p[i]))
            out[i] = running
        }
        return out
    }

    static func fmt(_ v: Double) -> String { v.isNaN ? "nan" : String(format: "%.3f", v) }
    static func interval(_ i: Interval) -> String { i.low.isNaN ? "[–]" : "[\(fmt(i.low)), \(fmt(i.high))]" }
}

extension Aggregation {
    public static let alpha = 0.05
    public static let statements = [
        "Over fine-tuning epochs, AP3 and PD_test move together (Spearman across epochs, per configuration)",
        "At a fixed epoch and method, AP2, AP3 and PD grow with sparsity",
        "After fine-tuning, PD and AP3 order the methods lowest ≤ random ≤ highest at every sparsity (AP2 at epoch 0 does so by construction)",
        "Ranking configurations by AP3 agrees with ranking them by PD (Kendall τ > 0)",
        "AP2 separates the methods at least as well as AP3",
        "With Σ = Σ̃ = σ²I, AP3 = AP2/(2σ²), so the claims give identical answers for the two",
        "Not every configuration follows the theory (deviations reported)",
    ]

    /// Trial means at `epoch` of correlated quantity `q` for configuration `c`, over `picks`.
    func configMean(_ c: Int, _ q: Int, epoch: Int, picks: [Int]? = nil) -> Double? {
        var sum = 0.0, n = 0
        func add(_ t: Trial) {
            let i = t.row(epoch)
            guard i >= 0 else { return }
            let v = t.values[i][q]
            if v.isFinite { sum += v; n += 1 }
        }
        if let picks { for k in picks { add(trials[c][k]) } } else { for t in trials[c] { add(t) } }
        return n > 0 ? sum / Double(n) : nil
    }

    func resampledTrials(_ c: Int, _ rng: inout SplitMix) -> [Int] { trials[c].indices.map { _ in rng.below(trials[c].count) } }

    /// Per-configuration Spearman of `metric` with `target` across epochs t ≥ 1.
    func perConfigurationRho(_ metric: String, _ target: String) -> [(config: Int, rho: Double)] {
        guard let x = k(metric), let y = k(target) else { return [] }
        return configurations.indices.compactMap { c in
            let epochs = epochSlots[c].filter { $0 >= 1 }
            let rows = means(c, picks: Array(trials[c].indices), epochs: epochs).filter { $0[x].isFinite && $0[y].isFinite }
            guard rows.count >= 3 else { return nil }
            let r = Correlation.spearman.coefficient(rows.map { $0[x] }, rows.map { $0[y] })
            return r.isNaN ? nil : (c, r)
        }
    }

    /// The seven claims of ../shared/paper.md as tests, Holm-corrected together.
    public func claims() -> [ClaimTest] {
        var out: [ClaimTest] = []
        let final = finalEpoch
        let ap3 = self.ap3
        let target = "pd_test"
        func none(_ n: Int, _ why: String) -> ClaimTest {
            ClaimTest(number: n, statement: Aggregation.statements[n - 1], hypothesis: "", test: "", effect: .nan, interval: .undefined, null: .nan,
                      pValue: .nan, evidence: why, target: "|PD_test|")
        }

        // 1. Sign of ρ across epochs, per configuration: fraction > 0 against 1/2.
        if let ap3 {
            let rhos = perConfigurationRho(ap3, target)
            if rhos.count >= 3 {
                let k = rhos.filter { $0.rho > 0 }.count, n = rhos.count
                let signed = perConfigurationRho(ap3, "pd_test_signed")
                out.append(ClaimTest(number: 1, statement: Aggregation.statements[0],
                                     hypothesis: "H₁: more than half of the configurations have Spearman(AP3_t, PD_t) > 0; H₀: half",
                                     test: "exact binomial (sign) test over configurations, Wilson 95 % interval",
                                     effect: Double(k) / Double(n), interval: Stats.wilson(k, n), null: 0.5, pValue: Stats.binomialP(k, n, 0.5),
                                     evidence: "ρ > 0 in \(k) of \(n) configurations; median ρ \(Stats.fmt(rhos.map(\.rho).sorted()[n / 2])); with signed PD: ρ > 0 in \(signed.filter { $0.rho > 0 }.count) of \(signed.count)",
                                     target: "|PD_test|"))
            } else { out.append(none(1, "\(rhos.count) configurations with ≥ 3 fine-tuning epochs (needs 3)")) }
        } else { out.append(none(1, "no AP3 recorded")) }

        // 2. Growth with sparsity: mean Spearman(sparsity, q) over (model, method, q) groups.
        if let final, let ap3 {
            var groups: [(configs: [Int], q: Int, name: String)] = []
            for model in Set(configurations.map(\.model)).sorted() {
                for method in Set(configurations.map(\.method)).sorted() {
                    for scope in Set(configurations.map(\.scope)).sorted() {
                        let cs = configurations.indices.filter { configurations[$0].model == model && configurations[$0].method == method && configurations[$0].scope == scope
                            && epochSlots[$0].contains(final) }
                        guard Set(cs.map { configurations[$0].sparsity }).count >= 3 else { continue }
                        for q in ["ap2", ap3, target] { if let qi = k(q) { groups.append((cs, qi, "\(model) \(method) \(q.prefix(20))")) } }
                    }
                }
            }
            if !groups.isEmpty {
                let groups = groups
                @Sendable func statistic(_ pick: (Int) -> [Int]?) -> Double {
                    let rhos = groups.map { g -> Double in
                        let pts = g.configs.compactMap { c in configMean(c, g.q, epoch: final, picks: pick(c)).map { (configurations[c].sparsity, $0) } }
                        return Correlation.spearman.coefficient(pts.map(\.0), pts.map(\.1))
                    }.filter { !$0.isNaN }
                    return rhos.isEmpty ? .nan : rhos.reduce(0, +) / Double(rhos.count)
                }
                let effect = statistic { _ in nil }
                let dist = Bootstrap.distribution(resamples: resamples, seed: seed &+ 2) { rng in
                    var picks: [Int: [Int]] = [:]
                    for c in Set(groups.flatMap(\.configs)).sorted() { picks[c] = self.resampledTrials(c, &rng) }
                    return statistic { picks[$0] }
                }
                out.append(ClaimTest(number: 2, statement: Aggregation.statements[1],
                                     hypothesis: "H₁: mean Spearman(sparsity, value) over (model, method, quantity) > 0; H₀: 0",
                                     test: "bootstrap over each configuration's trials, B=\(resamples)",
                                     effect: effect, interval: Bootstrap.percentile(dist, method: "bootstrap over trials, B=\(resamples)"), null: 0,
                                     pValue: Bootstrap.pValue(dist, null: 0),
                                     evidence: "mean ρ \(Stats.fmt(effect)) over \(groups.count) groups at epoch \(final) (AP2, AP3, PD_test per method)",
                                     target: "|PD_test|"))
            } else { out.append(none(2, "needs ≥ 3 sparsities per method")) }
        } else { out.append(none(2, "no finished epoch or no AP3")) }

        // 3. Method order after fine-tuning: fraction of (group, quantity) ordered, against 1/6.
        var ordered = 0, checked = 0, violations: [String] = [], ap2Order = 0, ap2Checked = 0
        if let final, let ap3 {
            for c in configurations.indices where configurations[c].method == "lowest" {
                let cfg = configurations[c]
                func at(_ m: String) -> Int? {
                    configurations.firstIndex(of: Configuration(model: cfg.model, method: m, sparsity: cfg.sparsity, scope: cfg.scope))
                }
                guard let r = at("random"), let h = at("highest") else { continue }
                for (q, e) in [(target, final), (ap3, final), ("ap2", 0)] {
                    guard let qi = k(q), let lo = configMean(c, qi, epoch: e), let ra = configMean(r, qi, epoch: e), let hi = configMean(h, qi, epoch: e) else { continue }
                    let holds = lo <= ra + 1e-12 && ra <= hi + 1e-12
                    if q == "ap2" { ap2Checked += 1; if holds { ap2Order += 1 }; continue }
                    checked += 1
                    if holds { ordered += 1 } else { violations.append("\(q.prefix(20)) \(cfg.model) p=\(cfg.sparsity): \(Stats.fmt(lo)), \(Stats.fmt(ra)), \(Stats.fmt(hi))") }
                }
            }
        }
        if checked > 0 {
            out.append(ClaimTest(number: 3, statement: Aggregation.statements[2],
                                 hypothesis: "H₁: the order lowest ≤ random ≤ highest holds more often than chance; H₀: 1/6 (any order of three)",
                                 test: "exact binomial test over (sparsity, quantity) pairs, Wilson 95 % interval",
                                 effect: Double(ordered) / Double(checked), interval: Stats.wilson(ordered, checked), null: 1.0 / 6,
                                 pValue: Stats.binomialP(ordered, checked, 1.0 / 6),
                                 evidence: "\(ordered) of \(checked) orderings hold at the final epoch (PD_test and AP3); AP2 at epoch 0: \(ap2Order) of \(ap2Checked)"
                                    + (violations.isEmpty ? "" : "; violated: " + violations.prefix(4).joined(separator: "; ")),
                                 target: "|PD_test|"))
        } else { out.append(none(3, "needs lowest, random and highest at the same sparsity")) }

        // 4. Kendall τ across configurations at the final epoch, two-level bootstrap.
        if let final, let ap3, let x = k(ap3), let y = k(target) {
            let cs = configurations.indices.filter { epochSlots[$0].contains(final) }
            @Sendable func tau(_ picks: [(Int, [Int]?)]) -> Double {
                let pts = picks.compactMap { c, p -> (Double, Double)? in
                    guard let a = configMean(c, x, epoch: final, picks: p), let b = configMean(c, y, epoch: final, picks: p) else { return nil }
                    return (a, b)
                }
                return pts.count >= 3 ? Correlation.kendall.coefficient(pts.map(\.0), pts.map(\.1)) : .nan
            }
            if cs.count >= 3 {
                let effect = tau(cs.map { ($0, nil) })
                let dist = Bootstrap.distribution(resamples: resamples, seed: seed &+ 4) { rng in
                    tau(cs.map { _ in let c = cs[rng.below(cs.count)]; return (c, self.resampledTrials(c, &rng)) })
                }
                let signed = k("pd_test_signed").map { ys in
                    Correlation.kendall.coefficient(cs.compactMap { configMean($0, x, epoch: final) }, cs.compactMap { configMean($0, ys, epoch: final) })
                } ?? .nan
                out.append(ClaimTest(number: 4, statement: Aggregation.statements[3],
                                     hypothesis: "H₁: Kendall τ-b(AP3, PD) across configurations > 0; H₀: 0",
                                     test: "bootstrap over configurations and their trials, B=\(resamples)",
                                     effect: effect, interval: Bootstrap.percentile(dist, method: "bootstrap over configurations and trials, B=\(resamples)"),
                                     null: 0, pValue: Bootstrap.pValue(dist, null: 0),
                                     evidence: "τ-b over \(cs.count) configurations at epoch \(final): \(Stats.fmt(effect)); with signed PD: \(Stats.fmt(signed))",
                                     target: "|PD_test|"))
            } else { out.append(none(4, "\(cs.count) configurations at the final epoch (needs 3)")) }
        } else { out.append(none(4, "no finished epoch or no AP3")) }

        // 5. Separation of the methods: mean (|τ(rank, AP2)| − |τ(rank, AP3)|), non-inferiority.
        if let final, let ap3, let a2 = k("ap2"), let a3 = k(ap3) {
            let rank = ["lowest": 0.0, "random": 1.0, "highest": 2.0]
            var members3: [[Int]] = []
            for c in configurations.indices where configurations[c].method == "lowest" {
                let cfg = configurations[c]
                let members = ["lowest", "random", "highest"].compactMap { m in
                    configurations.firstIndex(of: Configuration(model: cfg.model, method: m, sparsity: cfg.sparsity, scope: cfg.scope))
                }
                if members.count == 3 { members3.append(members) }
            }
            let groups = members3
            @Sendable func separation(_ pick: (Int) -> [Int]) -> Double {
                let d = groups.map { g -> Double in
                    var r: [Double] = [], v2: [Double] = [], v3: [Double] = []
                    for c in g {
                        for t in pick(c) {
                            guard let x2 = trials[c][t].value(a2, epoch: final), let x3 = trials[c][t].value(a3, epoch: final) else { continue }
                            r.append(rank[configurations[c].method]!); v2.append(x2); v3.append(x3)
                        }
                    }
                    return abs(Correlation.kendall.coefficient(r, v2)) - abs(Correlation.kendall.coefficient(r, v3))
                }.filter { !$0.isNaN }
                return d.isEmpty ? .nan : d.reduce(0, +) / Double(d.count)
            }
            if !groups.isEmpty && groups.allSatisfy({ $0.allSatisfy { self.trials[$0].count >= 1 } }) {
                let effect = separation { Array(self.trials[$0].indices) }
                let dist = Bootstrap.distribution(resamples: resamples, seed: seed &+ 5) { rng in
                    var picks: [Int: [Int]] = [:]
                    for c in Set(groups.flatMap { $0 }).sorted() { picks[c] = self.resampledTrials(c, &rng) }
                    return separation { picks[$0]! }
                }
                let below = dist.filter { $0 < 0 }.count
                var test = ClaimTest(number: 5, statement: Aggregation.statements[4],
                                     hypothesis: "H₁: AP2 separates the methods at least as well as AP3 (difference of |τ-b| with the method order ≥ 0); H₀: < 0",
                                     test: "one-sided bootstrap over trials (non-inferiority, margin 0), B=\(resamples)",
                                     effect: effect, interval: Bootstrap.percentile(dist, method: "bootstrap over trials, B=\(resamples)"), null: 0,
                                     pValue: dist.isEmpty ? .nan : Double(below + 1) / Double(dist.count + 1),
                                     evidence: "mean |τ_AP2| − |τ_AP3| with the method order at epoch \(final): \(Stats.fmt(effect)) over \(groups.count) sparsities"
                                        + (dist.allSatisfy { $0 == 0 } && effect == 0
                                           ? " — identical in every resample: \(ap3) ranks as AP2 does (with Σ = σ²I it is AP2/(2σ²)), so this holds by construction; `report --ap3` tests another variant"
                                           : ""),
                                     target: "–")
                test.side = 0
                out.append(test)
            } else { out.append(none(5, "needs lowest, random and highest at the same sparsity")) }
        } else { out.append(none(5, "no finished epoch or no AP2/AP3")) }

        // 6. The identity AP3 = AP2/(2σ²) for isotropic equal covariances (a deterministic check).
        var worst = 0.0, points = 0, variant = ""
        if let a2 = k("ap2") {
            for m in apMetrics where m.hasPrefix("ap3[gaussian:sigma2=") && !m.contains("pruned") {
                guard let s2 = Double(m.dropFirst("ap3[gaussian:sigma2=".count).dropLast()), let a3 = k(m) else { continue }
                variant = m
                for ts in trials { for t in ts { for row in t.values where row[a2].isFinite && row[a3].isFinite && row[a2] > 0 {
                    points += 1
                    worst = max(worst, abs(row[a3] - row[a2] / (2 * s2)) / (row[a2] / (2 * s2)))
                } } }
            }
        }
        if points > 0 {
            var test = ClaimTest(number: 6, statement: Aggregation.statements[5], hypothesis: "AP3 = AP2/(2σ²) to 1e-9 relative at every point",
                                 test: "deterministic check of every point (no sampling)", effect: worst,
                                 interval: Interval(low: worst, high: worst, method: "exact"), null: 1e-9, pValue: 0,
                                 evidence: "largest relative deviation \(String(format: "%.1e", worst)) over \(points) points (\(variant))", target: "–")
            test.verdict = worst < 1e-9 ? .held : .contradicted
            out.append(test)
        } else { out.append(none(6, "no gaussian:sigma2 variant recorded")) }

        // 7. Deviations exist: configurations whose ρ across epochs is not > 0.
        if let ap3 {
            let rhos = perConfigurationRho(ap3, target)
            let deviating = rhos.filter { !($0.rho > 0) }
            if rhos.count >= 3 {
                out.append(ClaimTest(number: 7, statement: Aggregation.statements[6],
                                     hypothesis: "H₁: some configurations have Spearman(AP3_t, PD_t) ≤ 0; H₀: none does",
                                     test: "count of deviating configurations (a single one establishes it), Wilson 95 % interval of their share",
                                     effect: Double(deviating.count) / Double(rhos.count), interval: Stats.wilson(deviating.count, rhos.count), null: 0,
                                     pValue: deviating.isEmpty ? 1 : 0,
                                     evidence: deviating.isEmpty ? "every one of \(rhos.count) configurations has ρ > 0"
                                        : "\(deviating.count) of \(rhos.count) deviate: " + deviating.prefix(6).map { "\(configurations[$0.config].label) (ρ \(Stats.fmt($0.rho)))" }.joined(separator: "; "),
                                     target: "|PD_test|"))
            } else { out.append(none(7, "\(rhos.count) configurations with ≥ 3 fine-tuning epochs (needs 3)")) }
        } else { out.append(none(7, "no AP3 recorded")) }

        // Holm over the claims that have a p-value, then verdicts.
        let adjusted = Stats.holm(out.map(\.pValue))
        for i in out.indices {
            out[i].adjustedP = adjusted[i]
            guard out[i].number != 6 else { continue }
            out[i].verdict = Aggregation.verdict(out[i])
        }
        return out
    }

    /// The verdict from the effect, its adjusted p-value and the claimed side.
    static func verdict(_ t: ClaimTest) -> Verdict {
        guard !t.effect.isNaN, !t.adjustedP.isNaN else { return .notEnoughData }
        if t.side == 0 {
            if t.adjustedP < alpha { return .held }
            return t.interval.high < t.null ? .contradicted : .inconclusive
        }
        guard t.adjustedP < alpha, t.effect != t.null else { return .inconclusive }
        return (t.effect - t.null) * Double(t.side) > 0 ? .held : .contradicted
    }

    /// The open question: is AP2 or each AP3 variant more correlated with PD_test across
    /// configurations at the final epoch? A paired two-level bootstrap of the difference of |ρ|.
    public func metricComparisons() -> [MetricComparison] {
        guard let final = finalEpoch, let a2 = k("ap2"), let y = k("pd_test") else { return [] }
        let cs = configurations.indices.filter { epochSlots[$0].contains(final) }
        guard cs.count >= 3 else { return [] }
        return apMetrics.filter { $0.hasPrefix("ap3[") }.enumerated().map { vi, v in
            let a3 = k(v)!
            @Sendable func difference(_ picks: [(Int, [Int]?)]) -> Double {
                var x2: [Double] = [], x3: [Double] = [], ys: [Double] = []
                for (c, p) in picks {
                    guard let m2 = configMean(c, a2, epoch: final, picks: p), let m3 = configMean(c, a3, epoch: final, picks: p),
                          let py = configMean(c, y, epoch: final, picks: p) else { continue }
                    x2.append(m2); x3.append(m3); ys.append(py)
                }
                guard ys.count >= 3 else { return .nan }
                return abs(Correlation.spearman.coefficient(x2, ys)) - abs(Correlation.spearman.coefficient(x3, ys))
            }
            let d = difference(cs.map { ($0, nil) })
            let dist = Bootstrap.distribution(resamples: resamples, seed: seed &+ 100 &+ UInt64(vi)) { rng in
                difference(cs.map { _ in let c = cs[rng.below(cs.count)]; return (c, self.resampledTrials(c, &rng)) })
            }
            let interval = Bootstrap.percentile(dist, method: "paired bootstrap over configurations and trials, B=\(resamples)")
            let answer: String
            if d.isNaN || interval.low.isNaN { answer = "not enough data" }
            else if interval.low > 0 { answer = "AP2 is more correlated with PD" }
            else if interval.high < 0 { answer = "\(v) is more correlated with PD" }
            else if interval.low == 0 && interval.high == 0 { answer = "identical (same ranking of configurations)" }
            else { answer = "no difference shown" }
            return MetricComparison(variant: v, difference: d, interval: interval, pValue: Bootstrap.pValue(dist, null: 0), answer: answer, configurations: cs.count)
        }
    }
}
