import Foundation
import NeuralCore

/// Draws for the Monte Carlo estimators.
extension SeededGenerator {
    /// Gamma(shape, 1) by Marsaglia and Tsang (2000); shapes below 1 by Gamma(shape + 1)·U^(1/shape).
    mutating func nextGamma(shape: Double) -> Double {
        if shape < 1 {
            let u = 1 - nextUniformDouble()
            return nextGamma(shape: shape + 1) * pow(u, 1 / shape)
        }
        let d = shape - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double, v: Double
            repeat {
                x = nextNormal()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = 1 - nextUniformDouble()
            if log(u) < 0.5 * x * x + d - d * v + d * log(v) { return d * v }
        }
    }

    /// χ² with k degrees of freedom (2·Gamma(k/2)); 0 for k = 0.
    mutating func nextChiSquared(_ k: Double) -> Double { k <= 0 ? 0 : 2 * nextGamma(shape: k / 2) }
}

/// A Monte Carlo estimate with its standard error.
public struct Estimate: Sendable, Equatable {
    public var value: Double
    public var standardError: Double
}

/// AP3 under the chunk-mean multivariate Student-t projection (the journal version).
///
/// The flat vector is cut into chunks of ⌊d/groups⌋ elements (a short last chunk makes one more);
/// each chunk's mean is one coordinate of the location μ ∈ ℝᵍ. P = t_ν(μ, I), P̃ = t_ν(μ̃, I), and
/// KL(P‖P̃) = ((ν + g)/2)·E_{x∼P}[ln(1 + ‖x − μ̃‖²/ν) − ln(1 + ‖x − μ‖²/ν)].
///
/// Sampling x = μ + z·√(ν/u), z ∼ N(0, I_g), u ∼ χ²_ν, only ‖z‖² and zᵀδ (δ = μ − μ̃) matter; writing
/// z = a·δ/‖δ‖ + z⊥ gives them exactly from a ∼ N(0, 1) and ‖z⊥‖² ∼ χ²_{g−1}, so each sample costs
/// O(1) whatever g is. Because both distributions share ν and scale, KL(P‖P̃) = KL(P̃‖P): sampling
/// from P, as here, or from P̃, as the authors' code does, estimates the same number.
public enum StudentTDivergence {
    /// The chunk means of `weights` for `groups` groups.
    public static func chunkMeans(_ weights: Tensor, groups: Int) -> [Double] {
        let d = weights.count
        let size = max(1, d / max(1, groups))
        var means: [Double] = []
        var start = 0
        weights.withPointer { p in
            while start < d {
                let end = min(d, start + size)
                means.append(vectorSum(p + start, end - start) / Double(end - start))
                start = end
            }
        }
        return means
    }

    /// The estimate over `repeats` × `samples` draws; the standard error is the spread of the
    /// repeat means / √repeats (or of single draws when `repeats` is 1).
    public static func kl(original: Tensor, pruned: Tensor, groups: Int, degreesOfFreedom nu: Double,
                          samples: Int, repeats: Int, seed: UInt64) throws -> Estimate {
        guard original.shape == pruned.shape else { throw CompressionError.invalid("weights of different shapes cannot be compared") }
        guard groups >= 1, nu > 0, samples >= 1, repeats >= 1 else {
            throw CompressionError.invalid("student-t needs groups ≥ 1, df > 0, samples ≥ 1, repeats ≥ 1")
        }
        let mu = chunkMeans(original, groups: groups), muPruned = chunkMeans(pruned, groups: groups)
        let g = Double(mu.count)
        var dd = 0.0
        for i in 0..<mu.count { let t = mu[i] - muPruned[i]; dd += t * t }
        let delta = dd.squareRoot()
        if delta == 0 { return Estimate(value: 0, standardError: 0) }
        var rng = SeededGenerator(seed: seed)
        var repeatMeans: [Double] = [], all = 0.0, allSq = 0.0
        let factor = (nu + g) / 2
        for _ in 0..<repeats {
            var sum = 0.0
            for _ in 0..<samples {
                let a = rng.nextNormal()
                let rest = rng.nextChiSquared(g - 1)
                let scale2 = nu / max(rng.nextChiSquared(nu), 1e-300)
                let y2 = scale2 * (a * a + rest)                    // ‖x − μ‖²
                let shifted = y2 + 2 * scale2.squareRoot() * a * delta + dd   // ‖x − μ̃‖²
                let term = factor * (log1p(shifted / nu) - log1p(y2 / nu))
                sum += term
                all += term
                allSq += term * term
            }
            repeatMeans.append(sum / Double(samples))
        }
        let n = Double(samples * repeats)
        let mean = all / n
        let se: Double
        if repeats >= 2 {
            let m = repeatMeans.reduce(0, +) / Double(repeats)
            let v = repeatMeans.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(repeats - 1)
            se = (v / Double(repeats)).squareRoot()
        } else {
            se = (max(0, allSq / n - mean * mean) / n).squareRoot()
        }
        return Estimate(value: mean, standardError: se)
    }
}

/// Jensen–Shannon divergence (nats, in [0, ln 2]) between two Gaussians with the same covariance.
///
/// Whitening and rotating reduce it exactly to N(0, 1) against N(δ, 1) in one dimension, with δ the
/// Mahalanobis distance √(ΔᵀΣ⁻¹Δ); by symmetry JS = E_{x∼N(0,1)}[ln 2 − ln(1 + e^{δx − δ²/2})],
/// estimated with `samples` seeded draws.
public enum JensenShannon {
    public static func gaussianEqualCovariance(mahalanobis delta: Double, samples: Int, seed: UInt64) -> Estimate {
        if delta == 0 { return Estimate(value: 0, standardError: 0) }
        var rng = SeededGenerator(seed: seed)
        var s = 0.0, s2 = 0.0
        for _ in 0..<samples {
            let t = delta * rng.nextNormal() - delta * delta / 2
            let softplus = t > 30 ? t : log1p(exp(t))
            let v = log(2.0) - softplus
            s += v
            s2 += v * v
        }
        let n = Double(samples), mean = s / n
        return Estimate(value: mean, standardError: (max(0, s2 / n - mean * mean) / n).squareRoot())
    }
}
