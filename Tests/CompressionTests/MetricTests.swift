@testable import Compression
import Foundation
import NeuralCore
import XCTest

final class MetricTests: XCTestCase {
    func testGaussianIsotropicAP3IsAP2OverTwoSigma2() throws {
        let a = randomWeights([30, 20], seed: 1), b = randomWeights([30, 20], seed: 2)
        for s2 in [0.25, 1, 3.5] {
            let v = try MetricVariant(parsing: "gaussian:sigma2=\(s2)")
            let (layers, total) = try NetworkMetrics.compute(original: ["w": a], pruned: ["w": b], keys: ["w"], variants: [v])
            XCTAssertEqual(layers[0]["ap3[\(v.id)]"]!, layers[0]["ap2"]! / (2 * s2), accuracy: 1e-12 * layers[0]["ap2"]!)
            XCTAssertEqual(total["ap3[\(v.id)]"]!, layers[0]["ap3[\(v.id)]"]!)
        }
    }

    /// KL between two 1-D Gaussians and between two 2-D diagonal ones against numerical integration
    /// of p·ln(p/q) on a fine grid (trapezoid, Float64).
    func testGaussianKLAgainstNumericalIntegration() throws {
        func pdf(_ x: Double, _ m: Double, _ s: Double) -> Double { exp(-(x - m) * (x - m) / (2 * s)) / (2 * .pi * s).squareRoot() }
        func kl1(_ m1: Double, _ s1: Double, _ m2: Double, _ s2: Double) -> Double {
            var sum = 0.0
            let h = 1e-3
            for i in -20_000...20_000 {
                let x = Double(i) * h
                let p = pdf(x, m1, s1), q = pdf(x, m2, s2)
                if p > 0 && q > 0 { sum += p * log(p / q) * h }
            }
            return sum
        }
        // 1-D: ω = 0.3, ω̃ = −0.4, σ² = 0.5, σ̃² = 1.2 through gaussian:sigma2=…,sigma2_pruned=…
        let v = try MetricVariant(parsing: "gaussian:sigma2=0.5,sigma2_pruned=1.2")
        let one = try PairAccumulator.statistics(original: Tensor(shape: [1], scalars: [0.3]), pruned: Tensor(shape: [1], scalars: [-0.4]), projection: v.projection)
        XCTAssertEqual(one.klGaussian, kl1(Double(Float(0.3)), 0.5, Double(Float(-0.4)), 1.2), accuracy: 1e-6)
        // 2-D diagonal with variances per row (rows of one element each: estimate=layer over a 1×2).
        // Independent coordinates: the 2-D KL is the sum of two 1-D integrals.
        let two = try PairAccumulator.statistics(original: Tensor(shape: [2], scalars: [0.5, -1]), pruned: Tensor(shape: [2], scalars: [0.1, 0.2]),
                                                 projection: .gaussianIsotropic(sigma2: 0.7, prunedSigma2: 0.4))
        let expected = kl1(0.5, 0.7, Double(Float(0.1)), 0.4) + kl1(-1, 0.7, Double(Float(0.2)), 0.4)
        XCTAssertEqual(two.klGaussian, expected, accuracy: 1e-6)
        // And a true 2-D grid integral for the same pair, to check the sum-of-independent argument.
        var grid = 0.0
        let h = 0.01
        for i in -800...800 {
            for j in -800...800 {
                let x = Double(i) * h, y = Double(j) * h
                let p = pdf(x, 0.5, 0.7) * pdf(y, -1, 0.7), q = pdf(x, Double(Float(0.1)), 0.4) * pdf(y, Double(Float(0.2)), 0.4)
                if p > 1e-300 && q > 1e-300 { grid += p * log(p / q) * h * h }
            }
        }
        XCTAssertEqual(two.klGaussian, grid, accuracy: 1e-4)
    }

