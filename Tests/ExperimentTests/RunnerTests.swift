import Compression
import Datasets
@testable import Experiment
import NeuralCore
import Records
import XCTest

func syntheticShard(train: Int = 300, test: Int = 100, seed: UInt64 = 1) throws -> Shard {
    try SyntheticBlocks.shard(train: train, test: test, seed: seed)
}

final class RunnerTests: XCTestCase {
    override func setUp() { BLAS.threads = 1 }

    let spec = ModelSpec(.lenet5, width: 0.5, inputShape: [1, 12, 12], classes: 4)

    func baseline(_ data: Shard) throws -> BaselineResult {
        try Runner.runBaseline(BaselineTask(model: spec, training: TrainingConfig(epochs: 6, batch: 16, lr: 0.05), seed: 3), data: data)
    }

    /// A model that cannot take the data (colour images into a grey model, more classes than
    /// outputs) is an error naming both, not a crash in the batcher or the loss.
    func testDataTheModelCannotTakeIsAnErrorNotACrash() throws {
        let data = try syntheticShard()   // 1×12×12, 4 classes
        let colour = try LabeledImages(imageShape: [3, 12, 12], pixels: [UInt8](repeating: 9, count: 3 * 144 * 8), labels: Array(repeating: 1, count: 8), classes: 4)
        XCTAssertThrowsError(try Runner.evaluate(try spec.build(seed: 0), colour, labelSmoothing: 0)) {
            XCTAssert("\($0)".contains("lenet5 takes 1×12×12 inputs; the data's images are 3×12×12"), "\($0)")
        }
        let three = ModelSpec(.lenet5, width: 0.5, inputShape: [1, 12, 12], classes: 3)
        XCTAssertThrowsError(try Runner.runBaseline(BaselineTask(model: three, training: TrainingConfig(epochs: 1, batch: 16), seed: 1), data: data)) {
            XCTAssert("\($0)".contains("lenet5 has 3 outputs; the data has 4 classes"), "\($0)")
        }
        // Grey images into a colour model are repeated over the channels, as before.
        let rgb = ModelSpec(.lenet5, width: 0.5, inputShape: [3, 12, 12], classes: 4)
        XCTAssertNoThrow(try Runner.evaluate(try rgb.build(seed: 0), data.test, labelSmoothing: 0))
    }

