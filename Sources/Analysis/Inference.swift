import Foundation

/// One correlation of an AP metric with a PD target, with its interval.
public struct CorrelationResult: Sendable {
    public var metric: String, target: String, method: Correlation, scope: String
    public var value: Double
    public var interval: Interval
    public var points: Int
    public var low: Double { interval.low }
    public var high: Double { interval.high }
}

extension Bootstrap {
    /// Like `distribution`, for several statistics computed from the same resample: column j of
    /// the result holds statistic j's values over the resamples (NaNs dropped), sorted.
    public static func distributions(resamples: Int, seed: UInt64, statistics: Int, _ body: @Sendable (inout SplitMix) -> [Double]) -> [[Double]] {
        var flat = [Double](repeating: .nan, count: resamples * statistics)
        let threads = max(1, min(ProcessInfo.processInfo.activeProcessorCount, resamples / 20 + 1))
        flat.withUnsafeMutableBufferPointer { out in
            let base = UnsafeMutableSendablePointer(out.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                var b = t
                while b < resamples {
                    var rng = generator(seed: seed, resample: b)
                    let values = body(&rng)
                    for j in 0..<min(statistics, values.count) { base.pointer[b * statistics + j] = values[j] }
                    b += threads
                }
            }
        }
        return (0..<statistics).map { j in (0..<resamples).map { flat[$0 * statistics + j] }.filter { !$0.isNaN }.sorted() }
    }
}

/// Student's t quantile t(0.975, df) for the grouped jackknife (df = groups − 1).
func tQuantile975(_ df: Int) -> Double {
    let table: [Double] = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
                           2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
    return df >= 1 && df <= table.count ? table[df - 1] : 1.96
}

extension Aggregation {
    /// Above this many pooled points the pooled interval is a grouped jackknife, not a bootstrap.
    static let pooledBootstrapPoints = 5000
    static let jackknifeGroups = 20
    /// The bootstrap of one configuration's trials gets at most this many trial × epoch × quantity
    /// sums in all (and never fewer than 100 resamples): the stated cost of per-configuration intervals.
    static let perConfigurationBudget = 20_000_000

    /// The pairs correlated: every AP metric against every PD target.
    var pairs: [(metric: String, target: String, x: Int, y: Int)] {
        apMetrics.flatMap { m in Aggregation.targets.map { t in (m, t, correlated.firstIndex(of: m)!, correlated.firstIndex(of: t)!) } }
    }

    /// Means over the trials listed in `picks` (with repetition) of every correlated quantity at
    /// each of `epochs`; NaN where no picked trial has a finite value.
    func means(_ c: Int, picks: [Int], epochs: [Int]) -> [[Double]] {
        let width = correlated.count
        var sums = Array(repeating: Array(repeating: 0.0, count: width), count: epochs.count)
        var counts = sums
        for k in picks {
            let t = trials[c][k]
            for (p, e) in epochs.enumerated() {
                let i = t.row(e)
                guard i >= 0 else { continue }
                let row = t.values[i]
                for q in 0..<width {
                    let v = row[q]
                    if v.isFinite { sums[p][q] += v; counts[p][q] += 1 }
                }
            }
        }
        for p in sums.indices { for q in sums[p].indices { sums[p][q] = counts[p][q] > 0 ? sums[p][q] / counts[p][q] : .nan } }
        return sums
    }

    /// Coefficients of every pair × method on the series `x[i][q]` (rows are points).
    func coefficients(_ rows: [[Double]]) -> [Double] {
        var out: [Double] = []
        for p in pairs {
            let pts = rows.filter { $0[p.x].isFinite && $0[p.y].isFinite }
            for m in Correlation.allCases { out.append(pts.count >= 3 ? m.coefficient(pts.map { $0[p.x] }, pts.map { $0[p.y] }) : .nan) }
        }
        return out
    }

    func results(scope: String, estimates: [Double], distributions: [[Double]], points: [Int], method: String) -> [CorrelationResult] {
        var out: [CorrelationResult] = []
        var j = 0
        for (pi, p) in pairs.enumerated() {
            for m in Correlation.allCases {
                out.append(CorrelationResult(metric: p.metric, target: p.target, method: m, scope: scope, value: estimates[j],
                                             interval: points[pi] >= 3 ? Bootstrap.percentile(distributions[j], method: method) : .undefined,
                                             points: points[pi]))
                j += 1
            }
        }
        return out
    }

