import Compression
import Datasets
import NeuralCore

/// How to train: the optimizer, its schedule and the epochs.
public struct TrainingConfig: Sendable, Equatable, Codable {
    public enum OptimizerKind: String, Sendable, Codable, CaseIterable { case sgd, adamw }
    public enum ScheduleKind: String, Sendable, Codable, CaseIterable { case constant, step, cosine }

    public var epochs: Int
    public var batch: Int
    public var optimizer: OptimizerKind
    public var lr: Double
    public var momentum: Double
    public var nesterov: Bool
    public var weightDecay: Double
    public var schedule: ScheduleKind
    /// StepLR's period in epochs (schedule `step`); 0 means a third of the epochs.
    public var stepEvery: Int
    public var stepGamma: Double
    public var labelSmoothing: Double
    /// Random-crop padding for augmentation (0 = none); flips come with it.
    public var augmentPadding: Int

    public init(epochs: Int = 10, batch: Int = 128, optimizer: OptimizerKind = .sgd, lr: Double = 0.05, momentum: Double = 0.9,
                nesterov: Bool = false, weightDecay: Double = 5e-4, schedule: ScheduleKind = .cosine, stepEvery: Int = 0,
                stepGamma: Double = 0.1, labelSmoothing: Double = 0, augmentPadding: Int = 0) {
        self.epochs = epochs; self.batch = batch; self.optimizer = optimizer; self.lr = lr; self.momentum = momentum
        self.nesterov = nesterov; self.weightDecay = weightDecay; self.schedule = schedule; self.stepEvery = stepEvery
        self.stepGamma = stepGamma; self.labelSmoothing = labelSmoothing; self.augmentPadding = augmentPadding
    }

    /// Checks ranges; the message names the field.
    public func validate(_ prefix: String) throws {
        func bad(_ field: String, _ why: String) -> ExperimentError { .invalid("\(prefix).\(field): \(why)") }
        if epochs < 0 { throw bad("epochs", "must be ≥ 0") }
        if batch < 1 { throw bad("batch", "must be ≥ 1") }
        if !(lr > 0) { throw bad("lr", "must be > 0") }
        if momentum < 0 || momentum >= 1 { throw bad("momentum", "must be in [0, 1)") }
        if nesterov && momentum == 0 { throw bad("nesterov", "needs momentum > 0") }
        if weightDecay < 0 { throw bad("weight_decay", "must be ≥ 0") }
        if labelSmoothing < 0 || labelSmoothing >= 1 { throw bad("label_smoothing", "must be in [0, 1)") }
        if augmentPadding < 0 { throw bad("augment_padding", "must be ≥ 0") }
    }

    func makeOptimizer(_ parameters: [Parameter]) -> Optimizer {
        switch optimizer {
        case .sgd: return SGD(parameters, learningRate: Float(lr), momentum: Float(momentum), weightDecay: Float(weightDecay), nesterov: nesterov)
        case .adamw: return AdamW(parameters, learningRate: Float(lr), weightDecay: Float(weightDecay))
        }
    }

    var learningRateSchedule: LearningRateSchedule {
        switch schedule {
        case .constant: return .constant
        case .step: return .step(every: stepEvery > 0 ? stepEvery : max(1, epochs / 3), gamma: Float(stepGamma))
        case .cosine: return .cosine(minimum: 0)
        }
    }

    var augmentation: Augmentation? { augmentPadding > 0 ? Augmentation(cropPadding: augmentPadding) : nil }
}

/// Train the original network of one trial.
public struct BaselineTask: Sendable, Equatable, Codable {
    public var model: ModelSpec
    public var training: TrainingConfig
    /// Seeds initialisation and data order.
    public var seed: UInt64

    public init(model: ModelSpec, training: TrainingConfig, seed: UInt64) {
        self.model = model; self.training = training; self.seed = seed
    }
}

/// Which parameters fine-tuning updates.
public enum FineTuneMode: String, Sendable, Codable, CaseIterable {
    /// Only the classifier's unpruned weights (and its bias if `trainBias`); everything before it
    /// is frozen in eval mode (the paper's protocol). Features are computed once and cached.
    case lastLayer = "last-layer"
    /// Every parameter trains in train mode; masks hold.
    case wholeNetwork = "whole-network"
}

/// Prune a baseline and fine-tune it, recording metrics after every epoch.
public struct PruneTask: Sendable, Equatable, Codable {
    public var method: PruningMethod
    public var sparsity: Double
    public var scope: String
    /// Seeds random pruning and the fine-tuning data order.
    public var seed: UInt64
    public var fineTune: TrainingConfig
    public var mode: FineTuneMode
    public var trainBias: Bool
    /// Use cached features in `last-layer` mode (same numbers, much faster); false recomputes
    /// them every batch, for checking.
    public var cacheFeatures: Bool
    /// Metric variants as text (`gaussian:sigma2=1`, `student-t:df=4,…`).
    public var metrics: [String]

    public init(method: PruningMethod, sparsity: Double, scope: String = "last", seed: UInt64, fineTune: TrainingConfig,
                mode: FineTuneMode = .lastLayer, trainBias: Bool = false, cacheFeatures: Bool = true,
                metrics: [String] = ["gaussian:sigma2=1"]) {
        self.method = method; self.sparsity = sparsity; self.scope = scope; self.seed = seed; self.fineTune = fineTune
        self.mode = mode; self.trainBias = trainBias; self.cacheFeatures = cacheFeatures; self.metrics = metrics
    }

    public func validate() throws {
        guard sparsity >= 0, sparsity <= 1 else { throw ExperimentError.invalid("sparsity \(sparsity) is outside [0, 1]") }
        _ = try PruningScope(parsing: scope)
        for m in metrics { _ = try MetricVariant(parsing: m) }
        try fineTune.validate("fine_tune")
    }
}

public enum ExperimentError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    public var description: String {
        switch self { case let .invalid(why): return why }
    }
}