    /// A baseline that starts from given weights: with 0 epochs they are only measured.
    func testABaselineFromWeightsKeepsThemWithNoEpochs() throws {
        let data = try syntheticShard()
        let trained = try baseline(data)
        let start = Dictionary(trained.state.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        let kept = try Runner.runBaseline(BaselineTask(model: spec, training: TrainingConfig(epochs: 0), seed: 99), data: data,
                                          start: try Checkpoint.model(start, spec: spec, path: "trained"))
        XCTAssertEqual(kept.testAccuracy, trained.testAccuracy, accuracy: 1e-9)
        for (a, b) in zip(kept.state, trained.state) { XCTAssertEqual(a.value.scalars, b.value.scalars, a.key) }
        var wrong = start
        wrong["features.0.weight"] = nil
        XCTAssertThrowsError(try Checkpoint.model(wrong, spec: spec, path: "wrong")) {
            XCTAssert("\($0)".contains("wrong: ") && "\($0)".contains("features.0.weight"), "\($0)")
        }
    }

    func testBaselineLearnsAndStreamsEveryEpoch() throws {
        let data = try syntheticShard()
        var seen: [Int] = []
        let result = try Runner.runBaseline(BaselineTask(model: spec, training: TrainingConfig(epochs: 6, batch: 16, lr: 0.05), seed: 3), data: data) {
            seen.append($0.epoch)
        }
        XCTAssertEqual(seen, [1, 2, 3, 4, 5, 6])
        XCTAssertGreaterThan(result.testAccuracy, 80, "a 4-class block pattern is easy")
        XCTAssertEqual(result.trainAccuracy, result.history.last!.trainAccuracy)
        XCTAssertEqual(result.state.count, try spec.build(seed: 0).stateDict().count)
    }

    /// The paper's protocol on cached features gives the numbers of the uncached path: features
    /// computed in batches of 500 vs the fine-tuning batch size differ only in GEMM summation order,
    /// so accuracies agree to one image and losses and metrics to 1e-4 relative.
    func testCachedAndUncachedLastLayerFineTuningAgree() throws {
        let data = try syntheticShard()
        let base = try baseline(data)
        var task = PruneTask(method: .lowest, sparsity: 0.5, seed: 5, fineTune: TrainingConfig(epochs: 4, batch: 32, lr: 0.05),
                             metrics: ["gaussian:sigma2=1", "student-t:df=4,groups=10,samples=500,repeats=2"])
        let cached = try Runner.runPrune(task, model: spec, baseline: base, data: data)
        task.cacheFeatures = false
        let uncached = try Runner.runPrune(task, model: spec, baseline: base, data: data)
        XCTAssertEqual(cached.map(\.epoch), [0, 1, 2, 3, 4])
        for (a, b) in zip(cached, uncached) {
            XCTAssertEqual(a.trainAccuracy, b.trainAccuracy, accuracy: 100.0 / 300 + 1e-9, "epoch \(a.epoch)")
            XCTAssertEqual(a.testAccuracy, b.testAccuracy, accuracy: 100.0 / 100 + 1e-9, "epoch \(a.epoch)")
            XCTAssertEqual(a.testLoss, b.testLoss, accuracy: 1e-4 * max(1, abs(b.testLoss)), "epoch \(a.epoch)")
            XCTAssertEqual(a.totalMetrics!["ap2"]!, b.totalMetrics!["ap2"]!, accuracy: 1e-4 * b.totalMetrics!["ap2"]!)
        }
    }

    /// Prune tasks of one baseline that prune only the head share its features (a worker keeps
    /// them for the next task), with records identical to computing them afresh; a task that
    /// prunes other layers, or another baseline, never gets them.
    func testTasksOfOneBaselineShareFeaturesOnlyWhenOnlyTheHeadIsPruned() throws {
        let data = try syntheticShard()
        let base = try baseline(data)
        let store = FeatureStore()
        func task(_ m: PruningMethod, _ p: Double, _ scope: String = "last") -> PruneTask {
            PruneTask(method: m, sparsity: p, scope: scope, seed: 5, fineTune: TrainingConfig(epochs: 3, batch: 32, lr: 0.05), metrics: ["gaussian:sigma2=1"])
        }
        func same(_ a: [EpochRecord], _ b: [EpochRecord], _ what: String) {
            XCTAssertEqual(a.count, b.count, what)
            for (x, y) in zip(a, b) {
                XCTAssertEqual([x.trainAccuracy, x.testAccuracy, x.trainLoss, x.testLoss, x.totalMetrics!["ap2"]!],
                               [y.trainAccuracy, y.testAccuracy, y.trainLoss, y.testLoss, y.totalMetrics!["ap2"]!], "\(what) epoch \(x.epoch)")
            }
        }
        _ = try Runner.runPrune(task(.lowest, 0.5), model: spec, baseline: base, data: data, features: store, baselineKey: "b1")
        XCTAssertEqual([store.hits, store.misses], [0, 1])
        let shared = try Runner.runPrune(task(.random, 0.3), model: spec, baseline: base, data: data, features: store, baselineKey: "b1")
        XCTAssertEqual([store.hits, store.misses], [1, 1], "the second task of the baseline reuses its features")
        same(shared, try Runner.runPrune(task(.random, 0.3), model: spec, baseline: base, data: data), "shared vs afresh")
        let everywhere = try Runner.runPrune(task(.lowest, 0.5, "per-layer"), model: spec, baseline: base, data: data, features: store, baselineKey: "b1")
        XCTAssertEqual([store.hits, store.misses], [1, 1], "features of a network pruned before its head are its own")
        same(everywhere, try Runner.runPrune(task(.lowest, 0.5, "per-layer"), model: spec, baseline: base, data: data), "per-layer")
        XCTAssertNotEqual(everywhere.last!.testLoss, shared.last!.testLoss)
        _ = try Runner.runPrune(task(.lowest, 0.5), model: spec, baseline: base, data: data, features: store, baselineKey: "b2")
        XCTAssertEqual([store.hits, store.misses], [1, 2], "another baseline computes its own")
    }

    func testEpochZeroIsRightAfterPruningAndPDIsAgainstTheBaseline() throws {
        let data = try syntheticShard()
        let base = try baseline(data)
        let none = try Runner.runPrune(PruneTask(method: .lowest, sparsity: 0, seed: 1, fineTune: TrainingConfig(epochs: 0)),
                                       model: spec, baseline: base, data: data)
        XCTAssertEqual(none.count, 1)
        XCTAssertEqual(none[0].totalMetrics!["ap2"], 0)
        XCTAssertEqual(none[0].testAccuracy, base.testAccuracy, accuracy: 1e-9, "nothing pruned: the baseline's test accuracy")
        let heavy = try Runner.runPrune(PruneTask(method: .highest, sparsity: 0.9, seed: 1, fineTune: TrainingConfig(epochs: 2, batch: 32)),
                                        model: spec, baseline: base, data: data)
        XCTAssertEqual(heavy[0].pdTest, abs(base.testAccuracy - heavy[0].testAccuracy), accuracy: 1e-12)
        XCTAssertGreaterThan(heavy[0].totalMetrics!["ap2"]!, 0)
        XCTAssertEqual(heavy[0].layerMetrics.count, try spec.build(seed: 0).prunableWeights.count)
        // Only the classifier was pruned: every other layer's AP2 is zero.
        for layer in heavy[0].layerMetrics where layer.key != "classifier.4.weight" { XCTAssertEqual(layer["ap2"], 0, layer.key) }
    }

    func testWholeNetworkModeKeepsMasks() throws {
        let data = try syntheticShard()
        let base = try baseline(data)
        let records = try Runner.runPrune(PruneTask(method: .random, sparsity: 0.5, scope: "per-layer", seed: 2,
                                                    fineTune: TrainingConfig(epochs: 2, batch: 32), mode: .wholeNetwork),
                                          model: spec, baseline: base, data: data)
        XCTAssertEqual(records.count, 3)
        XCTAssert(records.allSatisfy { $0.totalMetrics!["ap2"]! > 0 })
    }

    func testInvalidTasksAreRefusedWithTheField() throws {
        let data = try syntheticShard(train: 20, test: 10)
        let base = try baseline(data)
        XCTAssertThrowsError(try Runner.runPrune(PruneTask(method: .lowest, sparsity: 2, seed: 0, fineTune: TrainingConfig()), model: spec, baseline: base, data: data)) {
            XCTAssertEqual("\($0)", "sparsity 2.0 is outside [0, 1]")
        }
        XCTAssertThrowsError(try Runner.runPrune(PruneTask(method: .lowest, sparsity: 0.5, seed: 0, fineTune: TrainingConfig(lr: -1)), model: spec, baseline: base, data: data)) {
            XCTAssertEqual("\($0)", "fine_tune.lr: must be > 0")
        }
    }
}
