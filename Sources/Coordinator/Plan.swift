import Compression
import Datasets
import Digest
import Experiment
import Foundation
import NeuralCore
import Scheduling

/// The task graph of a sweep: baselines (one per model × trial, as the paper retrains the
/// original per trial) and prune tasks depending on their baseline. Every task's id is the first
/// 24 hex digits of the SHA-256 of its canonical JSON spec, so a task is never stored twice.
public struct Plan: Sendable {
    public struct Entry: Sendable {
        public let id: String
        public let task: SweepTask
        public let dependsOn: String?
        /// The canonical JSON (what Assign carries, what the id hashes).
        public let spec: [UInt8]
        public init(task: SweepTask, dependsOn: String?) throws {
            let spec = try task.canonicalJSON()
            self.task = task
            self.spec = spec
            self.id = SweepTask.id(ofSpec: spec)
            self.dependsOn = dependsOn
        }
        /// A placeholder for a task whose encoding failed (the plan is refused).
        init(failed task: SweepTask) {
            self.task = task; spec = []; id = ""; dependsOn = nil
        }
    }
    public let entries: [Entry]
    /// Data fingerprints the sweep file fixes, by pin key (journaled with the plan).
    public let fingerprints: [String: String]

    /// A plan from explicit entries (benchmarks and tests).
    public init(entries: [Entry], fingerprints: [String: String] = [:]) {
        self.entries = entries
        self.fingerprints = fingerprints
    }

    /// The journal's meta key under which the fingerprint of a dataset's shard is pinned.
    public static func fingerprintKey(dataset: String, shard: Int, of count: Int) -> String {
        DataKey(dataset: dataset, shard: shard, count: count).pinKey
    }

    /// `count` no-op tasks sleeping `sleepMs` each (coordinator benchmarks).
    public static func noop(count: Int, sleepMs: Int) throws -> Plan {
        let tasks = (0..<count).map { i -> SweepTask in
            var t = SweepTask(kind: .noop, model: ModelSpec(.mlp), dataset: "", shardIndex: 0, shardCount: 1, seed: UInt64(i),
                              training: nil, prune: nil, baseline: nil)
            t.sleepMs = sleepMs
            return t
        }
        return Plan(entries: try Plan.entries(tasks.map { ($0, nil) }))
    }

