import Foundation

/// Colour-blind-safe colours (Okabe & Ito, 2008), in order of use.
public let okabeIto = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

/// Escapes text for XML/SVG.
public func xmlEscape(_ s: String) -> String {
    var out = ""
    for c in s {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        default: out.append(c)
        }
    }
    return out
}

/// One line of a chart: points (x, y), an optional band (x, low, high), a colour and a dash.
public struct Series: Sendable {
    public var name: String
    public var points: [(x: Double, y: Double)]
    public var band: [(x: Double, low: Double, high: Double)]
    public var color: String
    public var dashed: Bool
    public init(name: String, points: [(x: Double, y: Double)], band: [(x: Double, low: Double, high: Double)] = [], color: String, dashed: Bool = false) {
        self.name = name; self.points = points; self.band = band; self.color = color; self.dashed = dashed
    }
}

/// A rendered chart and what could not be drawn.
public struct Rendered: Sendable {
    public var svg: String
    /// Points left out (NaN, ±∞, or ≤ 0 on a log axis), by series: shown as gaps, reported here.
    public var omitted: [String: Int]
}

/// A line chart with optional log-scale y, legend, axis labels and bands (mean ± spread).
public struct LineChart {
    public var title: String, xLabel: String, yLabel: String
    public var logY: Bool
    public var series: [Series]
    public var width = 520.0, height = 340.0

