/// Reductions and elementwise loops written with SIMD lanes where the compiler cannot vectorise
/// by itself (it may not reorder floating-point sums).

/// Σ p[0..<n], summed in 16 Float32 lanes per block of 1,024 elements and across blocks in Float64
/// (relative error about 1e-7 · √(block) for inputs of one sign, far below the Float32 data's own).
@inlinable
public func vectorSum(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
    var total = 0.0
    var i = 0
    while i < n {
        let end = Swift.min(n, i + 1024)
        var acc = SIMD16<Float>(repeating: 0)
        while i + 16 <= end {
            acc += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self)
            i += 16
        }
        var s = Double(acc.sum())
        while i < end { s += Double(p[i]); i += 1 }
        total += s
    }
    return total
}

/// (Σ a[i], Σ a[i]·(b[i] − c)) in one pass, blocked as `vectorSum`; c is a shift (a mean) that
/// keeps the products well conditioned.
@inlinable
public func vectorSumAndShiftedDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int, shift c: Float) -> (Double, Double) {
    var sum = 0.0, dot = 0.0
    var i = 0
    let cv = SIMD16<Float>(repeating: c)
    while i < n {
        let end = Swift.min(n, i + 1024)
        var s = SIMD16<Float>(repeating: 0), d = SIMD16<Float>(repeating: 0)
        while i + 16 <= end {
            let x = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self)
            s += x
            d += x * (UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self) - cv)
            i += 16
        }
        var ts = Double(s.sum()), td = Double(d.sum())
        while i < end { ts += Double(a[i]); td += Double(a[i] * (b[i] - c)); i += 1 }
        sum += ts
        dot += td
    }
    return (sum, dot)
}

/// (Σ (p[i] − c), Σ (p[i] − c)²) over n elements, blocked as `vectorSum`; c is a shift that keeps
/// the squares well conditioned (pass an estimate of the mean).
@inlinable
public func vectorShiftedMoments(_ p: UnsafePointer<Float>, _ n: Int, shift c: Float) -> (Double, Double) {
    var s1 = 0.0, s2 = 0.0
    var i = 0
    let cv = SIMD16<Float>(repeating: c)
    while i < n {
        let end = Swift.min(n, i + 1024)
        var a1 = SIMD16<Float>(repeating: 0), a2 = SIMD16<Float>(repeating: 0)
        while i + 16 <= end {
            let d = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self) - cv
            a1 += d
            a2 += d * d
            i += 16
        }
        var t1 = Double(a1.sum()), t2 = Double(a2.sum())
        while i < end { let d = Double(p[i] - c); t1 += d; t2 += d * d; i += 1 }
        s1 += t1
        s2 += t2
    }
    return (s1, s2)
}
