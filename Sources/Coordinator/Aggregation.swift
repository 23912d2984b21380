import Compression
import Experiment
import Foundation
import Wire

/// AP–PD aggregation over a sweep's records: per-configuration means over trials, correlations of
/// every AP variant with PD, and the paper's claims evaluated as data.
public struct Aggregation {
    /// (model, method, sparsity, scope) of prune tasks.
    public struct Configuration: Hashable, Comparable, Sendable {
        public var model: String, method: String, sparsity: Double, scope: String
        public static func < (a: Self, b: Self) -> Bool {
            (a.model, a.method, a.sparsity, a.scope) < (b.model, b.method, b.sparsity, b.scope)
        }
        public var label: String { "\(model) \(method) p=\(sparsity) \(scope)" }
    }

    /// Mean, standard deviation (n − 1) and count of one quantity at one epoch.
    public struct Moments: Sendable {
        public var mean: Double, std: Double, count: Int
        init(_ xs: [Double]) {
            let v = xs.filter(\.isFinite)
            let m = v.isEmpty ? Double.nan : v.reduce(0, +) / Double(v.count)
            count = v.count
            mean = m
            std = v.count < 2 ? .nan : (v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(v.count - 1)).squareRoot()
        }
    }

    public struct CorrelationResult: Sendable {
        public var metric: String, target: String, method: Correlation, scope: String
        public var value: Double, low: Double, high: Double, points: Int
    }

    public enum Verdict: String, Sendable { case held, notHeld = "not held", notEnoughData = "not enough data" }
    public struct Claim: Sendable {
        public var number: Int, statement: String, verdict: Verdict, evidence: String
    }

    /// Points per configuration: trial → epoch → quantity → value.
    public private(set) var series: [Configuration: [UInt64: [Int: [String: Double]]]] = [:]
    public private(set) var quantities: [String] = []
    /// AP metrics of the whole network (sums over layers), correlated with PD.
    public private(set) var apMetrics: [String] = []
    /// The same metrics of the last (classifier) layer alone, aggregated but not correlated
    /// separately (with the paper's last-layer scope they equal the totals).
    public private(set) var lastLayerMetrics: [String] = []
    public private(set) var tasksDone = 0, tasksTotal = 0
    public private(set) var baselines: [(model: String, seed: UInt64, train: Double, test: Double)] = []
    let resamples: Int

    /// Reads every record of the journal (finished or still running tasks alike).
    public init(journal: Journal, resamples: Int = 1000) throws {
        self.resamples = resamples
        var seen = Set<String>()
        for t in try journal.loadTasks() {
            tasksTotal += 1
            if t.state == .done { tasksDone += 1 }
            guard let spec = try? SweepTask.decode(t.spec) else { continue }
            if spec.kind == .baseline, let b = t.baseline {
                baselines.append((spec.model.name, spec.seed, b.trainAccuracy, b.testAccuracy))
            }
            guard spec.kind == .prune, let p = spec.prune else { continue }
            let config = Configuration(model: spec.model.name, method: p.method.rawValue, sparsity: p.sparsity, scope: p.scope)
            for r in try journal.records(t.id) {
                var q: [String: Double] = ["pd_test": r.pdTest, "pd_train": r.pdTrain, "test_accuracy": r.testAccuracy,
                                           "train_accuracy": r.trainAccuracy, "test_loss": r.testLoss, "train_loss": r.trainLoss]
                for v in r.total?.values ?? [] where !v.name.contains("_se[") {
                    q[v.name] = v.value
                    if seen.insert(v.name).inserted { apMetrics.append(v.name) }
                }
                // The last (classifier) layer's own values, as "last.<metric>"; layers are listed in
                // the model's order, so the classifier comes last.
                if r.layers.count > 1, let last = r.layers.last {
                    for v in last.values where !v.name.contains("_se[") {
                        q["last." + v.name] = v.value
                        if seen.insert("last." + v.name).inserted { lastLayerMetrics.append("last." + v.name) }
                    }
                }
                series[config, default: [:]][spec.seed, default: [:]][Int(r.epoch)] = q
            }
        }
        quantities = ["pd_test", "pd_train", "test_accuracy", "train_accuracy", "test_loss", "train_loss"] + apMetrics + lastLayerMetrics
    }

    public var configurations: [Configuration] { series.keys.sorted() }

