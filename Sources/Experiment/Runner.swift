import Compression
import Datasets
import Foundation
import NeuralCore
import Records

/// A trained baseline: its weights and its final-epoch accuracies, which PD is measured against.
public struct BaselineResult: Sendable {
    public var state: [(key: String, value: Tensor, type: BufferType)]
    public var trainAccuracy: Double, testAccuracy: Double, trainLoss: Double, testLoss: Double
    public var history: [EpochRecord]

    /// safetensors metadata keys that carry the accuracies with the weights.
    public var metadata: [String: String] {
        ["apsweep.train_accuracy": String(trainAccuracy), "apsweep.test_accuracy": String(testAccuracy),
         "apsweep.train_loss": String(trainLoss), "apsweep.test_loss": String(testLoss)]
    }
}

/// Runs one task with no network: a pure function of (task, local data, checkpoint) → records.
public enum Runner {
    /// Progress inside an epoch: epoch (1-based), step, steps per epoch, running loss and accuracy,
    /// images per second so far.
    public typealias StepProgress = (_ epoch: Int, _ step: Int, _ steps: Int, _ loss: Double, _ accuracy: Double, _ imagesPerSecond: Double) -> Void

    /// Trains a baseline; `onEpoch` sees each epoch's record as soon as it exists.
    /// `start`: a model of `task.model` holding the weights to begin from (a checkpoint the lab
    /// trained, `Checkpoint.model`) instead of the seed's initialisation; with 0 epochs they are
    /// only measured.
    public static func runBaseline(_ task: BaselineTask, data: Shard, start: Model? = nil, onStep: StepProgress? = nil,
                                   onEpoch: (EpochRecord) throws -> Void = { _ in }) throws -> BaselineResult {
        try task.training.validate("training")
        guard data.train.count > 0 else { throw ExperimentError.invalid("\(data.name) has no training images: a baseline cannot be trained on nothing") }
        guard data.test.count > 0 else { throw ExperimentError.invalid("\(data.name) has no test images: its accuracy could not be measured") }
        try Batches.check(data.train, fit: task.model.inputShape, classes: task.model.classes, model: task.model.name)
        let model = try start ?? task.model.build(seed: task.seed)
        let optimizer = task.training.makeOptimizer(model.parameters)
        let trainer = Trainer(model: model, loss: SoftmaxCrossEntropy(labelSmoothing: Float(task.training.labelSmoothing)), optimizer: optimizer)
        var history: [EpochRecord] = []
        var last = (train: 0.0, trainLoss: 0.0, test: 0.0, testLoss: 0.0)
        for epoch in 0..<task.training.epochs {
            let start = Date()
            optimizer.learningRate = task.training.learningRateSchedule.rate(base: Float(task.training.lr), epoch: epoch, epochs: task.training.epochs)
            var seen = 0, correct = 0, lossSum = 0.0
            let batches = Batches(data.train, batchSize: task.training.batch, shuffleSeed: task.seed, epoch: epoch,
                                  augmentation: task.training.augmentation, outputShape: task.model.inputShape)
            for (step, (x, y)) in batches.enumerated() {
                let (l, c) = try trainer.step(x, labels: y)
                seen += y.count; correct += c; lossSum += l * Double(y.count)
                onStep?(epoch + 1, step + 1, batches.count, lossSum / Double(seen), 100 * Double(correct) / Double(seen),
                        Double(seen) / max(1e-9, Date().timeIntervalSince(start)))
            }
            let (testLoss, testAccuracy) = try evaluate(model, data.test, labelSmoothing: 0)
            last = (100 * Double(correct) / Double(max(1, seen)), lossSum / Double(max(1, seen)), testAccuracy, testLoss)
            let record = EpochRecord(epoch: epoch + 1, trainAccuracy: last.train, trainLoss: last.trainLoss, testAccuracy: testAccuracy,
                                     testLoss: testLoss, pdTrain: 0, pdTest: 0, lossDiffTrain: 0, lossDiffTest: 0,
                                     learningRate: Double(optimizer.learningRate), seconds: Date().timeIntervalSince(start),
                                     layerMetrics: [], totalMetrics: nil)
            history.append(record)
            try onEpoch(record)
        }
        if task.training.epochs == 0 {
            let (trainLoss, trainAcc) = try evaluate(model, data.train, labelSmoothing: 0)
            let (testLoss, testAcc) = try evaluate(model, data.test, labelSmoothing: 0)
            last = (trainAcc, trainLoss, testAcc, testLoss)
        }
        return BaselineResult(state: model.stateDict(), trainAccuracy: last.train, testAccuracy: last.test,
                              trainLoss: last.trainLoss, testLoss: last.testLoss, history: history)
    }

