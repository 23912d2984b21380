import Foundation

/// Maps a data interval onto a pixel interval, and proposes tick positions.
public protocol Scale {
    /// The pixel position of `value`, or nil when the value cannot be shown (NaN, ±∞, ≤ 0 on a log scale).
    func position(_ value: Double) -> Double?
    /// Tick values inside the domain, in increasing order.
    func ticks() -> [Double]
}

/// value ↦ range.lower + (value − domain.lower)/(domain width)·(range width). A zero-width domain is
/// widened by one unit around its value so that a single point sits in the middle.
public struct LinearScale: Scale {
    public let domain: ClosedRange<Double>
    /// Pixel positions of the domain's lower and upper ends (either order: y axes grow upwards).
    public let range: (from: Double, to: Double)

    public init(domain: ClosedRange<Double>, range: (Double, Double)) {
        self.domain = domain.lowerBound == domain.upperBound ? (domain.lowerBound - 1)...(domain.upperBound + 1) : domain
        self.range = range
    }

    public func position(_ value: Double) -> Double? {
        guard value.isFinite else { return nil }
        return range.from + (value - domain.lowerBound) / (domain.upperBound - domain.lowerBound) * (range.to - range.from)
    }

    /// Steps of 1, 2 or 5 × 10ᵏ giving about five ticks.
    public func ticks() -> [Double] {
        let span = domain.upperBound - domain.lowerBound
        let raw = span / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        var ticks: [Double] = []
        var k = ceil(domain.lowerBound / step)
        while k * step <= domain.upperBound + step * 1e-9 {
            // k·step rounded to 12 significant digits: 3 × 0.2 is 0.6, not 0.6000000000000001.
            ticks.append(k == 0 ? 0 : Double(String(format: "%.12g", k * step))!)
            k += 1
        }
        return ticks
    }
}

/// log₁₀ scale for positive values. Ticks at every power of ten in the domain, plus 2× and 5×
/// when the domain spans fewer than two decades.
public struct LogScale: Scale {
    public let domain: ClosedRange<Double>
    /// Pixel positions of the domain's lower and upper ends (either order: y axes grow upwards).
    public let range: (from: Double, to: Double)

    /// `domain` must be positive; a zero-width domain is widened to a decade around its value.
    public init(domain: ClosedRange<Double>, range: (Double, Double)) {
        precondition(domain.lowerBound > 0, "a log scale needs a positive domain")
        self.domain = domain.lowerBound == domain.upperBound ? (domain.lowerBound / sqrt(10))...(domain.upperBound * sqrt(10)) : domain
        self.range = range
    }

    public func position(_ value: Double) -> Double? {
        guard value.isFinite, value > 0 else { return nil }
        let (a, b) = (log10(domain.lowerBound), log10(domain.upperBound))
        return range.from + (log10(value) - a) / (b - a) * (range.to - range.from)
    }

    public func ticks() -> [Double] {
        let lo = floor(log10(domain.lowerBound)), hi = ceil(log10(domain.upperBound))
        let multiples: [Double] = log10(domain.upperBound / domain.lowerBound) < 2 ? [1, 2, 5] : [1]
        var ticks: [Double] = []
        var e = lo
        while e <= hi {
            for m in multiples {
                let t = m * pow(10, e)
                if t >= domain.lowerBound * (1 - 1e-9) && t <= domain.upperBound * (1 + 1e-9) { ticks.append(t) }
            }
            e += 1
        }
        return ticks
    }
}

/// A tick label: short, without trailing zeros; powers of ten as 10^k beyond 1e±4.
public func tickLabel(_ v: Double) -> String {
    if v == 0 { return "0" }
    let a = abs(v)
    if a >= 1e4 || a < 1e-3 {
        let e = log10(a)
        if e == e.rounded() { return (v < 0 ? "−" : "") + "10^\(Int(e))" }
        return String(format: "%.1e", v)
    }
    var s = String(format: "%.4f", v)
    while s.contains(".") && (s.hasSuffix("0") || s.hasSuffix(".")) { s.removeLast() }
    return s
}
