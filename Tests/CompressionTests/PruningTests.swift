@testable import Compression
import NeuralCore
import XCTest

func randomWeights(_ shape: [Int], seed: UInt64) -> Tensor {
    var rng = SeededGenerator(seed: seed)
    return Tensor(shape: shape, unsafeUninitialized: { p in for i in 0..<shape.reduce(1, *) { p[i] = Float(rng.nextNormal()) } })
}

final class PruningTests: XCTestCase {
    func model(seed: UInt64 = 1) throws -> Model { try ModelSpec(.lenet5, width: 0.5).build(seed: seed) }

    func weights(_ m: Model, _ key: String) -> Tensor { m.namedParameters().first { $0.0 == key }!.1.value }

    /// Right after pruning, AP2 orders the methods by construction: the k smallest squares sum to
    /// no more than any k of them, and the k largest to no less.
    func testAP2OrdersLowestRandomHighestForEveryTensorAndSparsity() throws {
        for trial in 0..<40 {
            let w = randomWeights([7 + trial % 5, 11], seed: UInt64(trial))
            for p in [0.05, 0.1, 0.3, 0.5, 0.8, 0.95] {
                var ap2: [PruningMethod: Double] = [:]
                for method in [PruningMethod.lowest, .random, .highest] {
                    var rng = SeededGenerator(seed: UInt64(trial * 100))
                    let mask = try Pruner.unstructuredMask(w.scalars, method: method, sparsity: p, rng: &rng)
                    let pruned = Tensor(shape: w.shape, scalars: zip(w.scalars, mask).map { $0 * $1 })
                    ap2[method] = PairAccumulator.squaredDistance(w, pruned)
                }
                XCTAssertLessThanOrEqual(ap2[.lowest]!, ap2[.random]!, "trial \(trial) p \(p)")
                XCTAssertLessThanOrEqual(ap2[.random]!, ap2[.highest]!, "trial \(trial) p \(p)")
            }
        }
    }

    func testUnstructuredMethodsRemoveExactlyRoundPDAndKeepSurvivors() throws {
        for method in [PruningMethod.lowest, .highest, .random] {
            let m = try model()
            let before = weights(m, m.classifierWeightKey)
            let masks = try Pruner.prune(m, method: method, sparsity: 0.3, scope: .last, seed: 4)
            let after = weights(m, m.classifierWeightKey)
            let zeros = masks.masks[m.classifierWeightKey]!.filter { $0 == 0 }.count
            XCTAssertEqual(zeros, Int((0.3 * Double(before.count)).rounded()), "\(method)")
            for i in 0..<before.count {
                XCTAssertEqual(after.scalars[i], masks.masks[m.classifierWeightKey]![i] == 0 ? 0 : before.scalars[i], "\(method) survivors untouched")
            }
            // Nothing outside the scope moved.
            XCTAssertEqual(weights(m, "features.0.weight"), weights(try model(), "features.0.weight"))
        }
    }

    func testHighestPrunesTheLargestAndCodeFaithfulShiftsSurvivors() throws {
        let m = try model(), key = m.classifierWeightKey
        let w = weights(m, key)
        _ = try Pruner.prune(m, method: .highest, sparsity: 0.5, scope: .last, seed: 0)
        let kept = weights(m, key).scalars.filter { $0 != 0 }.map { abs($0) }
        let removed = zip(w.scalars, weights(m, key).scalars).filter { $0.1 == 0 }.map { abs($0.0) }
        XCTAssertLessThanOrEqual(kept.max()!, removed.min()!)

        let faithful = try model()
        let maxAbs = w.scalars.map { abs($0) }.max()!
        let masks = try Pruner.prune(faithful, method: .highestCodeFaithful, sparsity: 0.5, scope: .last, seed: 0)
        let mask = masks.masks[key]!
        for i in 0..<w.count where mask[i] == 1 {
            XCTAssertEqual(weights(faithful, key).scalars[i], abs(w.scalars[i]) - maxAbs, accuracy: 1e-6)
        }
    }

    func testRandomIsSeededAndTiesBreakByIndex() throws {
        let a = try model(), b = try model(), c = try model()
        let ma = try Pruner.prune(a, method: .random, sparsity: 0.4, scope: .last, seed: 9)
        let mb = try Pruner.prune(b, method: .random, sparsity: 0.4, scope: .last, seed: 9)
        let mc = try Pruner.prune(c, method: .random, sparsity: 0.4, scope: .last, seed: 10)
        XCTAssertEqual(ma.masks, mb.masks)
        XCTAssertNotEqual(ma.masks, mc.masks)
        var rng = SeededGenerator(seed: 0)
        let tied = try Pruner.unstructuredMask([1, -1, 1, 2, 1, -1], method: .lowest, sparsity: 0.5, rng: &rng)
        XCTAssertEqual(tied, [0, 0, 0, 1, 1, 1])
    }