    /// Mean loss and accuracy (percent) of `model` over `set` in eval mode.
    public static func evaluate(_ model: Model, _ set: LabeledImages, labelSmoothing: Float) throws -> (loss: Double, accuracy: Double) {
        try Batches.check(set, fit: model.inputShape, classes: model.spec.classes, model: model.spec.name)
        let loss = SoftmaxCrossEntropy(labelSmoothing: labelSmoothing)
        var total = 0.0, correct = 0
        for (x, y) in Batches(set, batchSize: 500, shuffleSeed: nil, outputShape: model.inputShape) {
            let (l, _, c) = try loss.evaluate(logits: try model.forward(x, mode: .eval), labels: y)
            total += l * Double(y.count); correct += c
        }
        return (total / Double(max(1, set.count)), 100 * Double(correct) / Double(max(1, set.count)))
    }

    /// Prunes the baseline and fine-tunes it; records epoch 0 (right after pruning) and every
    /// fine-tuning epoch through `onRecord` as they are produced, and returns them all.
    ///
    /// `features`, with the identity of the baseline's weights (`baselineKey`), lets prune tasks
    /// of one baseline share the classifier's inputs: when only the classifier is pruned they are
    /// the unpruned network's, the same for every method, sparsity and seed.
    public static func runPrune(_ task: PruneTask, model spec: ModelSpec, baseline: BaselineResult, data: Shard,
                                features store: FeatureStore? = nil, baselineKey: String? = nil,
                                onRecord: (EpochRecord) throws -> Void = { _ in }) throws -> [EpochRecord] {
        try task.validate()
        let scope = try PruningScope(parsing: task.scope)
        let variants = try task.metrics.map(MetricVariant.init(parsing:))
        try Batches.check(data.train, fit: spec.inputShape, classes: spec.classes, model: spec.name)
        let model = try spec.build(seed: 0)
        try model.load(Dictionary(baseline.state.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a }))
        let original = Dictionary(uniqueKeysWithValues: model.prunableWeights.map { ($0.0, $0.1.value) })
        let metricKeys = model.prunableWeights.map(\.0)
        let start = Date()
        let masks = try Pruner.prune(model, method: task.method, sparsity: task.sparsity, scope: scope, seed: task.seed)

        func metrics() throws -> ([MetricValues], MetricValues) {
            let current = Dictionary(uniqueKeysWithValues: model.prunableWeights.map { ($0.0, $0.1.value) })
            return try NetworkMetrics.compute(original: original, pruned: current, keys: metricKeys, variants: variants)
        }
        func record(_ epoch: Int, trainAcc: Double, trainLoss: Double, testAcc: Double, testLoss: Double, lr: Double, since: Date) throws -> EpochRecord {
            let (layers, total) = try metrics()
            return EpochRecord(epoch: epoch, trainAccuracy: trainAcc, trainLoss: trainLoss, testAccuracy: testAcc, testLoss: testLoss,
                               pdTrain: abs(baseline.trainAccuracy - trainAcc), pdTest: abs(baseline.testAccuracy - testAcc),
                               lossDiffTrain: trainLoss - baseline.trainLoss, lossDiffTest: testLoss - baseline.testLoss,
                               learningRate: lr, seconds: Date().timeIntervalSince(since), layerMetrics: layers, totalMetrics: total)
        }