    public init(title: String, xLabel: String, yLabel: String, logY: Bool = false, series: [Series]) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.logY = logY; self.series = series
    }

    func drawable(_ v: Double) -> Bool { v.isFinite && (!logY || v > 0) }

    public func render() -> Rendered {
        let (left, right, top, bottom) = (64.0, width - 150, 34.0, height - 48)
        var omitted: [String: Int] = [:]
        let xs = series.flatMap { $0.points.map(\.x) }.filter(\.isFinite)
        let ys = series.flatMap { s in s.points.map(\.y) + s.band.flatMap { [$0.low, $0.high] } }.filter(drawable)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" data-series=\"\(series.count)\">"
        svg += "<title>\(xmlEscape(title))</title>"
        svg += "<text x=\"\(Int(width / 2 - 75))\" y=\"18\" text-anchor=\"middle\" class=\"chart-title\">\(xmlEscape(title))</text>"
        guard let xMin = xs.min(), let xMax = xs.max(), let yMin = ys.min(), let yMax = ys.max() else {
            for s in series { omitted[s.name] = s.points.count }
            svg += "<text x=\"\(Int(width / 2))\" y=\"\(Int(height / 2))\" text-anchor=\"middle\" class=\"empty\">no data to plot</text></svg>"
            return Rendered(svg: svg, omitted: omitted)
        }
        let xScale = LinearScale(domain: xMin...xMax, range: (left, right))
        let yScale: Scale = logY ? LogScale(domain: yMin...yMax, range: (bottom, top)) : LinearScale(domain: min(yMin, 0)...yMax, range: (bottom, top))
        // Axes, ticks, grid and labels.
        svg += "<g class=\"axes\" stroke=\"#444\" fill=\"none\"><line x1=\"\(left)\" y1=\"\(bottom)\" x2=\"\(right)\" y2=\"\(bottom)\"/><line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(bottom)\"/></g>"
        for t in xScale.ticks() {
            guard let x = xScale.position(t) else { continue }
            svg += "<line x1=\"\(fmt(x))\" y1=\"\(bottom)\" x2=\"\(fmt(x))\" y2=\"\(bottom + 5)\" stroke=\"#444\"/><text x=\"\(fmt(x))\" y=\"\(bottom + 18)\" text-anchor=\"middle\" class=\"tick\">\(xmlEscape(tickLabel(t)))</text>"
        }
        for t in yScale.ticks() {
            guard let y = yScale.position(t) else { continue }
            svg += "<line x1=\"\(left)\" y1=\"\(fmt(y))\" x2=\"\(right)\" y2=\"\(fmt(y))\" stroke=\"#ddd\"/><text x=\"\(left - 6)\" y=\"\(fmt(y + 4))\" text-anchor=\"end\" class=\"tick\">\(xmlEscape(tickLabel(t)))</text>"
        }
        svg += "<text x=\"\(fmt((left + right) / 2))\" y=\"\(height - 10)\" text-anchor=\"middle\" class=\"axis-label\">\(xmlEscape(xLabel))</text>"
        svg += "<text transform=\"translate(16 \(fmt((top + bottom) / 2))) rotate(-90)\" text-anchor=\"middle\" class=\"axis-label\">\(xmlEscape(yLabel + (logY ? " (log scale)" : "")))</text>"
        // Bands, then lines split at undrawable points.
        for s in series where !s.band.isEmpty {
            for segment in split(s.band.map { ($0.x, $0.low, $0.high) }, drawable: { drawable($0.1) && drawable($0.2) && $0.0.isFinite }) {
                let upper = segment.compactMap { p in xScale.position(p.0).flatMap { x in yScale.position(p.2).map { "\(fmt(x)),\(fmt($0))" } } }
                let lower = segment.reversed().compactMap { p in xScale.position(p.0).flatMap { x in yScale.position(p.1).map { "\(fmt(x)),\(fmt($0))" } } }
                svg += "<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"\(s.color)\" fill-opacity=\"0.15\" stroke=\"none\"/>"
            }
        }
        for s in series {
            let bad = s.points.filter { !($0.x.isFinite && drawable($0.y)) }.count
            if bad > 0 { omitted[s.name] = bad }
            let drawn = s.points.count - bad
            svg += "<g class=\"series\" data-name=\"\(xmlEscape(s.name))\" data-points=\"\(drawn)\">"
            for segment in split(s.points.map { ($0.x, $0.y) }, drawable: { $0.0.isFinite && drawable($0.1) }) {
                let coords = segment.compactMap { p in xScale.position(p.0).flatMap { x in yScale.position(p.1).map { (x, $0) } } }
                if coords.count == 1 {
                    svg += "<circle cx=\"\(fmt(coords[0].0))\" cy=\"\(fmt(coords[0].1))\" r=\"3\" fill=\"\(s.color)\"/>"
                } else if coords.count > 1 {
                    svg += "<polyline points=\"\(coords.map { "\(fmt($0.0)),\(fmt($0.1))" }.joined(separator: " "))\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"2\"\(s.dashed ? " stroke-dasharray=\"6 4\"" : "")/>"
                }
            }
            svg += "</g>"
        }
        // Legend.
        for (i, s) in series.enumerated() {
            let y = top + 8 + Double(i) * 18
            svg += "<line x1=\"\(right + 12)\" y1=\"\(fmt(y))\" x2=\"\(right + 36)\" y2=\"\(fmt(y))\" stroke=\"\(s.color)\" stroke-width=\"2\"\(s.dashed ? " stroke-dasharray=\"6 4\"" : "")/>"
            svg += "<text x=\"\(right + 40)\" y=\"\(fmt(y + 4))\" class=\"legend\">\(xmlEscape(s.name))</text>"
        }
        if !omitted.isEmpty {
            svg += "<text x=\"\(left)\" y=\"\(top - 6)\" class=\"warning\">\(omitted.values.reduce(0, +)) point(s) not drawable (NaN, ∞\(logY ? " or ≤ 0" : "")): shown as gaps</text>"
        }
        return Rendered(svg: svg + "</svg>", omitted: omitted)
    }
}

/// Contiguous runs of drawable elements.
func split<T>(_ items: [T], drawable: (T) -> Bool) -> [[T]] {
    var out: [[T]] = [], current: [T] = []
    for item in items {
        if drawable(item) { current.append(item) } else if !current.isEmpty { out.append(current); current = [] }
    }
    if !current.isEmpty { out.append(current) }
    return out
}

func fmt(_ v: Double) -> String { String(format: "%.1f", v) }

/// A scatter plot with labelled, coloured points and an annotation line.
public struct ScatterChart {
    public var title: String, xLabel: String, yLabel: String, note: String
    public var logX: Bool
    public var groups: [(name: String, color: String, points: [(x: Double, y: Double)])]
    public var width = 520.0, height = 340.0

