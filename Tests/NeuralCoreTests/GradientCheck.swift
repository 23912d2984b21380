@testable import NeuralCore
import XCTest

/// Checks a layer's backward against central finite differences.
///
/// The loss is L(x, θ) = Σ y ⊙ r for a fixed random r, so d(loss)/d(y) = r. The layer computes in
/// Float32; the finite differences (L(x + h) − L(x − h)) / 2h are formed and accumulated in Float64
/// from Float64 sums of the Float32 outputs. With h = 1e-2 and inputs of order 1, truncation error
/// is O(h²) ≈ 1e-4 and Float32 rounding contributes about 1e-7·|L|/h, so a gradient passes when
/// |numeric − analytic| ≤ atol + rtol·|numeric| with atol = 2e-3 and rtol = 2e-2 unless stated.
/// At most `samples` coordinates of the input and of each parameter are checked (chosen by seed).
///
/// Finite differences are meaningless across a kink: a coordinate whose ±h evaluations change a
/// ReLU's sign pattern or a max pool's argmax is skipped (and counted); at least `minimumChecked`
/// of the sampled coordinates must remain.
struct GradientCheck {
    var h: Float = 1e-2
    var atol = 2e-3
    var rtol = 2e-2
    var samples = 40
    var seed: UInt64 = 7
    var minimumChecked = 0.6

    /// Returns the largest |numeric − analytic| seen, after failing the test for any violation.
    @discardableResult
    func check(_ layer: Layer, input: Tensor, mode: Mode = .train, checkInput: Bool = true,
               file: StaticString = #filePath, line: UInt = #line) throws -> Double {
        var rng = SeededGenerator(seed: seed)
        for (_, p) in layer.namedParameters() { p.zeroGrad() }
        let y = try layer.forward(input, mode: mode)
        let r = Tensor(shape: y.shape, unsafeUninitialized: { p in for i in 0..<y.count { p[i] = Float(rng.nextNormal()) } })
        let dx = try layer.backward(r)
        let analyticParams = layer.namedParameters().map { ($0.0, $0.1.grad) }

        let basePattern = activationPattern(layer)
        var checked = 0, skipped = 0
        func loss(_ x: Tensor) throws -> Double {
            let out = try layer.forward(x, mode: mode)
            var s = 0.0
            for i in 0..<out.count { s += Double(out.scalars[i]) * Double(r.scalars[i]) }
            return s
        }
        /// L(+) and L(−), or nil when the perturbation crossed a kink.
        func pair(_ plus: () throws -> Double, _ minus: () throws -> Double) throws -> (Double, Double)? {
            let up = try plus()
            let samePlus = activationPattern(layer) == basePattern
            let down = try minus()
            let sameMinus = activationPattern(layer) == basePattern
            if samePlus && sameMinus { checked += 1; return (up, down) }
            skipped += 1
            return nil
        }
        var worst = 0.0
        func compare(_ name: String, _ index: Int, numeric: Double, analytic: Double) {
            let diff = abs(numeric - analytic)
            worst = max(worst, diff)
            if diff > atol + rtol * abs(numeric) {
                XCTFail("\(name)[\(index)]: finite difference \(numeric), backward \(analytic), |diff| \(diff) > \(atol) + \(rtol)·|fd|",
                        file: file, line: line)
            }
        }
        func indices(_ count: Int) -> [Int] {
            if count <= samples { return Array(0..<count) }
            return (0..<samples).map { _ in Int(rng.next() % UInt64(count)) }
        }

        if checkInput {
            XCTAssertEqual(dx.shape, input.shape, "input gradient shape", file: file, line: line)
            for i in indices(input.count) {
                var plus = input, minus = input
                plus.scalars[i] += h
                minus.scalars[i] -= h
                guard let (up, down) = try pair({ try loss(plus) }, { try loss(minus) }) else { continue }
                let numeric = (up - down) / (Double(plus.scalars[i]) - Double(minus.scalars[i]))
                compare("d input", i, numeric: numeric, analytic: Double(dx.scalars[i]))
            }
        }
        for ((name, p), (_, grad)) in zip(layer.namedParameters(), analyticParams) {
            XCTAssertEqual(grad.shape, p.value.shape, "\(name) gradient shape", file: file, line: line)
            for i in indices(p.value.count) {
                let original = p.value.scalars[i]
                let hi = original + h, lo = original - h
                let result = try pair({ p.value.scalars[i] = hi; return try loss(input) },
                                      { p.value.scalars[i] = lo; return try loss(input) })
                p.value.scalars[i] = original
                guard let (up, down) = result else { continue }
                compare("d \(name)", i, numeric: (up - down) / (Double(hi) - Double(lo)), analytic: Double(grad.scalars[i]))
            }
        }
        let total = checked + skipped
        XCTAssert(total == 0 || Double(checked) >= minimumChecked * Double(total),
                  "only \(checked) of \(total) coordinates were away from a kink", file: file, line: line)
        return worst
    }
}

/// The on/off pattern of every ReLU and the argmax of every max pool inside `layer`, found by
/// reflection so that blocks holding their activations as properties are covered too.
func activationPattern(_ layer: Layer) -> [UInt8] {
    var out: [UInt8] = []
    var seen = Set<ObjectIdentifier>()
    func visit(_ value: Any) {
        if value is Tensor || value is [Float] || value is [Int32] || value is Parameter || value is Buffer { return }
        if let l = value as? Layer {
            guard seen.insert(ObjectIdentifier(l)).inserted else { return }
            if let relu = l as? ReLU, let y = relu.output { out += y.scalars.map { $0 > 0 ? 1 : 0 } }
            if let pool = l as? MaxPool2d { out += pool.argmax.flatMap { withUnsafeBytes(of: $0) { Array($0) } } }
        }
        for child in Mirror(reflecting: value).children { visit(child.value) }
    }
    visit(layer)
    return out
}

/// A tensor of standard-normal values from `seed`.
func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
    var rng = SeededGenerator(seed: seed)
    return Tensor(shape: shape, unsafeUninitialized: { p in
        for i in 0..<shape.reduce(1, *) { p[i] = Float(rng.nextNormal()) * scale }
    })
}

/// A tensor whose values are all at least `gap` away from 0 and from each other (so ReLU and max
/// pooling have no kink within a finite-difference step).
func wellSeparatedTensor(_ shape: [Int], seed: UInt64, gap: Float = 0.05) -> Tensor {
    let n = shape.reduce(1, *)
    var rng = SeededGenerator(seed: seed)
    var values = (0..<n).map { Float($0 - n / 2) * gap + gap / 2 }
    for i in stride(from: n - 1, to: 0, by: -1) { values.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
    return Tensor(shape: shape, scalars: values)
}