    /// Per configuration, across its fine-tuning epochs (t ≥ 1) of the trial means; the interval
    /// resamples the configuration's trials.
    public func correlationsAcrossEpochs(_ c: Int) -> [CorrelationResult] {
        let epochs = epochSlots[c].filter { $0 >= 1 }
        let rows = means(c, picks: Array(trials[c].indices), epochs: epochs)
        let estimates = coefficients(rows)
        let n = trials[c].count
        let points = pairs.map { p in rows.filter { $0[p.x].isFinite && $0[p.y].isFinite }.count }
        guard n >= 2, !epochs.isEmpty else {
            return results(scope: "epochs: \(configurations[c].label)", estimates: estimates, distributions: estimates.map { _ in [] }, points: points, method: "none")
        }
        let cost = max(1, n * epochs.count * correlated.count)
        let b = max(100, min(resamples, Aggregation.perConfigurationBudget / cost))
        let all = Array(trials[c].indices)
        let dist = Bootstrap.distributions(resamples: b, seed: seed &+ UInt64(c) &* 31, statistics: estimates.count) { rng in
            let picks = all.map { _ in all[rng.below(all.count)] }
            return self.coefficients(self.means(c, picks: picks, epochs: epochs))
        }
        return results(scope: "epochs: \(configurations[c].label)", estimates: estimates, distributions: dist, points: points,
                       method: "bootstrap over the configuration's \(n) trials, B=\(b)")
    }

    /// Across configurations at one epoch (configuration means over trials); the interval
    /// resamples configurations and, within each, its trials.
    public func correlationsAcrossConfigurations(epoch: Int, scope: String) -> [CorrelationResult] {
        let cs = configurations.indices.filter { epochSlots[$0].contains(epoch) && !trials[$0].isEmpty }
        let rows = cs.map { means($0, picks: Array(trials[$0].indices), epochs: [epoch])[0] }
        let estimates = coefficients(rows)
        let points = pairs.map { p in rows.filter { $0[p.x].isFinite && $0[p.y].isFinite }.count }
        guard cs.count >= 3 else {
            return results(scope: scope, estimates: estimates, distributions: estimates.map { _ in [] }, points: points, method: "none")
        }
        // Each trial's row at this epoch, looked up once (the resamples only pick among them).
        let width = correlated.count
        let rowsAt: [[Aggregation.Rows.Row]] = cs.map { c in trials[c].compactMap { t in t.row(epoch) >= 0 ? t.values[t.row(epoch)] : nil } }
        let dist = Bootstrap.distributions(resamples: resamples, seed: seed &+ UInt64(epoch) &* 131 &+ 17, statistics: estimates.count) { rng in
            let resampled = cs.indices.map { _ -> [Double] in
                let trialRows = rowsAt[rng.below(cs.count)]
                guard !trialRows.isEmpty else { return [Double](repeating: .nan, count: width) }
                var sums = [Double](repeating: 0, count: width), counts = [Double](repeating: 0, count: width)
                for _ in trialRows.indices {
                    let row = trialRows[rng.below(trialRows.count)]
                    for q in 0..<width where row[q].isFinite { sums[q] += row[q]; counts[q] += 1 }
                }
                return (0..<width).map { counts[$0] > 0 ? sums[$0] / counts[$0] : .nan }
            }
            return self.coefficients(resampled)
        }
        return results(scope: scope, estimates: estimates, distributions: dist, points: points,
                       method: "bootstrap over \(cs.count) configurations and their trials, B=\(resamples)")
    }