    /// Per-epoch moments of `quantity` over the trials of `config`.
    public func moments(_ config: Configuration, _ quantity: String) -> [(epoch: Int, Moments)] {
        let trials = series[config] ?? [:]
        let epochs = Set(trials.values.flatMap(\.keys)).sorted()
        return epochs.map { e in (e, Moments(trials.values.compactMap { $0[e]?[quantity] })) }
    }

    /// The last epoch every trial of every configuration has reached (nil when none).
    public var finalEpoch: Int? {
        let lasts = series.values.flatMap { $0.values.map { $0.keys.max() ?? 0 } }
        return lasts.min()
    }

    func mean(_ config: Configuration, _ q: String, epoch: Int) -> Double? {
        moments(config, q).first { $0.epoch == epoch }.map { $0.1.mean }.flatMap { $0.isFinite ? $0 : nil }
    }

    func correlate(_ x: [Double], _ y: [Double], metric: String, target: String, scope: String) -> [CorrelationResult] {
        Correlation.allCases.map { m in
            let ci: (low: Double, high: Double) = x.count >= 3 ? m.bootstrapInterval(x, y, resamples: resamples, seed: 7) : (.nan, .nan)
            return CorrelationResult(metric: metric, target: target, method: m, scope: scope, value: m.coefficient(x, y), low: ci.low, high: ci.high, points: x.count)
        }
    }

    /// Correlations of every AP variant (total over layers) with PD_test and PD_train:
    /// (a) per configuration across epochs of the trial means, (b) across configurations at epoch 0
    /// and at the final epoch, (c) pooled over every (task, epoch) point.
    public func correlations() -> [CorrelationResult] {
        var out: [CorrelationResult] = []
        for metric in apMetrics {
            for target in ["pd_test", "pd_train"] {
                for config in configurations {
                    let a = moments(config, metric), p = moments(config, target)
                    let pairs = zip(a, p).filter { $0.0.1.mean.isFinite && $0.1.1.mean.isFinite && $0.0.epoch >= 1 }
                    out += correlate(pairs.map { $0.0.1.mean }, pairs.map { $0.1.1.mean }, metric: metric, target: target, scope: "epochs: \(config.label)")
                }
                for (name, epoch) in [("epoch 0", 0), ("final epoch", finalEpoch ?? -1)] where epoch >= 0 {
                    let pts = configurations.compactMap { c -> (Double, Double)? in
                        guard let a = mean(c, metric, epoch: epoch), let p = mean(c, target, epoch: epoch) else { return nil }
                        return (a, p)
                    }
                    out += correlate(pts.map(\.0), pts.map(\.1), metric: metric, target: target, scope: "configurations at \(name)")
                }
                var xs: [Double] = [], ys: [Double] = []
                for trials in series.values { for epochs in trials.values { for q in epochs.values {
                    if let a = q[metric], let p = q[target], a.isFinite, p.isFinite { xs.append(a); ys.append(p) }
                } } }
                out += correlate(xs, ys, metric: metric, target: target, scope: "pooled")
            }
        }
        return out
    }

    /// The few correlations `apsweep status` shows: AP2 and the main AP3 against PD_test, pooled and
    /// across configurations at the final epoch.
    public func headline() -> [CorrelationResult] {
        var out: [CorrelationResult] = []
        for metric in ["ap2"] + (ap3.map { [$0] } ?? []) where apMetrics.contains(metric) {
            var xs: [Double] = [], ys: [Double] = []
            for trials in series.values { for epochs in trials.values { for q in epochs.values {
                if let a = q[metric], let p = q["pd_test"], a.isFinite, p.isFinite { xs.append(a); ys.append(p) }
            } } }
            out += correlate(xs, ys, metric: metric, target: "pd_test", scope: "pooled").filter { $0.method != .pearson }
            if let final = finalEpoch {
                let pts = configurations.compactMap { c -> (Double, Double)? in
                    guard let a = mean(c, metric, epoch: final), let p = mean(c, "pd_test", epoch: final) else { return nil }
                    return (a, p)
                }
                out += correlate(pts.map(\.0), pts.map(\.1), metric: metric, target: "pd_test", scope: "final epoch").filter { $0.method != .pearson }
            }
        }
        return out
    }

    /// The main AP3 variant: the first `ap3[gaussian…]`, else the first AP3.
    var ap3: String? { apMetrics.first { $0.hasPrefix("ap3[gaussian") } ?? apMetrics.first { $0.hasPrefix("ap3[") } }