    /// Hand-derived 1-D values: W2² = Δ² + (σ − σ̃)², H² = 1 − √(2σσ̃/(σ² + σ̃²))·exp(−Δ²/(4(σ² + σ̃²))),
    /// symmetric KL = ½[(σ²/σ̃² + σ̃²/σ² − 2) + Δ²(1/σ² + 1/σ̃²)].
    func testWassersteinHellingerSymmetricKLByHand() throws {
        let (s, t, delta) = (0.5, 2.0, 1.5)
        let stats = try PairAccumulator.statistics(original: Tensor(shape: [1], scalars: [0]), pruned: Tensor(shape: [1], scalars: [1.5]),
                                                   projection: .gaussianIsotropic(sigma2: s, prunedSigma2: t))
        XCTAssertEqual(stats.wasserstein2, (delta * delta + pow(s.squareRoot() - t.squareRoot(), 2)).squareRoot(), accuracy: 1e-12)
        let h2 = 1 - (2 * (s * t).squareRoot() / (s + t)).squareRoot() * exp(-delta * delta / (4 * (s + t)))
        XCTAssertEqual(stats.hellinger, h2.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(stats.symmetricKL, 0.5 * ((s / t + t / s - 2) + delta * delta * (1 / s + 1 / t)), accuracy: 1e-12)
    }

    func testJensenShannonAgainstIntegration() throws {
        let delta = 1.3
        var exact = 0.0
        let h = 1e-3
        for i in -15_000...15_000 {
            let x = Double(i) * h
            let p = exp(-x * x / 2) / (2 * .pi).squareRoot(), q = exp(-(x - delta) * (x - delta) / 2) / (2 * .pi).squareRoot()
            let m = (p + q) / 2
            if p > 0 { exact += 0.5 * p * log(p / m) * h }
            if q > 0 { exact += 0.5 * q * log(q / m) * h }
        }
        let e = JensenShannon.gaussianEqualCovariance(mahalanobis: delta, samples: 200_000, seed: 3)
        XCTAssertEqual(e.value, exact, accuracy: 4 * e.standardError)
        XCTAssertLessThan(e.standardError, 2e-3)
        XCTAssertEqual(JensenShannon.gaussianEqualCovariance(mahalanobis: 0, samples: 10, seed: 0).value, 0)
    }

    func testStudentTWithinThreeStandardErrorsOfALongRunAndZeroForIdentical() throws {
        let a = randomWeights([40, 25], seed: 4)
        var bScalars = a.scalars
        for i in stride(from: 0, to: bScalars.count, by: 3) { bScalars[i] = 0 }
        let b = Tensor(shape: a.shape, scalars: bScalars)
        let short = try StudentTDivergence.kl(original: a, pruned: b, groups: 100, degreesOfFreedom: 4, samples: 5_000, repeats: 10, seed: 1)
        let long = try StudentTDivergence.kl(original: a, pruned: b, groups: 100, degreesOfFreedom: 4, samples: 100_000, repeats: 20, seed: 2)
        XCTAssertGreaterThan(short.value, 0)
        XCTAssertEqual(short.value, long.value, accuracy: 3 * (short.standardError * short.standardError + long.standardError * long.standardError).squareRoot())
        XCTAssertEqual(try StudentTDivergence.kl(original: a, pruned: a, groups: 100, degreesOfFreedom: 4, samples: 100, repeats: 2, seed: 1).value, 0)
        // 1,000 weights in groups of 10: 100 chunk means; 1,003 weights make a short 101st chunk.
        XCTAssertEqual(StudentTDivergence.chunkMeans(a, groups: 100).count, 100)
        XCTAssertEqual(StudentTDivergence.chunkMeans(randomWeights([1003], seed: 1), groups: 100).count, 101)
    }

    /// The O(1)-per-sample reduction against the direct g-dimensional sampler, on a small case.
    func testStudentTReductionMatchesDirectSampling() throws {
        let mu = [0.3, -0.2, 0.5], muPruned = [0.0, 0.1, -0.4], nu = 5.0
        var rng = SeededGenerator(seed: 11)
        var sum = 0.0
        let n = 200_000
        for _ in 0..<n {
            let scale = (nu / rng.nextChiSquared(nu)).squareRoot()
            var y2 = 0.0, s2 = 0.0
            for i in 0..<3 {
                let y = rng.nextNormal() * scale
                y2 += y * y
                let x = mu[i] + y
                s2 += (x - muPruned[i]) * (x - muPruned[i])
            }
            sum += (nu + 3) / 2 * (log1p(s2 / nu) - log1p(y2 / nu))
        }
        let direct = sum / Double(n)
        let a = Tensor(shape: [3], scalars: mu.map(Float.init)), b = Tensor(shape: [3], scalars: muPruned.map(Float.init))
        let reduced = try StudentTDivergence.kl(original: a, pruned: b, groups: 3, degreesOfFreedom: nu, samples: 50_000, repeats: 4, seed: 12)
        XCTAssertEqual(reduced.value, direct, accuracy: 4 * reduced.standardError + 0.01)
    }

    /// Weights written by PyTorch, metrics computed by NumPy in float64 (Scripts/gen_metric_fixtures.py).
    func testMetricsOnPyTorchWeightsMatchNumPy() throws {
        let dir = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        let original = try Safetensors.read(path: dir.appendingPathComponent("original.safetensors").path).tensors.mapValues(\.tensor)
        let pruned = try Safetensors.read(path: dir.appendingPathComponent("pruned.safetensors").path).tensors.mapValues(\.tensor)
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("metrics_numpy.json"))) as? [String: [String: Double]])
        let variants = try ["gaussian:sigma2=0.5", "gaussian-diag:estimate=row", "gaussian-diag:estimate=row,separate", "mahalanobis-code"].map(MetricVariant.init(parsing:))
        let (layers, total) = try NetworkMetrics.compute(original: original, pruned: pruned, keys: ["fc1.weight", "fc2.weight"], variants: variants)
        func close(_ a: Double, _ b: Double, _ what: String) {
            XCTAssertLessThanOrEqual(abs(a - b), 1e-9 * abs(b), "\(what): ours \(a), NumPy \(b)")
        }
        var totalAP2 = 0.0
        for layer in layers {
            let e = try XCTUnwrap(expected[layer.key])
            close(layer["ap2"]!, e["ap2"]!, "\(layer.key) ap2")
            close(layer["ap3[gaussian:sigma2=0.5]"]!, e["ap3_sigma2_0.5"]!, "\(layer.key) ap3 σ²=0.5")
            close(layer["ap3[gaussian-diag:estimate=row]"]!, e["ap3_diag_row"]!, "\(layer.key) ap3 diag")
            close(layer["ap3[gaussian-diag:estimate=row,separate]"]!, e["ap3_diag_row_separate"]!, "\(layer.key) ap3 Σ≠Σ̃")
            close(layer["w2[gaussian-diag:estimate=row,separate]"]!, e["w2_diag_row_separate"]!, "\(layer.key) w2")
            close(layer["ap3[mahalanobis-code]"]!, e["mahalanobis_code"]!, "\(layer.key) mahalanobis")
            totalAP2 += e["ap2"]!
        }
        close(total["ap2"]!, totalAP2, "total ap2")
    }

    /// 138 M weights would take 0.5 GB per copy; here a 3 M vector checks that Float64 sums hold
    /// digits that Float32 accumulation loses.
    func testSumsKeepFloat64Precision() throws {
        let n = 3_000_000
        let a = Tensor(shape: [n], repeating: 1), b = Tensor(shape: [n], repeating: 1.001)
        let d = Double(Float(1.001)) - 1
        XCTAssertEqual(PairAccumulator.squaredDistance(a, b), Double(n) * d * d, accuracy: 1e-9 * Double(n) * d * d)
    }
}

