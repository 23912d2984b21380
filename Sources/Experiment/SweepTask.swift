import Datasets
import Digest
import Foundation
import NeuralCore

/// One unit of work as it travels in `Assign` (JSON, spec format `apsweep.task.v1+json`).
public struct SweepTask: Codable, Equatable, Sendable {
    /// `noop` tasks sleep `sleep_ms` and report an empty result: calibration for benchmarks of the
    /// coordinator itself (dispatch rate, overhead), with no data and no training.
    public enum Kind: String, Codable, Sendable { case baseline, prune, noop }
    public var kind: Kind
    public var model: ModelSpec
    public var dataset: String
    public var shardIndex: Int
    public var shardCount: Int
    /// The trial's seed (initialisation and data order for the baseline; pruning and order for prune).
    public var seed: UInt64
    public var training: TrainingConfig?
    public var prune: PruneTask?
    /// The baseline task a prune task starts from.
    public var baseline: String?
    /// How long a `noop` task sleeps.
    public var sleepMs: Int?
    /// A baseline that starts from a checkpoint the lab already has (the SHA-256 of its
    /// safetensors bytes, a blob of the coordinator): its weights are loaded, strictly, and
    /// trained for `training.epochs` (0: the checkpoint is the baseline, only measured).
    public var start: String?

    public init(kind: Kind, model: ModelSpec, dataset: String, shardIndex: Int, shardCount: Int, seed: UInt64,
                training: TrainingConfig?, prune: PruneTask?, baseline: String?) {
        self.kind = kind; self.model = model; self.dataset = dataset; self.shardIndex = shardIndex; self.shardCount = shardCount
        self.seed = seed; self.training = training; self.prune = prune; self.baseline = baseline
    }

    enum CodingKeys: String, CodingKey {
        case kind, model, dataset, seed, training, prune, baseline, start
        case shardIndex = "shard_index", shardCount = "shard_count", sleepMs = "sleep_ms"
    }

    public static let specFormat = "apsweep.task.v1+json"

    /// Canonical JSON (sorted keys; the bytes JSONEncoder with `.sortedKeys` writes): what the id
    /// is a hash of and what `Assign` carries.
    public func canonicalJSON() throws -> [UInt8] {
        var json = CanonicalJSON()
        json.task(self)
        return json.bytes
    }

    /// The task id: the first 24 hex digits of SHA-256 of the canonical JSON. Two identical tasks
    /// have one id, so a task is never stored or run twice by mistake.
    public func id() throws -> String { SweepTask.id(ofSpec: try canonicalJSON()) }

    /// The id of a task from its canonical JSON.
    public static func id(ofSpec spec: [UInt8]) -> String { String(SHA256Hasher.hex(spec).prefix(24)) }

    public static func decode(_ bytes: [UInt8]) throws -> SweepTask {
        try JSONDecoder().decode(SweepTask.self, from: Data(bytes))
    }

    /// A short human label: "lenet5 seed 1 baseline" or "lenet5 seed 1 lowest p=0.5 last".
    public var label: String {
        switch kind {
        case .baseline: return start == nil ? "\(model.name) seed \(seed) baseline" : "\(model.name) seed \(seed) baseline from \(start!.prefix(12))"
        case .prune:
            let p = prune!
            return "\(model.name) seed \(seed) \(p.method.rawValue) p=\(p.sparsity) \(p.scope)"
        case .noop: return "noop \(seed) (\(sleepMs ?? 0) ms)"
        }
    }
}

