import Foundation
import NeuralCore
import Records

/// One configured metric family, parsed from the CLI/sweep form, e.g. `gaussian:sigma2=1`,
/// `gaussian:sigma2=1,sigma2_pruned=2`, `gaussian-diag:estimate=row`, `gaussian-diag:estimate=row,separate`,
/// `mahalanobis-code`, `student-t:df=4,groups=100,samples=20000,repeats=10`.
///
/// Every Gaussian family yields AP3 (KL), and beyond the paper symmetric KL, 2-Wasserstein,
/// Hellinger and — for equal covariances — Jensen–Shannon (Monte Carlo).
public struct MetricVariant: Sendable, Equatable, Codable {
    public let projection: Projection
    /// The canonical text, used in column names: `ap3[gaussian:sigma2=1]`.
    public let id: String
    /// Draws for the Jensen–Shannon estimate of Gaussian families (0 turns it off).
    public var jsSamples = 20_000

    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        let kind = parts[0]
        var options: [String: String] = [:]
        var flags: Set<String> = []
        if parts.count > 1 {
            for item in parts[1].split(separator: ",") {
                let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
                if kv.count == 2 { options[kv[0]] = kv[1] } else { flags.insert(kv[0]) }
            }
        }
        func number(_ key: String, _ fallback: Double) throws -> Double {
            guard let t = options.removeValue(forKey: key) else { return fallback }
            guard let v = Double(t), v.isFinite else { throw CompressionError.invalid("\(text): \(key)=\(t) is not a number") }
            return v
        }
        func done() throws {
            let left = Array(options.keys) + Array(flags)
            if !left.isEmpty { throw CompressionError.invalid("\(text): unknown option \(left.sorted().joined(separator: ", ")) for \(kind)") }
        }
        switch kind {
        case "gaussian":
            let s = try number("sigma2", 1)
            let t = options["sigma2_pruned"] != nil ? try number("sigma2_pruned", s) : nil
            try done()
            guard s > 0, (t ?? 1) > 0 else { throw CompressionError.invalid("\(text): variances must be positive") }
            projection = .gaussianIsotropic(sigma2: s, prunedSigma2: t)
            id = "gaussian:sigma2=\(Self.format(s))" + (t.map { ",sigma2_pruned=\(Self.format($0))" } ?? "")
        case "gaussian-diag" where options["file"] != nil:
            let path = options.removeValue(forKey: "file")!, pruned = options.removeValue(forKey: "pruned_file")
            try done()
            projection = .gaussianDiagonalGiven(path: path, prunedPath: pruned)
            id = "gaussian-diag:file=\(path)" + (pruned.map { ",pruned_file=\($0)" } ?? "")
        case "gaussian-diag":
            let estimate = options.removeValue(forKey: "estimate") ?? "row"
            guard let e = Projection.VarianceEstimate(rawValue: estimate) else {
                throw CompressionError.invalid("\(text): estimate must be row or layer")
            }
            let separate = flags.remove("separate") != nil
            try done()
            projection = .gaussianDiagonal(estimate: e, separate: separate)
            id = "gaussian-diag:estimate=\(estimate)" + (separate ? ",separate" : "")
        case "mahalanobis-code":
            try done()
            projection = .mahalanobisCodeFaithful
            id = "mahalanobis-code"
        case "student-t":
            let df = try number("df", 4), groups = Int(try number("groups", 100))
            let samples = Int(try number("samples", 20_000)), repeats = Int(try number("repeats", 10))
            let seed = UInt64(try number("seed", 0))
            try done()
            guard df > 0, groups >= 1, samples >= 1, repeats >= 1 else {
                throw CompressionError.invalid("\(text): needs df > 0, groups ≥ 1, samples ≥ 1, repeats ≥ 1")
            }
            projection = .studentT(groups: groups, degreesOfFreedom: df, samples: samples, repeats: repeats, seed: seed)
            id = "student-t:df=\(Self.format(df)),groups=\(groups),samples=\(samples),repeats=\(repeats)"
        default:
            throw CompressionError.invalid("unknown metric '\(kind)': use gaussian, gaussian-diag, mahalanobis-code or student-t")
        }
    }

    static func format(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v) }

    var equalCovariance: Bool {
        switch projection {
        case let .gaussianIsotropic(s, t): return t == nil || t == s
        case let .gaussianDiagonal(_, separate): return !separate
        case let .gaussianDiagonalGiven(_, pruned): return pruned == nil
        default: return false
        }
    }
}