    func testStructuredGlobalAndNamedScopes() throws {
        let m = try model(), key = "features.3.weight"
        let masks = try Pruner.prune(m, method: .structuredL2, sparsity: 0.5, scope: .named([key]), seed: 0)
        let w = weights(m, key), per = w.count / w.shape[0]
        let zeroRows = (0..<w.shape[0]).filter { r in (0..<per).allSatisfy { w.scalars[r * per + $0] == 0 } }
        XCTAssertEqual(zeroRows.count, 4)   // 8 filters at width 0.5
        XCTAssertEqual(masks.keys, [key])

        let g = try model(), original = try model()
        let gm = try Pruner.prune(g, method: .lowest, sparsity: 0.6, scope: .global, seed: 0)
        XCTAssertEqual(gm.sparsity, 0.6, accuracy: 1e-3)
        // One threshold: every removed |w| ≤ every kept |w|, across layers.
        var kept: [Float] = [], removed: [Float] = []
        for key in gm.keys {
            let o = weights(original, key).scalars, mask = gm.masks[key]!
            for i in 0..<o.count { if mask[i] == 0 { removed.append(abs(o[i])) } else { kept.append(abs(o[i])) } }
        }
        XCTAssertLessThanOrEqual(removed.max()!, kept.min()!)
    }

    func testBadInputGivesClearErrors() throws {
        let m = try model()
        XCTAssertThrowsError(try Pruner.prune(m, method: .lowest, sparsity: 1.5, scope: .last, seed: 0)) {
            XCTAssertEqual("\($0)", "sparsity 1.5 is outside [0, 1]")
        }
        XCTAssertThrowsError(try Pruner.prune(m, method: .lowest, sparsity: 0.5, scope: .named(["nope.weight"]), seed: 0)) {
            XCTAssert("\($0)".contains("layer 'nope.weight' is not a prunable weight of lenet5"), "\($0)")
        }
        XCTAssertNil(PruningMethod(rawValue: "smallest"))
        XCTAssertThrowsError(try PruningScope(parsing: "everything"))
        XCTAssertThrowsError(try MetricVariant(parsing: "gaussian:sigma=1")) { XCTAssert("\($0)".contains("unknown option sigma"), "\($0)") }
        XCTAssertThrowsError(try MetricVariant(parsing: "cauchy")) { XCTAssert("\($0)".contains("unknown metric 'cauchy'"), "\($0)") }
        let other = try ModelSpec(.lenet5).build(seed: 0)
        let a = Dictionary(uniqueKeysWithValues: m.namedParameters().map { ($0.0, $0.1.value) })
        let b = Dictionary(uniqueKeysWithValues: other.namedParameters().map { ($0.0, $0.1.value) })
        XCTAssertThrowsError(try NetworkMetrics.compute(original: a, pruned: b, keys: m.prunableWeights.map(\.0), variants: [])) {
            XCTAssert("\($0)".contains("not the same architecture"), "\($0)")
        }
    }

    /// Masked fine-tuning: after many SGD steps with momentum and weight decay, pruned weights and
    /// their momentum are still exactly zero, and unpruned weights did move.
    func testMasksHoldThroughFineTuning() throws {
        let m = try model()
        let masks = try Pruner.prune(m, method: .lowest, sparsity: 0.5, scope: .perLayer, seed: 0)
        let before = m.namedParameters().map { $0.1.value }
        let sgd = SGD(m.parameters, learningRate: 0.05, momentum: 0.9, weightDecay: 5e-3, nesterov: true)
        let trainer = Trainer(model: m, optimizer: MaskedOptimizer(sgd, masks: masks, model: m))
        var rng = SeededGenerator(seed: 1)
        for _ in 0..<30 {
            let x = randomWeights([8, 1, 28, 28], seed: rng.next())
            try trainer.step(x, labels: (0..<8).map { _ in Int(rng.next() % 10) })
        }
        for (index, (key, p)) in m.namedParameters().enumerated() {
            guard let mask = masks.masks[key] else { continue }
            let buffer = try XCTUnwrap(sgd.momentumBuffer(index))
            var moved = 0
            for i in 0..<mask.count {
                if mask[i] == 0 {
                    XCTAssertEqual(p.value.scalars[i], 0, "\(key)[\(i)] stays pruned")
                    XCTAssertEqual(buffer[i], 0, "\(key)[\(i)] momentum stays zero")
                } else if p.value.scalars[i] != before[index].scalars[i] {
                    moved += 1
                }
            }
            XCTAssertGreaterThan(moved, 0, "\(key): unpruned weights train")
        }
    }
}
