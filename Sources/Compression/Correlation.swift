import Foundation
import NeuralCore

/// Rank and linear correlation of paired samples, with seeded bootstrap confidence intervals.
public enum Correlation: String, CaseIterable, Sendable, Codable {
    case pearson, spearman, kendall

    /// The coefficient, or NaN when it is undefined (fewer than 2 points, or a constant series).
    public func coefficient(_ x: [Double], _ y: [Double]) -> Double {
        precondition(x.count == y.count, "paired samples of different lengths")
        switch self {
        case .pearson: return Correlation.pearsonR(x, y)
        case .spearman: return Correlation.pearsonR(Correlation.ranks(x), Correlation.ranks(y))
        case .kendall: return Correlation.kendallTauB(x, y)
        }
    }

    /// Pearson's r, sums in Float64 around the means.
    static func pearsonR(_ x: [Double], _ y: [Double]) -> Double {
        let n = x.count
        guard n >= 2 else { return .nan }
        let mx = x.reduce(0, +) / Double(n), my = y.reduce(0, +) / Double(n)
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for i in 0..<n {
            let dx = x[i] - mx, dy = y[i] - my
            sxy += dx * dy; sxx += dx * dx; syy += dy * dy
        }
        guard sxx > 0, syy > 0 else { return .nan }
        return max(-1, min(1, sxy / (sxx * syy).squareRoot()))
    }

    /// Ranks 1…n with ties given the average of the ranks they span (SciPy's "average").
    public static func ranks(_ x: [Double]) -> [Double] {
        let order = x.indices.sorted { x[$0] < x[$1] }
        var r = [Double](repeating: 0, count: x.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && x[order[j + 1]] == x[order[i]] { j += 1 }
            let average = Double(i + j) / 2 + 1
            for k in i...j { r[order[k]] = average }
            i = j + 1
        }
        return r
    }

    /// Kendall's τ-b: (concordant − discordant)/√((n₀ − n₁)(n₀ − n₂)), ties in x (n₁) and in y (n₂)
    /// discounted; O(n²), for the few hundred points a sweep has.
    static func kendallTauB(_ x: [Double], _ y: [Double]) -> Double {
        let n = x.count
        guard n >= 2 else { return .nan }
        var concordant = 0.0, discordant = 0.0, tieX = 0.0, tieY = 0.0
        for i in 0..<n {
            for j in (i + 1)..<n {
                let dx = x[i] - x[j], dy = y[i] - y[j]
                if dx == 0 && dy == 0 { continue }
                if dx == 0 { tieX += 1; continue }
                if dy == 0 { tieY += 1; continue }
                if (dx > 0) == (dy > 0) { concordant += 1 } else { discordant += 1 }
            }
        }
        let denom = ((concordant + discordant + tieX) * (concordant + discordant + tieY)).squareRoot()
        return denom > 0 ? (concordant - discordant) / denom : .nan
    }

    /// A percentile bootstrap interval: `resamples` resamplings of the pairs with replacement from
    /// `seed`, the `level` central interval of the coefficients (undefined resamples skipped).
    public func bootstrapInterval(_ x: [Double], _ y: [Double], resamples: Int = 2000, level: Double = 0.95,
                                  seed: UInt64 = 0) -> (low: Double, high: Double) {
        let n = x.count
        guard n >= 3 else { return (.nan, .nan) }
        var rng = SeededGenerator(seed: seed)
        var values: [Double] = []
        values.reserveCapacity(resamples)
        var bx = [Double](repeating: 0, count: n), by = bx
        for _ in 0..<resamples {
            for i in 0..<n {
                let j = Int(rng.next() % UInt64(n))
                bx[i] = x[j]; by[i] = y[j]
            }
            let c = coefficient(bx, by)
            if !c.isNaN { values.append(c) }
        }
        guard values.count >= 10 else { return (.nan, .nan) }
        values.sort()
        func quantile(_ q: Double) -> Double {
            let pos = q * Double(values.count - 1)
            let lo = Int(pos.rounded(.down)), hi = min(values.count - 1, lo + 1)
            return values[lo] + (values[hi] - values[lo]) * (pos - Double(lo))
        }
        return (quantile((1 - level) / 2), quantile((1 + level) / 2))
    }
}