/// AP2, AP3 and the other divergences between an original and a pruned (or fine-tuned) network.
public enum NetworkMetrics {
    /// Per-layer metrics for every weight tensor in `keys` and the whole-network total (key
    /// "total"): KLs and AP2 add over layers (independent blocks), W2 adds in squares, Hellinger
    /// through the product of Bhattacharyya coefficients, JS from the total Mahalanobis distance,
    /// Student-t estimates add with standard errors in quadrature.
    public static func compute(original: [String: Tensor], pruned: [String: Tensor], keys: [String],
                               variants: [MetricVariant]) throws -> (layers: [MetricValues], total: MetricValues) {
        var layers: [MetricValues] = []
        var totals = Array(repeating: PairStatistics(), count: variants.count)
        var totalAP2 = 0.0
        var totalT: [Estimate] = Array(repeating: Estimate(value: 0, standardError: 0), count: variants.count)
        var files: [String: [String: Tensor]] = [:]
        func variances(_ path: String) throws -> [String: Tensor] {
            if let f = files[path] { return f }
            do {
                let f = try Safetensors.read(path: path).tensors.mapValues(\.tensor)
                files[path] = f
                return f
            } catch { throw CompressionError.invalid("cannot read the variance file: \(error)") }
        }
        for (layerIndex, key) in keys.enumerated() {
            guard let a = original[key] else { throw CompressionError.invalid("the original network has no weight '\(key)'") }
            guard let b = pruned[key] else { throw CompressionError.invalid("the compared network has no weight '\(key)'") }
            guard a.shape == b.shape else {
                throw CompressionError.invalid("weight '\(key)' has shape \(describeShape(a.shape)) in one network and \(describeShape(b.shape)) in the other: not the same architecture")
            }
            var values: [(String, Double)] = []
            let ap2 = PairAccumulator.squaredDistance(a, b)
            totalAP2 += ap2
            values.append(("ap2", ap2))
            for (v, variant) in variants.enumerated() {
                if case let .studentT(groups, nu, samples, repeats, seed) = variant.projection {
                    let e = try StudentTDivergence.kl(original: a, pruned: b, groups: groups, degreesOfFreedom: nu, samples: samples,
                                                      repeats: repeats, seed: seed &+ UInt64(layerIndex))
                    values += [("ap3[\(variant.id)]", e.value), ("ap3_se[\(variant.id)]", e.standardError)]
                    totalT[v].value += e.value
                    totalT[v].standardError = (totalT[v].standardError * totalT[v].standardError + e.standardError * e.standardError).squareRoot()
                    continue
                }
                let stats: PairStatistics
                if case let .gaussianDiagonalGiven(path, prunedPath) = variant.projection {
                    let s = try PairAccumulator.givenVariances(try variances(path), key: key, weight: a, path: path)
                    let t = try prunedPath.map { try PairAccumulator.givenVariances(try variances($0), key: key, weight: a, path: $0) } ?? s
                    guard s.count == t.count else { throw CompressionError.invalid("variances for '\(key)' have different layouts in the two files") }
                    stats = PairAccumulator.diagonalStatistics(a, b, s, t)
                } else {
                    stats = try PairAccumulator.statistics(original: a, pruned: b, projection: variant.projection)
                }
                totals[v] = totals[v] + stats
                values += derived(stats, variant, seed: UInt64(layerIndex))
            }
            layers.append(MetricValues(key: key, values: values))
        }
        var total: [(String, Double)] = [("ap2", totalAP2)]
        for (v, variant) in variants.enumerated() {
            if case .studentT = variant.projection {
                total += [("ap3[\(variant.id)]", totalT[v].value), ("ap3_se[\(variant.id)]", totalT[v].standardError)]
            } else {
                total += derived(totals[v], variant, seed: 1 << 32)
            }
        }
        return (layers, MetricValues(key: "total", values: total))
    }

    static func derived(_ s: PairStatistics, _ variant: MetricVariant, seed: UInt64) -> [(String, Double)] {
        let id = variant.id
        if case .mahalanobisCodeFaithful = variant.projection {
            return [("ap3[\(id)]", s.mahalanobisCodeFaithful)]
        }
        var out: [(String, Double)] = [("ap3[\(id)]", s.klGaussian), ("skl[\(id)]", s.symmetricKL),
                                       ("w2[\(id)]", s.wasserstein2), ("hellinger[\(id)]", s.hellinger)]
        if variant.equalCovariance && variant.jsSamples > 0 {
            let js = JensenShannon.gaussianEqualCovariance(mahalanobis: s.quadraticForm.squareRoot(), samples: variant.jsSamples, seed: seed)
            out += [("js[\(id)]", js.value), ("js_se[\(id)]", js.standardError)]
        }
        return out
    }
}