        let ft = task.fineTune
        let lossFn = SoftmaxCrossEntropy(labelSmoothing: Float(ft.labelSmoothing))
        // Each mode supplies: the optimizer, how to evaluate (train or test set), and one training
        // pass over an epoch's batches returning (images, correct, summed loss).
        let optimizer: Optimizer
        let measure: (_ train: Bool) throws -> (loss: Double, accuracy: Double)
        let trainEpoch: (_ epoch: Int) throws -> (seen: Int, correct: Int, lossSum: Double)
        switch task.mode {
        case .lastLayer:
            let head = model.classifier
            for p in model.parameters { p.requiresGrad = false }
            head.weight.requiresGrad = true
            head.bias?.requiresGrad = task.trainBias
            let opt = MaskedOptimizer(ft.makeOptimizer([head.weight] + (head.bias.map { [$0] } ?? [])), masks: masks, model: model)
            optimizer = opt
            // Features before the classifier: computed once from the pruned, frozen network.
            // Another task of this baseline computed the same ones when only the head is pruned.
            let onlyHead = masks.keys.allSatisfy { $0 == model.classifierWeightKey }
            let shareable = onlyHead ? baselineKey.map { "\($0)|\(data.fingerprint)|\(spec.inputShape)" } : nil
            let features = task.cacheFeatures ? try store?.features(key: shareable) { try FeatureCache(model: model, data: data) }
                ?? FeatureCache(model: model, data: data) : nil
            measure = { train in
                try features?.evaluate(head, train: train, loss: lossFn) ?? evaluate(model, train ? data.train : data.test, labelSmoothing: 0)
            }
            trainEpoch = { epoch in
                var seen = 0, correct = 0, lossSum = 0.0
                let batches = Batches(data.train, batchSize: ft.batch, shuffleSeed: task.seed, epoch: epoch, outputShape: spec.inputShape)
                func step(_ h: Tensor, _ y: [Int]) throws {
                    let (l, c) = try stepHead(head, h, y, lossFn, opt)
                    seen += y.count; correct += c; lossSum += l * Double(y.count)
                }
                if let features {
                    for chunk in stride(from: 0, to: batches.order.count, by: ft.batch) {
                        let (h, y) = features.gather(Array(batches.order[chunk..<min(chunk + ft.batch, batches.order.count)]), train: true)
                        try step(h, y)
                    }
                } else {
                    for (x, y) in batches { try step(try model.forwardToClassifier(x, mode: .eval), y) }
                }
                return (seen, correct, lossSum)
            }
        case .wholeNetwork:
            for p in model.parameters { p.requiresGrad = true }
            let opt = MaskedOptimizer(ft.makeOptimizer(model.parameters), masks: masks, model: model)
            optimizer = opt
            let trainer = Trainer(model: model, loss: lossFn, optimizer: opt)
            measure = { train in try evaluate(model, train ? data.train : data.test, labelSmoothing: 0) }
            trainEpoch = { epoch in
                var seen = 0, correct = 0, lossSum = 0.0
                for (x, y) in Batches(data.train, batchSize: ft.batch, shuffleSeed: task.seed, epoch: epoch,
                                      augmentation: ft.augmentation, outputShape: spec.inputShape) {
                    let (l, c) = try trainer.step(x, labels: y)
                    seen += y.count; correct += c; lossSum += l * Double(y.count)
                }
                return (seen, correct, lossSum)
            }
        }