    /// The claims of ../shared/paper.md, evaluated on this sweep.
    public func claims() -> [Claim] {
        var out: [Claim] = []
        let final = finalEpoch
        guard let ap3 else {
            return (1...7).map { Claim(number: $0, statement: Aggregation.statements[$0 - 1], verdict: .notEnoughData, evidence: "no AP3 records yet") }
        }
        // 1. AP3 and PD_test move together over epochs, per configuration.
        let per = configurations.compactMap { c -> Double? in
            let a = moments(c, ap3), p = moments(c, "pd_test")
            let pairs = zip(a, p).filter { $0.0.epoch >= 1 && $0.0.1.mean.isFinite && $0.1.1.mean.isFinite }
            guard pairs.count >= 3 else { return nil }
            let r = Correlation.spearman.coefficient(pairs.map { $0.0.1.mean }, pairs.map { $0.1.1.mean })
            return r.isNaN ? nil : r
        }
        if per.count >= 3 {
            let positive = per.filter { $0 > 0 }.count
            let median = per.sorted()[per.count / 2]
            out.append(Claim(number: 1, statement: Aggregation.statements[0], verdict: Double(positive) >= 2.0 / 3.0 * Double(per.count) ? .held : .notHeld,
                             evidence: "Spearman(\(ap3), PD_test) across epochs > 0 in \(positive) of \(per.count) configurations; median \(fmt(median))"))
        } else {
            out.append(Claim(number: 1, statement: Aggregation.statements[0], verdict: .notEnoughData, evidence: "\(per.count) configurations with ≥ 3 fine-tuning epochs"))
        }
        // 2. AP2, AP3 and PD grow with sparsity, per method at the final epoch.
        var growth: [String] = [], grows = true, enough = false
        if let final {
            for method in Set(configurations.map(\.method)).sorted() {
                let cs = configurations.filter { $0.method == method }
                guard Set(cs.map(\.sparsity)).count >= 3 else { continue }
                enough = true
                for q in ["ap2", ap3, "pd_test"] {
                    let pts = cs.compactMap { c in mean(c, q, epoch: final).map { (c.sparsity, $0) } }
                    let r = Correlation.spearman.coefficient(pts.map(\.0), pts.map(\.1))
                    growth.append("\(method) \(q.prefix(24)): ρ=\(fmt(r))")
                    if !(r > 0) { grows = false }
                }
            }
        }
        out.append(Claim(number: 2, statement: Aggregation.statements[1], verdict: enough ? (grows ? .held : .notHeld) : .notEnoughData,
                         evidence: enough ? "Spearman with sparsity at the final epoch: " + growth.joined(separator: "; ") : "needs ≥ 3 sparsities per method"))
        // 3. Order lowest ≤ random ≤ highest: AP2 at epoch 0; PD_test and AP3 at the final epoch.
        var checked = 0, violations: [String] = []
        for c in configurations where c.method == "lowest" {
            func at(_ m: String, _ q: String, _ e: Int) -> Double? {
                let other = Configuration(model: c.model, method: m, sparsity: c.sparsity, scope: c.scope)
                return mean(other, q, epoch: e)
            }
            for (q, e) in [("ap2", 0), ("pd_test", final ?? -1), (ap3, final ?? -1)] where e >= 0 {
                guard let lo = at("lowest", q, e), let ra = at("random", q, e), let hi = at("highest", q, e) else { continue }
                checked += 1
                if !(lo <= ra + 1e-12 && ra <= hi + 1e-12) { violations.append("\(q.prefix(24)) p=\(c.sparsity) epoch \(e): \(fmt(lo)), \(fmt(ra)), \(fmt(hi))") }
            }
        }
        out.append(Claim(number: 3, statement: Aggregation.statements[2], verdict: checked == 0 ? .notEnoughData : (violations.isEmpty ? .held : .notHeld),
                         evidence: checked == 0 ? "needs lowest, random and highest at the same sparsity" : "\(checked - violations.count) of \(checked) orderings hold" + (violations.isEmpty ? "" : "; violated: " + violations.prefix(4).joined(separator: "; "))))
        // 4. Ranking configurations by AP3 agrees with ranking by PD (Kendall τ > 0) at the final epoch.
        if let final {
            let pts = configurations.compactMap { c -> (Double, Double)? in
                guard let a = mean(c, ap3, epoch: final), let p = mean(c, "pd_test", epoch: final) else { return nil }
                return (a, p)
            }
            if pts.count >= 3 {
                let tau = Correlation.kendall.coefficient(pts.map(\.0), pts.map(\.1))
                let ci = Correlation.kendall.bootstrapInterval(pts.map(\.0), pts.map(\.1), resamples: resamples, seed: 7)
                out.append(Claim(number: 4, statement: Aggregation.statements[3], verdict: tau > 0 ? .held : .notHeld,
                                 evidence: "Kendall τ-b(\(ap3), PD_test) over \(pts.count) configurations at epoch \(final): \(fmt(tau)) [\(fmt(ci.low)), \(fmt(ci.high))]"))
            } else {
                out.append(Claim(number: 4, statement: Aggregation.statements[3], verdict: .notEnoughData, evidence: "\(pts.count) configurations at the final epoch"))
            }
        } else {
            out.append(Claim(number: 4, statement: Aggregation.statements[3], verdict: .notEnoughData, evidence: "no finished epoch yet"))
        }
        // 5. AP2 separates the methods at least as well as AP3 (|Kendall τ| with lowest < random < highest at epoch 0).
        let rank = ["lowest": 0.0, "random": 1.0, "highest": 2.0]
        let sep = { (q: String) -> (Double, Int) in
            let pts = self.configurations.compactMap { c -> (Double, Double)? in
                guard let r = rank[c.method], let v = self.mean(c, q, epoch: 0) else { return nil }
                return (r, v)
            }
            return (abs(Correlation.kendall.coefficient(pts.map(\.0), pts.map(\.1))), pts.count)
        }
        let (s2, n2) = sep("ap2"), (s3, _) = sep(ap3)
        out.append(Claim(number: 5, statement: Aggregation.statements[4], verdict: n2 < 3 || s2.isNaN || s3.isNaN ? .notEnoughData : (s2 >= s3 - 1e-12 ? .held : .notHeld),
                         evidence: "|τ-b| with the method order at epoch 0: AP2 \(fmt(s2)), \(ap3) \(fmt(s3)) over \(n2) configurations"))
        // 6. With Σ = Σ̃ = σ²I, AP3 = AP2/(2σ²) exactly.
        var worst = 0.0, points = 0, variant = ""
        for m in apMetrics where m.hasPrefix("ap3[gaussian:sigma2=") && !m.contains("pruned") {
            let s2v = Double(m.dropFirst("ap3[gaussian:sigma2=".count).dropLast()) ?? .nan
            variant = m
            for trials in series.values { for epochs in trials.values { for q in epochs.values {
                guard let a3 = q[m], let a2 = q["ap2"], a2 > 0 else { continue }
                points += 1
                worst = max(worst, abs(a3 - a2 / (2 * s2v)) / (a2 / (2 * s2v)))
            } } }
        }
        out.append(Claim(number: 6, statement: Aggregation.statements[5], verdict: points == 0 ? .notEnoughData : (worst < 1e-9 ? .held : .notHeld),
                         evidence: points == 0 ? "no gaussian:sigma2 variant recorded" : "largest relative deviation \(String(format: "%.1e", worst)) over \(points) points (\(variant))"))
        // 7. Not every configuration follows the theory: list deviations.
        let deviating = configurations.filter { c in
            let a = moments(c, ap3), p = moments(c, "pd_test")
            let pairs = zip(a, p).filter { $0.0.epoch >= 1 && $0.0.1.mean.isFinite && $0.1.1.mean.isFinite }
            return pairs.count >= 3 && !(Correlation.spearman.coefficient(pairs.map { $0.0.1.mean }, pairs.map { $0.1.1.mean }) > 0)
        }
        out.append(Claim(number: 7, statement: Aggregation.statements[6], verdict: per.count < 3 ? .notEnoughData : (deviating.isEmpty ? .notHeld : .held),
                         evidence: deviating.isEmpty ? "every configuration with ≥ 3 epochs has Spearman(\(ap3), PD_test) > 0" : "\(deviating.count) deviating: " + deviating.prefix(6).map(\.label).joined(separator: "; ")))
        return out
    }

    static let statements = [
        "Over fine-tuning epochs, AP3 and PD_test move together (Spearman across epochs, per configuration)",
        "At a fixed epoch and method, AP2, AP3 and PD grow with sparsity",
        "AP2(lowest) ≤ AP2(random) ≤ AP2(highest) right after pruning; the same order for PD and AP3 after fine-tuning",
        "Ranking configurations by AP3 agrees with ranking them by PD (Kendall τ > 0)",
        "AP2 separates the methods at least as well as AP3",
        "With Σ = Σ̃ = σ²I, AP3 = AP2/(2σ²), so the claims give identical answers for the two",
        "Not every configuration follows the theory (deviations reported)",
    ]
}

func fmt(_ v: Double) -> String { v.isNaN ? "nan" : String(format: "%.3f", v) }