final class GivenVarianceTests: XCTestCase {
    func testGivenDiagonalVariancesPerWeightAndPerRow() throws {
        let a = randomWeights([6, 5], seed: 21), b = randomWeights([6, 5], seed: 22)
        let dir = NSTemporaryDirectory() + "apsweep-var-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Per weight, all 2: the same as σ² = 2.
        let perWeight = try Safetensors.encode([(key: "w", value: Tensor(shape: [6, 5], repeating: 2), type: .float32)])
        try perWeight.write(to: URL(fileURLWithPath: dir + "/two.safetensors"))
        // Per row, the rows' own variances: the same as estimate=row.
        let rows = PairAccumulator.variances(a, groups: 6).map(Float.init)
        try Safetensors.encode([(key: "w", value: Tensor(shape: [6], scalars: rows), type: .float32)]).write(to: URL(fileURLWithPath: dir + "/rows.safetensors"))
        let variants = try ["gaussian:sigma2=2", "gaussian-diag:file=\(dir)/two.safetensors", "gaussian-diag:estimate=row",
                            "gaussian-diag:file=\(dir)/rows.safetensors"].map(MetricVariant.init(parsing:))
        let (layers, _) = try NetworkMetrics.compute(original: ["w": a], pruned: ["w": b], keys: ["w"], variants: variants)
        let l = layers[0]
        XCTAssertEqual(l["ap3[gaussian-diag:file=\(dir)/two.safetensors]"]!, l["ap3[gaussian:sigma2=2]"]!, accuracy: 1e-12)
        XCTAssertEqual(l["ap3[gaussian-diag:file=\(dir)/rows.safetensors]"]!, l["ap3[gaussian-diag:estimate=row]"]!, accuracy: 1e-6 * l["ap3[gaussian-diag:estimate=row]"]!)
        // A wrong shape and a missing key are named.
        try Safetensors.encode([(key: "w", value: Tensor(shape: [4], repeating: 1), type: .float32)]).write(to: URL(fileURLWithPath: dir + "/bad.safetensors"))
        XCTAssertThrowsError(try NetworkMetrics.compute(original: ["w": a], pruned: ["w": b], keys: ["w"], variants: [try MetricVariant(parsing: "gaussian-diag:file=\(dir)/bad.safetensors")])) {
            XCTAssert("\($0)".contains("have shape [4]; expected [6, 5] or [6]"), "\($0)")
        }
        XCTAssertThrowsError(try NetworkMetrics.compute(original: ["v": a], pruned: ["v": b], keys: ["v"], variants: [variants[1]])) {
            XCTAssert("\($0)".contains("has no variances for 'v'"), "\($0)")
        }
    }
}