    public init(title: String, xLabel: String, yLabel: String, note: String, logX: Bool = true, groups: [(name: String, color: String, points: [(x: Double, y: Double)])]) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.note = note; self.logX = logX; self.groups = groups
    }

    public func render() -> Rendered {
        var omitted: [String: Int] = [:]
        let (left, right, top, bottom) = (64.0, width - 150, 34.0, height - 48)
        let xs = groups.flatMap { $0.points.map(\.x) }.filter { $0.isFinite && (!logX || $0 > 0) }
        let ys = groups.flatMap { $0.points.map(\.y) }.filter(\.isFinite)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" data-series=\"\(groups.count)\">"
        svg += "<title>\(xmlEscape(title))</title><text x=\"\(Int(width / 2 - 75))\" y=\"18\" text-anchor=\"middle\" class=\"chart-title\">\(xmlEscape(title))</text>"
        guard let x0 = xs.min(), let x1 = xs.max(), let y0 = ys.min(), let y1 = ys.max() else {
            for g in groups { omitted[g.name] = g.points.count }
            return Rendered(svg: svg + "<text x=\"\(Int(width / 2))\" y=\"\(Int(height / 2))\" text-anchor=\"middle\" class=\"empty\">no data to plot</text></svg>", omitted: omitted)
        }
        // Domains padded by 6 % on each side, so that every marker (radius 5 px) lies inside the frame.
        let xDomain: ClosedRange<Double>
        if logX {
            let decades = max(0.5, log10(x1 / x0)) * 0.06
            xDomain = (x0 / pow(10, decades))...(x1 * pow(10, decades))
        } else {
            let pad = x1 > x0 ? 0.06 * (x1 - x0) : max(1, abs(x0) * 0.1)
            xDomain = (x0 - pad)...(x1 + pad)
        }
        let yLow = min(0, y0), yPad = y1 > yLow ? 0.06 * (y1 - yLow) : max(1, abs(y1) * 0.1)
        let xScale: Scale = logX ? LogScale(domain: xDomain, range: (left, right)) : LinearScale(domain: xDomain, range: (left, right))
        let yScale = LinearScale(domain: (yLow - yPad)...(y1 + yPad), range: (bottom, top))
        svg += "<g stroke=\"#444\"><line x1=\"\(left)\" y1=\"\(bottom)\" x2=\"\(right)\" y2=\"\(bottom)\"/><line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(bottom)\"/></g>"
        for t in xScale.ticks() { if let x = xScale.position(t) { svg += "<text x=\"\(fmt(x))\" y=\"\(bottom + 18)\" text-anchor=\"middle\" class=\"tick\">\(xmlEscape(tickLabel(t)))</text>" } }
        for t in yScale.ticks() {
            if let y = yScale.position(t) {
                svg += "<line x1=\"\(left)\" y1=\"\(fmt(y))\" x2=\"\(right)\" y2=\"\(fmt(y))\" stroke=\"#ddd\"/><text x=\"\(left - 6)\" y=\"\(fmt(y + 4))\" text-anchor=\"end\" class=\"tick\">\(xmlEscape(tickLabel(t)))</text>"
            }
        }
        svg += "<text x=\"\(fmt((left + right) / 2))\" y=\"\(height - 10)\" text-anchor=\"middle\" class=\"axis-label\">\(xmlEscape(xLabel + (logX ? " (log scale)" : "")))</text>"
        svg += "<text transform=\"translate(16 \(fmt((top + bottom) / 2))) rotate(-90)\" text-anchor=\"middle\" class=\"axis-label\">\(xmlEscape(yLabel))</text>"
        // Shape and colour both tell the groups apart (readable in grey print too).
        func marker(_ kind: Int, _ x: Double, _ y: Double, _ color: String) -> String {
            switch kind % 3 {
            case 1: return "<rect x=\"\(fmt(x - 4))\" y=\"\(fmt(y - 4))\" width=\"8\" height=\"8\" fill=\"\(color)\"/>"
            case 2: return "<polygon points=\"\(fmt(x)),\(fmt(y - 5)) \(fmt(x - 5)),\(fmt(y + 4)) \(fmt(x + 5)),\(fmt(y + 4))\" fill=\"\(color)\"/>"
            default: return "<circle cx=\"\(fmt(x))\" cy=\"\(fmt(y))\" r=\"4\" fill=\"\(color)\"/>"
            }
        }
        for (i, g) in groups.enumerated() {
            var drawn = 0
            var marks = ""
            for p in g.points {
                guard let x = xScale.position(p.x), let y = yScale.position(p.y) else { omitted[g.name, default: 0] += 1; continue }
                drawn += 1
                marks += marker(i, x, y, g.color)
            }
            svg += "<g class=\"series\" data-name=\"\(xmlEscape(g.name))\" data-points=\"\(drawn)\">\(marks)</g>"
            let ly = top + 8 + Double(i) * 18
            svg += marker(i, right + 24, ly, g.color) + "<text x=\"\(right + 34)\" y=\"\(fmt(ly + 4))\" class=\"legend\">\(xmlEscape(g.name))</text>"
        }
        svg += "<text x=\"\(left + 4)\" y=\"\(top + 12)\" class=\"note\">\(xmlEscape(note))</text>"
        return Rendered(svg: svg + "</svg>", omitted: omitted)
    }
}

