import Foundation
import NeuralCore

/// How a layer's flat weight vector ω is projected to a distribution (the paper's map P).
public enum Projection: Sendable, Equatable, Codable {
    /// N(ω, σ²I) and N(ω̃, σ̃²I). σ̃² = σ² unless given.
    case gaussianIsotropic(sigma2: Double, prunedSigma2: Double?)
    /// N(ω, diag(s)) and N(ω̃, diag(s̃)), with s estimated from the original weights:
    /// per output row (the variance of each row of ω), or one value per layer. s̃ = s unless
    /// `separate` is true, when s̃ is estimated the same way from ω̃.
    case gaussianDiagonal(estimate: VarianceEstimate, separate: Bool)
    /// N(ω, diag(s)) and N(ω̃, diag(s̃)) with the variances given in safetensors files: one tensor
    /// per weight key, either of the weight's shape (one variance per weight) or [rows] (one per
    /// output row). s̃ = s unless `prunedPath` is given.
    case gaussianDiagonalGiven(path: String, prunedPath: String?)
    /// The authors' code's "gaussian" option: the Mahalanobis distance √(Δᵀ A Δ) with
    /// A = (0.001/√d)·I. Code-faithful; not a divergence.
    case mahalanobisCodeFaithful
    /// Chunk means under a multivariate Student-t (journal version), KL by Monte Carlo.
    case studentT(groups: Int, degreesOfFreedom: Double, samples: Int, repeats: Int, seed: UInt64)

    public enum VarianceEstimate: String, Sendable, Codable { case row, layer }
}

/// Per-layer sufficient statistics, accumulated in Float64 in one pass over ω and ω̃.
public struct PairStatistics: Sendable, Equatable {
    public var count = 0
    /// Σ Δ², Δ = ω̃ − ω.
    public var squaredDistance = 0.0
    /// Σ Δ²/s̃ (Gaussian quadratic form under Σ̃).
    public var quadraticForm = 0.0
    /// Σ (s/s̃ − 1 − ln(s/s̃)): the covariance part of KL(N(ω,Σ)‖N(ω̃,Σ̃)); 0 when Σ = Σ̃.
    public var covarianceTerm = 0.0
    /// Σ Δ²/s (quadratic form under Σ, for KL(P̃‖P)).
    public var reverseQuadraticForm = 0.0
    /// Σ (s̃/s − 1 − ln(s̃/s)).
    public var reverseCovarianceTerm = 0.0
    /// Σ (√s − √s̃)² (the covariance part of W2²).
    public var wassersteinCovariance = 0.0
    /// Σ [½ ln(2√(s s̃)/(s + s̃)) − ¼ Δ²/(s + s̃)]: ln of the Bhattacharyya coefficient.
    public var logBhattacharyya = 0.0

    public static func + (a: PairStatistics, b: PairStatistics) -> PairStatistics {
        var c = a
        c.count += b.count
        c.squaredDistance += b.squaredDistance
        c.quadraticForm += b.quadraticForm
        c.covarianceTerm += b.covarianceTerm
        c.reverseQuadraticForm += b.reverseQuadraticForm
        c.reverseCovarianceTerm += b.reverseCovarianceTerm
        c.wassersteinCovariance += b.wassersteinCovariance
        c.logBhattacharyya += b.logBhattacharyya
        return c
    }

    /// AP2 = ‖ω − ω̃‖².
    public var ap2: Double { squaredDistance }
    /// KL(N(ω, Σ) ‖ N(ω̃, Σ̃)) = ½[tr(Σ̃⁻¹Σ) + ΔᵀΣ̃⁻¹Δ − d + ln det Σ̃ − ln det Σ].
    public var klGaussian: Double { 0.5 * (quadraticForm + covarianceTerm) }
    /// KL(N(ω̃, Σ̃) ‖ N(ω, Σ)).
    public var klGaussianReverse: Double { 0.5 * (reverseQuadraticForm + reverseCovarianceTerm) }
    /// KL both ways, summed.
    public var symmetricKL: Double { klGaussian + klGaussianReverse }
    /// 2-Wasserstein distance between diagonal Gaussians: √(‖Δ‖² + Σ(√s − √s̃)²).
    public var wasserstein2: Double { (squaredDistance + wassersteinCovariance).squareRoot() }
    /// Hellinger distance √(1 − BC), in [0, 1]; it saturates at 1 for distant high-dimensional
    /// Gaussians (BC underflows), which is the closed form's truth, not an error.
    public var hellinger: Double { let v = -expm1(logBhattacharyya); return v > 0 ? v.squareRoot() : 0 }
    /// The authors' code-faithful Mahalanobis distance √((0.001/√d)·‖Δ‖²).
    public var mahalanobisCodeFaithful: Double { count == 0 ? 0 : (0.001 / Double(count).squareRoot() * squaredDistance).squareRoot() }
}

