import Compression
import Datasets
import Experiment
import Foundation
import NeuralCore

/// The task graph of a sweep: baselines (one per model × trial, as the paper retrains the
/// original per trial) and prune tasks depending on their baseline.
public struct Plan: Sendable {
    public struct Entry: Sendable {
        public let id: String
        public let task: SweepTask
        public let dependsOn: String?
        public init(id: String, task: SweepTask, dependsOn: String?) { self.id = id; self.task = task; self.dependsOn = dependsOn }
    }
    public let entries: [Entry]
    /// Data fingerprints the sweep file fixes, by `Plan.fingerprintKey` (journaled with the plan).
    public let fingerprints: [String: String]

    /// A plan from explicit entries (benchmarks and tests).
    public init(entries: [Entry], fingerprints: [String: String] = [:]) {
        self.entries = entries
        self.fingerprints = fingerprints
    }

    /// The journal's meta key under which the fingerprint of a dataset's shard is pinned.
    public static func fingerprintKey(dataset: String, shard: Int, of count: Int) -> String { "fingerprint:\(dataset):\(shard)/\(count)" }

    /// `count` no-op tasks sleeping `sleepMs` each (coordinator benchmarks).
    public static func noop(count: Int, sleepMs: Int) throws -> Plan {
        Plan(entries: try (0..<count).map { i in
            var t = SweepTask(kind: .noop, model: ModelSpec(.mlp), dataset: "", shardIndex: 0, shardCount: 1, seed: UInt64(i),
                              training: nil, prune: nil, baseline: nil)
            t.sleepMs = sleepMs
            return Entry(id: try t.id(), task: t, dependsOn: nil)
        })
    }

    public init(_ sweep: SweepFile) throws {
        var entries: [Entry] = []
        var seen = Set<String>()
        for model in sweep.models {
            for (trial, seed) in sweep.seeds.enumerated() {
                let shard = trial % sweep.data.shards
                let base = SweepTask(kind: .baseline, model: model, dataset: sweep.data.dataset, shardIndex: shard,
                                     shardCount: sweep.data.shards, seed: seed, training: sweep.baseline, prune: nil, baseline: nil)
                let baseID = try base.id()
                if seen.insert(baseID).inserted { entries.append(Entry(id: baseID, task: base, dependsOn: nil)) }
                for method in sweep.prune.methods {
                    for sparsity in sweep.prune.sparsities {
                        for scope in sweep.prune.scopes {
                            let p = PruneTask(method: method, sparsity: sparsity, scope: scope, seed: seed, fineTune: sweep.prune.fineTune,
                                              mode: sweep.prune.mode, trainBias: sweep.prune.trainBias, metrics: sweep.prune.metrics)
                            let task = SweepTask(kind: .prune, model: model, dataset: sweep.data.dataset, shardIndex: shard,
                                                 shardCount: sweep.data.shards, seed: seed, training: nil, prune: p, baseline: baseID)
                            let id = try task.id()
                            if seen.insert(id).inserted { entries.append(Entry(id: id, task: task, dependsOn: baseID)) }
                        }
                    }
                }
            }
        }
        self.entries = entries
        var pins: [String: String] = [:]
        for (shard, fp) in sweep.data.fingerprints.enumerated() {
            pins[Plan.fingerprintKey(dataset: sweep.data.dataset, shard: shard, of: sweep.data.shards)] = fp.lowercased()
        }
        fingerprints = pins
    }
}
