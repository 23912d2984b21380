import Foundation

/// Rank and linear correlation of paired samples.
///
/// Costs: Pearson O(n); Spearman O(n log n) (one sort per variable); Kendall's τ-b O(n log n)
/// by Knight's algorithm (sort by x, then count discordant pairs as the swaps of a merge sort on
/// y). 2 million points take about a second for τ-b on this machine's cores.
public enum Correlation: String, CaseIterable, Sendable, Codable {
    case pearson, spearman, kendall

    /// The coefficient, or NaN when it is undefined (fewer than 2 points, or a constant series).
    public func coefficient(_ x: [Double], _ y: [Double]) -> Double {
        guard x.count == y.count else { return .nan }
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
        var mx = 0.0, my = 0.0
        for i in 0..<n { mx += x[i]; my += y[i] }
        mx /= Double(n); my /= Double(n)
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
        let order = x.indices.sorted { x[$0] < x[$1] || (x[$0] == x[$1] && $0 < $1) }
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

    /// Kendall's τ-b = (n_c − n_d) / √((n₀ − n₁)(n₀ − n₂)) with n₁, n₂ the pairs tied in x and in
    /// y, by Knight's O(n log n) algorithm (Knight 1966, "A computer method for calculating
    /// Kendall's tau with ungrouped data", JASA 61:436).
    public static func kendallTauB(_ x: [Double], _ y: [Double]) -> Double {
        let n = x.count
        guard n >= 2 else { return .nan }
        // Sort by x, ties by y.
        let order = x.indices.sorted { x[$0] < x[$1] || (x[$0] == x[$1] && y[$0] < y[$1]) }
        var ys = order.map { y[$0] }
        let xs = order.map { x[$0] }
        let n0 = Double(n) * Double(n - 1) / 2
        // Pairs tied in x (n1) and in both x and y (n3).
        var n1 = 0.0, n3 = 0.0
        var i = 0
        while i < n {
            var j = i
            while j + 1 < n && xs[j + 1] == xs[i] { j += 1 }
            let run = Double(j - i + 1)
            n1 += run * (run - 1) / 2
            var k = i
            while k <= j {
                var m = k
                while m + 1 <= j && ys[m + 1] == ys[k] { m += 1 }
                let r = Double(m - k + 1)
                n3 += r * (r - 1) / 2
                k = m + 1
            }
            i = j + 1
        }
        // Swaps of a stable merge sort of y = discordant pairs (pairs tied in x are already in y order).
        var buffer = [Double](repeating: 0, count: n)
        let swaps = Double(mergeCountSwaps(&ys, &buffer))
        // Pairs tied in y (n2), from the sorted y.
        var n2 = 0.0
        i = 0
        while i < n {
            var j = i
            while j + 1 < n && ys[j + 1] == ys[i] { j += 1 }
            let run = Double(j - i + 1)
            n2 += run * (run - 1) / 2
            i = j + 1
        }
        let denominator = ((n0 - n1) * (n0 - n2)).squareRoot()
        guard denominator > 0 else { return .nan }
        // n_c − n_d = n0 − n1 − n2 + n3 − 2 · swaps.
        return max(-1, min(1, (n0 - n1 - n2 + n3 - 2 * swaps) / denominator))
    }

    /// Sorts `a` ascending (bottom-up merge sort) and returns the number of inversions.
    static func mergeCountSwaps(_ a: inout [Double], _ buffer: inout [Double]) -> Int {
        let n = a.count
        var swaps = 0
        var width = 1
        while width < n {
            var lo = 0
            while lo < n - width {
                let mid = lo + width, hi = min(lo + 2 * width, n)
                var i = lo, j = mid, k = lo
                while i < mid && j < hi {
                    if a[j] < a[i] {
                        buffer[k] = a[j]; j += 1
                        swaps += mid - i
                    } else {
                        buffer[k] = a[i]; i += 1
                    }
                    k += 1
                }
                while i < mid { buffer[k] = a[i]; i += 1; k += 1 }
                while j < hi { buffer[k] = a[j]; j += 1; k += 1 }
                for t in lo..<hi { a[t] = buffer[t] }
                lo += 2 * width
            }
            width *= 2
        }
        return swaps
    }
}

/// A confidence interval with the method that made it.
public struct Interval: Sendable, Equatable {
    public var low: Double
    public var high: Double
    /// "bootstrap(trials, B=1000)", "grouped jackknife (G=10)", …
    public var method: String
    public static let undefined = Interval(low: .nan, high: .nan, method: "none")
}

/// The percentile of sorted values (linear interpolation), NaN for none.
public func quantile(_ sorted: [Double], _ q: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let pos = q * Double(sorted.count - 1)
    let lo = Int(pos.rounded(.down)), hi = min(sorted.count - 1, lo + 1)
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - Double(lo))
}

/// Seeded bootstrap machinery. Each resample b draws from its own generator seeded by (seed, b),
/// so the result does not depend on how resamples are spread over threads.
public enum Bootstrap {
    /// The generator of resample `b`.
    static func generator(seed: UInt64, resample b: Int) -> SplitMix {
        SplitMix(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(b) &* 0xBF58_476D_1CE4_E5B9 &+ 1)
    }

    /// `statistic` on `resamples` resamples, computed over the machine's cores; NaN results are
    /// dropped. The values come back sorted.
    public static func distribution(resamples: Int, seed: UInt64, _ statistic: @Sendable (inout SplitMix) -> Double) -> [Double] {
        var values = [Double](repeating: .nan, count: resamples)
        let threads = max(1, min(ProcessInfo.processInfo.activeProcessorCount, resamples / 50 + 1))
        values.withUnsafeMutableBufferPointer { out in
            let base = UnsafeMutableSendablePointer(out.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                var b = t
                while b < resamples {
                    var rng = generator(seed: seed, resample: b)
                    base.pointer[b] = statistic(&rng)
                    b += threads
                }
            }
        }
        return values.filter { !$0.isNaN }.sorted()
    }

    /// The central `level` percentile interval of a sorted distribution (NaN when fewer than 20
    /// resamples gave a value).
    public static func percentile(_ sorted: [Double], level: Double = 0.95, method: String) -> Interval {
        guard sorted.count >= 20 else { return .undefined }
        return Interval(low: quantile(sorted, (1 - level) / 2), high: quantile(sorted, (1 + level) / 2), method: method)
    }

    /// Two-sided bootstrap p-value of the null `theta0`: twice the smaller tail, with the +1
    /// correction of Davison & Hinkley (1997, §4.4) so that it is never 0.
    public static func pValue(_ sorted: [Double], null theta0: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let below = sorted.filter { $0 <= theta0 }.count, above = sorted.filter { $0 >= theta0 }.count
        return min(1, 2 * Double(min(below, above) + 1) / Double(sorted.count + 1))
    }
}

/// SplitMix64: a small, fast, seedable generator for resampling.
public struct SplitMix: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in 0..<n.
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// A pointer that may cross into `concurrentPerform` (each thread writes its own indices).
struct UnsafeMutableSendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ p: UnsafeMutablePointer<T>) { pointer = p }
}
