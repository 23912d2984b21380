import Compression
import Datasets
import Foundation
import NeuralCore
import Records

/// What one task produced.
public enum TaskOutcome: Sendable {
    /// A trained baseline: its weights (written by the caller as a checkpoint) and records.
    case baseline(BaselineResult)
    /// A pruned and fine-tuned network's records, epoch 0 first.
    case prune([EpochRecord])
    case noop
}

/// Why a task could not run or finish. `unusableCheckpoint` names a required checkpoint that
/// cannot be used (unreadable, another architecture, non-finite weights): every task needing it
/// would fail the same way.
public enum TaskError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    case unusableCheckpoint(path: String, reason: String)
    case cancelled
    public var description: String {
        switch self {
        case let .invalid(m): return m
        case let .unusableCheckpoint(path, reason): return "the baseline checkpoint \(path) cannot be used: \(reason)"
        case .cancelled: return "cancelled"
        }
    }
}

/// Runs one sweep task from start to end with no network: the same code for a worker and for
/// `apsweep run-task`. A pure function of (task, local data, checkpoint) → outcome; records are
/// passed to `onRecord` as they are produced (throw `TaskError.cancelled` there to stop).
public enum TaskRunner {
    /// `features` keeps the classifier's inputs of a baseline for the next prune task from it
    /// (a worker's store lives as long as it does); nil computes them for every task.
    public static func run(_ task: SweepTask, data: Shard?, checkpoint: String?, features: FeatureStore? = nil, onStep: Runner.StepProgress? = nil,
                           onRecord: (EpochRecord) throws -> Void = { _ in }) throws -> TaskOutcome {
        switch task.kind {
        case .noop:
            usleep(UInt32(max(0, min(task.sleepMs ?? 0, 3_600_000))) * 1000)
            return .noop
        case .baseline:
            guard let data else { throw TaskError.invalid("a baseline task needs its data (\(task.dataset) shard \(task.shardIndex)/\(task.shardCount))") }
            var start: Model?
            if let hash = task.start {
                // A lab's checkpoint: its weights, strictly (the coordinator checked them when
                // it planned; a worker's copy is checked again, by hash on arrival and here).
                guard let checkpoint else { throw TaskError.invalid("the baseline starts from checkpoint \(hash.prefix(12)), which this worker does not hold") }
                do { start = try Checkpoint.model(path: checkpoint, spec: task.model) } catch {
                    throw TaskError.unusableCheckpoint(path: checkpoint, reason: "\(error)")
                }
            }
            let result = try Runner.runBaseline(BaselineTask(model: task.model, training: task.training ?? TrainingConfig(), seed: task.seed),
                                                data: data, start: start, onStep: onStep, onEpoch: { r in
                                                    try r.validate()
                                                    try onRecord(r)
                                                })
            return .baseline(result)
        case .prune:
            guard let data else { throw TaskError.invalid("a prune task needs its data (\(task.dataset) shard \(task.shardIndex)/\(task.shardCount))") }
            guard let prune = task.prune else { throw TaskError.invalid("prune task without prune settings") }
            guard let checkpoint else { throw TaskError.invalid("prune task without its baseline checkpoint") }
            let spec: ModelSpec, base: BaselineResult
            do {
                // A checkpoint written elsewhere carries no accuracies: measure them on this data.
                (spec, base) = try Checkpoint.read(path: checkpoint, spec: task.model) { model in
                    let train = try Runner.evaluate(model, data.train, labelSmoothing: 0), test = try Runner.evaluate(model, data.test, labelSmoothing: 0)
                    return (train.accuracy, train.loss, test.accuracy, test.loss)
                }
                try Checkpoint.checkFinite(base, path: checkpoint)
            } catch {
                throw TaskError.unusableCheckpoint(path: checkpoint, reason: "\(error)")
            }
            // The baseline's identity: its task (content-addressed) and the checkpoint file read.
            let records = try Runner.runPrune(prune, model: spec, baseline: base, data: data, features: features,
                                              baselineKey: "\(task.baseline ?? "")|\(checkpoint)", onRecord: { r in
                try r.validate()
                try onRecord(r)
            })
            return .prune(records)
        }
    }
}