    /// Canonical specs and ids of many tasks, computed over the cores (the JSON encoding is most
    /// of a plan's cost: 100,000 tasks take about a second). `position(i)` is where task `i`'s
    /// entry goes in the `count` entries returned; every position must be given exactly once
    /// by the tasks and `fixed` (entries already made) together.
    static func entries(_ tasks: [(SweepTask, String?)], count: Int? = nil, fixed: [(position: Int, entry: Entry)] = [],
                        position: (Int) -> Int = { $0 }) throws -> [Entry] {
        let n = count ?? tasks.count
        precondition(n == tasks.count + fixed.count)
        let threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
        guard n > 0 else { return [] }
        let failure = FirstError()
        // Each entry is built once, in place: at 100,000 tasks every copy of the array is ~40 MB.
        let out = [Entry](unsafeUninitializedCapacity: n) { buffer, initialized in
            let base = SendablePointer(buffer.baseAddress!)
            for f in fixed { (base.pointer + f.position).initialize(to: f.entry) }
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                var i = t
                while i < tasks.count {
                    let entry: Entry
                    do { entry = try Entry(task: tasks[i].0, dependsOn: tasks[i].1) } catch {
                        failure.set(error)
                        entry = Entry(failed: tasks[i].0)
                    }
                    (base.pointer + position(i)).initialize(to: entry)
                    i += threads
                }
            }
            initialized = n
        }
        if let e = failure.error { throw e }
        return out
    }

    /// `checkpoints`: the SHA-256 of each checkpoint file a model starts from, by path (the
    /// coordinator stores the files as blobs first: `StartCheckpoints`).
    public init(_ sweep: SweepFile, checkpoints: [String: String] = [:]) throws {
        var baselines: [(SweepTask, String?)] = []
        var prunes: [(SweepTask, String?)] = []
        var prunesOf: [Int] = []                // prune tasks per baseline, in plan order
        for (m, model) in sweep.models.enumerated() {
            // A model from checkpoints has one trial per file (the sweep's seeds in order, then
            // 1, 2, …); the others one per seed.
            let start = m < sweep.starts.count ? sweep.starts[m] : nil
            let trials: [(seed: UInt64, file: String?)] = start.map { s in
                s.checkpoints.enumerated().map { i, f in (i < sweep.seeds.count ? sweep.seeds[i] : UInt64(i + 1), f) }
            } ?? sweep.seeds.map { ($0, nil) }
            for (trial, (seed, file)) in trials.enumerated() {
                let shard = trial % sweep.data.shards
                var base = SweepTask(kind: .baseline, model: model, dataset: sweep.data.dataset, shardIndex: shard,
                                     shardCount: sweep.data.shards, seed: seed, training: start?.training ?? sweep.baseline(model: m), prune: nil, baseline: nil)
                if let file {
                    guard let hash = checkpoints[file] else { throw SweepError.invalid("models[\(m)]: checkpoint \(file) was not stored before planning") }
                    base.start = hash
                }
                baselines.append((base, nil))
                let before = prunes.count
                for method in sweep.prune.methods {
                    for sparsity in sweep.prune.sparsities {
                        for scope in sweep.prune.scopes {
                            let p = PruneTask(method: method, sparsity: sparsity, scope: scope, seed: seed, fineTune: sweep.fineTune(model: m),
                                              mode: sweep.prune.mode, trainBias: sweep.prune.trainBias, metrics: sweep.prune.metrics)
                            prunes.append((SweepTask(kind: .prune, model: model, dataset: sweep.data.dataset, shardIndex: shard,
                                                     shardCount: sweep.data.shards, seed: seed, training: nil, prune: p, baseline: nil), nil))
                        }
                    }
                }
                prunesOf.append(prunes.count - before)
            }
        }
        // Baselines first (their ids are in their prune tasks' specs), then every prune task
        // encoded straight into its place: each baseline followed by its prune tasks.
        let baseEntries = try Plan.entries(baselines)
        var basePosition: [Int] = [], baselineOf: [Int] = []
        basePosition.reserveCapacity(baseEntries.count)
        baselineOf.reserveCapacity(prunes.count)
        var next = 0
        for (b, n) in prunesOf.enumerated() {
            basePosition.append(next)
            next += 1 + n
            let id = baseEntries[b].id
            for i in prunes.indices[baselineOf.count..<(baselineOf.count + n)] {
                prunes[i].0.baseline = id
                prunes[i].1 = id
            }
            baselineOf += repeatElement(b, count: n)
        }
        let all = try Plan.entries(prunes, count: baseEntries.count + prunes.count,
                                   fixed: baseEntries.enumerated().map { (basePosition[$0.offset], $0.element) },
                                   position: { i in i + baselineOf[i] + 1 })
        // Two tasks with one spec are one task (the first is kept).
        var seen = Set<String>(minimumCapacity: all.count)
        var duplicates = false
        for e in all where !seen.insert(e.id).inserted { duplicates = true; break }
        if duplicates {
            seen.removeAll(keepingCapacity: true)
            entries = all.filter { seen.insert($0.id).inserted }
        } else {
            entries = all
        }
        var pins: [String: String] = [:]
        for (shard, fp) in sweep.data.fingerprints.enumerated() {
            pins[Plan.fingerprintKey(dataset: sweep.data.dataset, shard: shard, of: sweep.data.shards)] = fp.lowercased()
        }
        fingerprints = pins
    }

    /// The plan as the scheduler and the journal see it.
    public var planned: [PlannedTask] { entries.map { Plan.planned(id: $0.id, task: $0.task, spec: $0.spec, dependsOn: $0.dependsOn) } }

    static func planned(id: String, task: SweepTask, spec: [UInt8], dependsOn: String?) -> PlannedTask {
        let epochs: ClosedRange<Int>?
        switch task.kind {
        case .baseline: epochs = (task.training?.epochs ?? 0) >= 1 ? 1...(task.training!.epochs) : nil
        case .prune: epochs = 0...(task.prune?.fineTune.epochs ?? 0)
        case .noop: epochs = nil
        }
        let data = task.dataset.isEmpty ? nil : DataKey(dataset: task.dataset, shard: task.shardIndex, count: task.shardCount)
        let kind: PlannedTask.Kind = task.kind == .baseline ? .baseline : (task.kind == .prune ? .prune : .noop)
        return PlannedTask(id: id, kind: kind, label: task.label, spec: spec, dependsOn: dependsOn, data: data, epochs: epochs, requiredBlob: task.start)
    }

    /// Describes a task of an older journal from its spec (journal migrations).
    public static func describe(_ id: String, _ kind: String, _ label: String, _ spec: [UInt8], _ dependsOn: String?) throws -> PlannedTask {
        let task = try SweepTask.decode(spec)
        return planned(id: id, task: task, spec: spec, dependsOn: dependsOn)
    }
}

/// The first error any thread of `concurrentPerform` met.
final class FirstError: @unchecked Sendable {
    private let lock = NSLock()
    private var first: Error?
    var error: Error? { lock.lock(); defer { lock.unlock() }; return first }
    func set(_ e: Error) { lock.lock(); if first == nil { first = e }; lock.unlock() }
}

/// A pointer that may cross into `concurrentPerform` (each thread writes its own indices).
struct SendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ p: UnsafeMutablePointer<T>) { pointer = p }
}