/// A heat map of values (rows × columns) on a colour-blind-safe sequential scale (light to dark
/// blue); non-finite cells are grey and marked.
public struct HeatMap {
    public var title: String, rowLabels: [String], columnLabels: [String], values: [[Double]]
    public init(title: String, rowLabels: [String], columnLabels: [String], values: [[Double]]) {
        self.title = title; self.rowLabels = rowLabels; self.columnLabels = columnLabels; self.values = values
    }

    public func render() -> Rendered {
        let cell = 34.0, left = 190.0, top = 40.0
        let width = left + Double(columnLabels.count) * cell + 20, height = top + Double(rowLabels.count) * cell + 110
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" data-series=\"\(rowLabels.count)\">"
        svg += "<title>\(xmlEscape(title))</title><text x=\"8\" y=\"18\" class=\"chart-title\">\(xmlEscape(title))</text>"
        let finite = values.flatMap { $0 }.filter { $0.isFinite && $0 > 0 }
        let lo = finite.min().map(log10) ?? 0, hi = finite.max().map(log10) ?? 1
        var omitted = 0
        for (r, row) in values.enumerated() {
            svg += "<text x=\"\(left - 6)\" y=\"\(fmt(top + Double(r) * cell + cell / 2 + 4))\" text-anchor=\"end\" class=\"tick\">\(xmlEscape(rowLabels[r]))</text>"
            for (c, v) in row.enumerated() {
                let x = left + Double(c) * cell, y = top + Double(r) * cell
                if v.isFinite && v > 0 {
                    let t = hi > lo ? (log10(v) - lo) / (hi - lo) : 0.5
                    // Light (#deebf7) to dark (#08306b) blue.
                    let rC = Int(222 - t * 214), gC = Int(235 - t * 187), bC = Int(247 - t * 140)
                    svg += "<rect x=\"\(fmt(x))\" y=\"\(fmt(y))\" width=\"\(cell - 1)\" height=\"\(cell - 1)\" fill=\"rgb(\(rC),\(gC),\(bC))\"><title>\(xmlEscape(rowLabels[r])), \(xmlEscape(columnLabels[c])): \(String(format: "%.4g", v))</title></rect>"
                } else {
                    omitted += 1
                    svg += "<rect x=\"\(fmt(x))\" y=\"\(fmt(y))\" width=\"\(cell - 1)\" height=\"\(cell - 1)\" fill=\"#bbb\"/><text x=\"\(fmt(x + cell / 2))\" y=\"\(fmt(y + cell / 2 + 4))\" text-anchor=\"middle\" class=\"tick\">–</text>"
                }
            }
        }
        for (c, label) in columnLabels.enumerated() {
            let x = left + Double(c) * cell + cell / 2, y = top + Double(rowLabels.count) * cell + 8
            svg += "<text transform=\"translate(\(fmt(x)) \(fmt(y))) rotate(60)\" class=\"tick\">\(xmlEscape(label))</text>"
        }
        svg += "<text x=\"8\" y=\"\(Int(height - 6))\" class=\"note\">colour: log₁₀ value, light = \(String(format: "%.3g", pow(10, lo))) … dark = \(String(format: "%.3g", pow(10, hi))); grey: not available</text>"
        return Rendered(svg: svg + "</svg>", omitted: omitted > 0 ? ["cells": omitted] : [:])
    }
}