        var records: [EpochRecord] = []
        let (trainLoss0, trainAcc0) = try measure(true)
        let (testLoss0, testAcc0) = try measure(false)
        let r0 = try record(0, trainAcc: trainAcc0, trainLoss: trainLoss0, testAcc: testAcc0, testLoss: testLoss0, lr: 0, since: start)
        records.append(r0)
        try onRecord(r0)
        for epoch in 0..<ft.epochs {
            let since = Date()
            optimizer.learningRate = ft.learningRateSchedule.rate(base: Float(ft.lr), epoch: epoch, epochs: ft.epochs)
            let (seen, correct, lossSum) = try trainEpoch(epoch)
            let (testLoss, testAcc) = try measure(false)
            let r = try record(epoch + 1, trainAcc: 100 * Double(correct) / Double(max(1, seen)), trainLoss: lossSum / Double(max(1, seen)),
                               testAcc: testAcc, testLoss: testLoss, lr: Double(optimizer.learningRate), since: since)
            records.append(r)
            try onRecord(r)
        }
        return records
    }

    private static func stepHead(_ head: Linear, _ h: Tensor, _ y: [Int], _ loss: SoftmaxCrossEntropy, _ optimizer: Optimizer) throws -> (Double, Int) {
        head.weight.zeroGrad()
        head.bias?.zeroGrad()
        let logits = try head.forward(h, mode: .train)
        let (l, g, c) = try loss.evaluate(logits: logits, labels: y)
        _ = try head.backward(g)
        optimizer.step()
        return (l, c)
    }
}

/// The classifier's inputs of the most recent baseline a process fine-tuned from, kept for the
/// next prune task of that baseline (tasks of one baseline come in a row in plan order). Holds
/// one entry: a different key replaces it. Thread-safe.
public final class FeatureStore: @unchecked Sendable {
    private let lock = NSLock()
    private var entry: (key: String, cache: FeatureCache)?
    public private(set) var hits = 0, misses = 0
    public init() {}

    /// The cached features for `key`, or `make()`'s (kept under `key`); nil key: never shared.
    func features(key: String?, make: () throws -> FeatureCache) throws -> FeatureCache {
        guard let key else { return try make() }
        lock.lock()
        if let e = entry, e.key == key { hits += 1; lock.unlock(); return e.cache }
        misses += 1
        entry = nil  // the old entry's memory goes before the new one is built
        lock.unlock()
        let made = try make()
        lock.lock(); entry = (key, made); lock.unlock()
        return made
    }
}

/// The classifier's inputs for every training and test image, computed once in eval mode.
struct FeatureCache {
    let train: [Float], test: [Float]
    let trainLabels: [Int], testLabels: [Int]
    let width: Int

    init(model: Model, data: Shard) throws {
        func compute(_ set: LabeledImages) throws -> ([Float], Int) {
            var out: [Float] = []
            var width = 0
            for (x, _) in Batches(set, batchSize: 500, shuffleSeed: nil, outputShape: model.inputShape) {
                let h = try model.forwardToClassifier(x, mode: .eval)
                width = h.count / max(1, h.shape[0])
                out.append(contentsOf: h.scalars)
            }
            return (out, width)
        }
        (train, width) = try compute(data.train)
        (test, _) = try compute(data.test)
        trainLabels = data.train.labels
        testLabels = data.test.labels
    }

    /// The feature rows of `indices` as [n, width] and their labels.
    func gather(_ indices: [Int], train isTrain: Bool) -> (Tensor, [Int]) {
        let source = isTrain ? train : test, labels = isTrain ? trainLabels : testLabels
        let w = width
        let t = Tensor(shape: [indices.count, w], unsafeUninitialized: { out in
            source.withUnsafeBufferPointer { src in
                for (r, i) in indices.enumerated() { (out + r * w).update(from: src.baseAddress! + i * w, count: w) }
            }
        })
        return (t, indices.map { labels[$0] })
    }

    func evaluate(_ head: Linear, train isTrain: Bool, loss: SoftmaxCrossEntropy) throws -> (Double, Double) {
        let n = isTrain ? trainLabels.count : testLabels.count
        var total = 0.0, correct = 0
        for start in stride(from: 0, to: n, by: 1000) {
            let (h, y) = gather(Array(start..<min(n, start + 1000)), train: isTrain)
            let (l, _, c) = try SoftmaxCrossEntropy().evaluate(logits: try head.forward(h, mode: .eval), labels: y)
            total += l * Double(y.count); correct += c
        }
        return (total / Double(max(1, n)), 100 * Double(correct) / Double(max(1, n)))
    }
}
