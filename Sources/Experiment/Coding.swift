import Compression
import NeuralCore

// Task and sweep files use snake_case keys, and every field with a default may be left out.

extension TrainingConfig {
    enum CodingKeys: String, CodingKey {
        case epochs, batch, optimizer, lr, momentum, nesterov, schedule
        case weightDecay = "weight_decay", stepEvery = "step_every", stepGamma = "step_gamma"
        case labelSmoothing = "label_smoothing", augmentPadding = "augment_padding"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrainingConfig()
        self.init(epochs: try c.decodeIfPresent(Int.self, forKey: .epochs) ?? d.epochs,
                  batch: try c.decodeIfPresent(Int.self, forKey: .batch) ?? d.batch,
                  optimizer: try c.decodeIfPresent(OptimizerKind.self, forKey: .optimizer) ?? d.optimizer,
                  lr: try c.decodeIfPresent(Double.self, forKey: .lr) ?? d.lr,
                  momentum: try c.decodeIfPresent(Double.self, forKey: .momentum) ?? d.momentum,
                  nesterov: try c.decodeIfPresent(Bool.self, forKey: .nesterov) ?? d.nesterov,
                  weightDecay: try c.decodeIfPresent(Double.self, forKey: .weightDecay) ?? d.weightDecay,
                  schedule: try c.decodeIfPresent(ScheduleKind.self, forKey: .schedule) ?? d.schedule,
                  stepEvery: try c.decodeIfPresent(Int.self, forKey: .stepEvery) ?? d.stepEvery,
                  stepGamma: try c.decodeIfPresent(Double.self, forKey: .stepGamma) ?? d.stepGamma,
                  labelSmoothing: try c.decodeIfPresent(Double.self, forKey: .labelSmoothing) ?? d.labelSmoothing,
                  augmentPadding: try c.decodeIfPresent(Int.self, forKey: .augmentPadding) ?? d.augmentPadding)
    }
}

extension PruneTask {
    enum CodingKeys: String, CodingKey {
        case method, sparsity, scope, seed, mode, metrics
        case fineTune = "fine_tune", trainBias = "train_bias", cacheFeatures = "cache_features"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(method: try c.decode(PruningMethod.self, forKey: .method),
                  sparsity: try c.decode(Double.self, forKey: .sparsity),
                  scope: try c.decodeIfPresent(String.self, forKey: .scope) ?? "last",
                  seed: try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0,
                  fineTune: try c.decodeIfPresent(TrainingConfig.self, forKey: .fineTune) ?? TrainingConfig(epochs: 20),
                  mode: try c.decodeIfPresent(FineTuneMode.self, forKey: .mode) ?? .lastLayer,
                  trainBias: try c.decodeIfPresent(Bool.self, forKey: .trainBias) ?? false,
                  cacheFeatures: try c.decodeIfPresent(Bool.self, forKey: .cacheFeatures) ?? true,
                  metrics: try c.decodeIfPresent([String].self, forKey: .metrics) ?? ["gaussian:sigma2=1"])
    }
}