    /// Every (trial, epoch) point of every configuration. Points of one trial are not independent,
    /// so the interval resamples trials (clusters): a bootstrap up to `pooledBootstrapPoints`
    /// points, beyond it a grouped jackknife on the Fisher-z scale (trials dealt into
    /// `jackknifeGroups` groups; 21 coefficients per pair instead of B).
    public func pooledCorrelations(metrics only: [String]? = nil, methods: [Correlation] = Correlation.allCases) -> [CorrelationResult] {
        let clusters: [Aggregation.Rows] = configurations.indices.flatMap { c in trials[c].map(\.values) }
        let chosen = pairs.filter { only == nil || only!.contains($0.metric) }
        @Sendable func coefficientsOf(_ picks: [Int]) -> [Double] {
            var out: [Double] = []
            for p in chosen {
                var xs: [Double] = [], ys: [Double] = []
                for k in picks { for row in clusters[k] where row[p.x].isFinite && row[p.y].isFinite { xs.append(row[p.x]); ys.append(row[p.y]) } }
                for m in methods { out.append(xs.count >= 3 ? m.coefficient(xs, ys) : .nan) }
            }
            return out
        }
        let all = Array(clusters.indices)
        let estimates = coefficientsOf(all)
        let points = chosen.map { p in clusters.reduce(0) { $0 + $1.filter { $0[p.x].isFinite && $0[p.y].isFinite }.count } }
        var intervals: [Interval]
        let total = points.max() ?? 0
        if all.count < 3 {
            intervals = estimates.map { _ in .undefined }
        } else if total <= Aggregation.pooledBootstrapPoints {
            let dist = Bootstrap.distributions(resamples: resamples, seed: seed &+ 991, statistics: estimates.count) { rng in
                coefficientsOf(all.map { _ in all[rng.below(all.count)] })
            }
            intervals = dist.map { Bootstrap.percentile($0, method: "bootstrap over \(all.count) trials, B=\(resamples)") }
        } else {
            let g = min(Aggregation.jackknifeGroups, all.count)
            let slots = UnsafeMutablePointer<[Double]>.allocate(capacity: g)
            slots.initialize(repeating: [], count: g)
            defer { slots.deinitialize(count: g); slots.deallocate() }
            let shared = UnsafeMutableSendablePointer(slots)
            DispatchQueue.concurrentPerform(iterations: g) { group in
                shared.pointer[group] = coefficientsOf(all.filter { $0 % g != group })
            }
            let leaveOut = Array(UnsafeBufferPointer(start: slots, count: g))
            intervals = estimates.indices.map { j in
                let z = leaveOut.map { atanh(max(-0.999999, min(0.999999, $0[j]))) }.filter(\.isFinite)
                guard z.count == g else { return .undefined }
                let mean = z.reduce(0, +) / Double(g)
                let se = (Double(g - 1) / Double(g) * z.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }).squareRoot()
                let center = atanh(max(-0.999999, min(0.999999, estimates[j])))
                let h = tQuantile975(g - 1) * se
                return Interval(low: tanh(center - h), high: tanh(center + h), method: "grouped jackknife over \(all.count) trials in \(g) groups (Fisher z)")
            }
        }
        var out: [CorrelationResult] = []
        var j = 0
        for (pi, p) in chosen.enumerated() {
            for m in methods {
                out.append(CorrelationResult(metric: p.metric, target: p.target, method: m, scope: "pooled", value: estimates[j],
                                             interval: intervals[j], points: points[pi]))
                j += 1
            }
        }
        return out
    }

    /// Every correlation the report shows: per configuration across epochs, across
    /// configurations at epoch 0 and at the final epoch, and pooled.
    public func correlations() -> [CorrelationResult] {
        var out: [CorrelationResult] = []
        for c in configurations.indices { out += correlationsAcrossEpochs(c) }
        out += correlationsAcrossConfigurations(epoch: 0, scope: "configurations at epoch 0")
        if let final = finalEpoch { out += correlationsAcrossConfigurations(epoch: final, scope: "configurations at final epoch") }
        out += pooledCorrelations()
        return out
    }

    /// The few correlations `apsweep status` shows: AP2 and the main AP3 against PD_test, pooled
    /// and across configurations at the final epoch, Spearman and Kendall.
    public func headline() -> [CorrelationResult] {
        let metrics = ["ap2"] + (ap3.map { [$0] } ?? [])
        let keep = { (r: CorrelationResult) in metrics.contains(r.metric) && r.target == "pd_test" && r.method != .pearson }
        var out = pooledCorrelations(metrics: metrics, methods: [.spearman, .kendall]).filter(keep)
        if let final = finalEpoch { out += correlationsAcrossConfigurations(epoch: final, scope: "final epoch").filter(keep) }
        return out
    }
}