/// Streams over two weight tensors of the same shape and accumulates `PairStatistics` for a
/// projection (Gaussian projections; Student-t is estimated separately).
///
/// Never builds a d×d matrix: all covariances here are diagonal. Sums are Float64 (each block of
/// 8 elements is widened to Float64 before adding), so relative error stays near 1e-15·√d.
public enum PairAccumulator {
    public static func statistics(original: Tensor, pruned: Tensor, projection: Projection) throws -> PairStatistics {
        guard original.shape == pruned.shape else {
            throw CompressionError.invalid("weights of shapes \(describeShape(original.shape)) and \(describeShape(pruned.shape)) cannot be compared")
        }
        switch projection {
        case let .gaussianIsotropic(s2, prunedS2):
            let s = s2, t = prunedS2 ?? s2
            guard s > 0, t > 0 else { throw CompressionError.invalid("σ² must be positive") }
            let sq = squaredDistance(original, pruned)
            var stats = PairStatistics()
            stats.count = original.count
            stats.squaredDistance = sq
            stats.quadraticForm = sq / t
            stats.reverseQuadraticForm = sq / s
            let d = Double(original.count)
            stats.covarianceTerm = d * (s / t - 1 - log(s / t))
            stats.reverseCovarianceTerm = d * (t / s - 1 - log(t / s))
            stats.wassersteinCovariance = d * pow(s.squareRoot() - t.squareRoot(), 2)
            stats.logBhattacharyya = d * 0.5 * log(2 * (s * t).squareRoot() / (s + t)) - 0.25 * sq / (s + t)
            return stats
        case let .gaussianDiagonal(estimate, separate):
            let rows = estimate == .row ? (original.rank >= 1 ? original.shape[0] : 1) : 1
            let s = variances(original, groups: rows)
            let t = separate ? variances(pruned, groups: rows) : s
            return diagonalStatistics(original, pruned, s, t)
        case .gaussianDiagonalGiven:
            throw CompressionError.invalid("given variances need the layer's key: use NetworkMetrics.compute")
        case .mahalanobisCodeFaithful, .studentT:
            var stats = PairStatistics()
            stats.count = original.count
            stats.squaredDistance = squaredDistance(original, pruned)
            return stats
        }
    }

    /// ‖a − b‖² in Float64.
    public static func squaredDistance(_ a: Tensor, _ b: Tensor) -> Double {
        a.withPointer { ap in b.withPointer { bp in squaredDistance(ap, bp, a.count) } }
    }

    /// ‖a − b‖² over n elements in Float64, 8 lanes at a time.
    public static func squaredDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Double {
        var acc = SIMD8<Double>(repeating: 0)
        var i = 0
        while i + 8 <= n {
            let x = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
            let y = UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
            let d = SIMD8<Double>(x) - SIMD8<Double>(y)
            acc += d * d
            i += 8
        }
        var s = acc.sum()
        while i < n { let d = Double(a[i]) - Double(b[i]); s += d * d; i += 1 }
        return s
    }

    /// The population variance of each of `groups` equal contiguous parts (rows), floored at
    /// 1e-12 so that a constant (e.g. fully pruned) row does not divide by zero.
    static func variances(_ t: Tensor, groups: Int) -> [Double] {
        let per = t.count / max(1, groups)
        return (0..<groups).map { g in
            var s = 0.0, s2 = 0.0
            for i in (g * per)..<((g + 1) * per) { let v = Double(t.scalars[i]); s += v; s2 += v * v }
            let m = s / Double(per)
            return max(1e-12, s2 / Double(per) - m * m)
        }
    }

    /// Variances for `key` from a given-variance file: per weight or per row, checked against the
    /// weight's shape; every variance must be positive.
    static func givenVariances(_ file: [String: Tensor], key: String, weight: Tensor, path: String) throws -> [Double] {
        guard let v = file[key] else { throw CompressionError.invalid("\(path) has no variances for '\(key)'") }
        let rows = weight.rank >= 1 ? weight.shape[0] : 1
        guard v.shape == weight.shape || v.count == rows else {
            throw CompressionError.invalid("\(path): variances for '\(key)' have shape \(describeShape(v.shape)); expected \(describeShape(weight.shape)) or [\(rows)]")
        }
        guard v.scalars.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw CompressionError.invalid("\(path): variances for '\(key)' must be positive and finite") }
        return v.scalars.map(Double.init)
    }

    static func diagonalStatistics(_ a: Tensor, _ b: Tensor, _ s: [Double], _ t: [Double]) -> PairStatistics {
        var stats = PairStatistics()
        stats.count = a.count
        let per = a.count / s.count
        a.withPointer { ap in
            b.withPointer { bp in
                for g in 0..<s.count {
                    let sq = squaredDistance(ap + g * per, bp + g * per, per)
                    let (sg, tg, n) = (s[g], t[g], Double(per))
                    stats.squaredDistance += sq
                    stats.quadraticForm += sq / tg
                    stats.reverseQuadraticForm += sq / sg
                    stats.covarianceTerm += n * (sg / tg - 1 - log(sg / tg))
                    stats.reverseCovarianceTerm += n * (tg / sg - 1 - log(tg / sg))
                    stats.wassersteinCovariance += n * pow(sg.squareRoot() - tg.squareRoot(), 2)
                    stats.logBhattacharyya += n * 0.5 * log(2 * (sg * tg).squareRoot() / (sg + tg)) - 0.25 * sq / (sg + tg)
                }
            }
        }
        return stats
    }
}
