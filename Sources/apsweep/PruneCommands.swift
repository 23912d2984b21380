import ArgumentParser
import Compression
import Coordinator
import Datasets
import Experiment
import Foundation
import NeuralCore
import Records
import Yams

extension PruningMethod: ExpressibleByArgument {}

/// Model options for checkpoints that carry no apsweep spec (written by PyTorch).
struct ModelOptions: ParsableArguments {
    @Option(help: "Architecture, for checkpoints without apsweep metadata.") var model: Architecture?
    @Option(help: "Width multiplier (with --model).") var width: Double = 1
    @Option(help: "Input shape CxHxW (with --model).") var input: String = "1x28x28"
    @Option(help: "Classes (with --model).") var classes: Int = 10

    func spec() throws -> ModelSpec? {
        guard let model else { return nil }
        return ModelSpec(model, width: width, inputShape: try parseShape(input), classes: classes)
    }
}

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Prune a checkpoint and write the pruned weights (no fine-tuning).")
    @Option(help: "The checkpoint to prune.") var checkpoint: String
    @Option(help: "lowest, highest, random, highest-code-faithful, structured-l1, structured-l2.") var method: PruningMethod
    @Option(help: "Fraction of weights (or rows) to remove, in [0, 1].") var sparsity: Double
    @Option(help: "last, per-layer, global, or layers:KEY[,KEY…].") var scope = "last"
    @Option(help: "Seed for random pruning.") var seed: UInt64 = 0
    @Option(help: "Where to write the pruned checkpoint.") var out: String
    @Flag(help: "Overwrite --out even when it is the checkpoint being pruned.") var force = false
    @OptionGroup var modelOptions: ModelOptions

    func validate() throws {
        guard (0...1).contains(sparsity) else { throw ValidationError("--sparsity must be in [0, 1], got \(sparsity)") }
        let same = URL(fileURLWithPath: out).standardizedFileURL.resolvingSymlinksInPath() == URL(fileURLWithPath: checkpoint).standardizedFileURL.resolvingSymlinksInPath()
        if same && !force { throw ValidationError("--out \(out) is the checkpoint being pruned; give another file, or --force to overwrite it") }
        do { _ = try PruningScope(parsing: scope) } catch { throw ValidationError("--scope: \(error)") }
    }

    func run() throws {
        try BLAS.load()
        let (spec, base) = try Checkpoint.read(path: checkpoint, spec: modelOptions.spec())
        try Checkpoint.checkFinite(base, path: checkpoint)
        let model = try spec.build(seed: 0)
        try model.load(Dictionary(base.state.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a }))
        let masks = try Pruner.prune(model, method: method, sparsity: sparsity, scope: try PruningScope(parsing: scope), seed: seed)
        try Safetensors.write(model, to: out, metadata: Checkpoint.metadata(spec: spec).merging(base.metadata.filter { !$0.value.contains("nan") }) { a, _ in a })
        print(String(format: "pruned %@ (%@, p = %.3f, scope %@): %d tensors, %.2f%% of their weights zero → %@",
                     checkpoint, method.rawValue, sparsity, scope, masks.keys.count, 100 * masks.sparsity, out))
    }
}

struct Metrics: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "AP2, AP3 and other divergences between two checkpoints of one architecture, per layer and in total.")
    @Argument(help: "The original checkpoint.") var original: String
    @Argument(help: "The pruned or fine-tuned checkpoint.") var pruned: String
    @Option(name: .customLong("ap3"), help: "A metric variant (repeatable): gaussian:sigma2=1, gaussian-diag:estimate=row[,separate], mahalanobis-code, student-t:df=4,groups=100,samples=20000,repeats=10.")
    var variants: [String] = ["gaussian:sigma2=1"]
    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() throws {
        let variants = try self.variants.map { v in
            do { return try MetricVariant(parsing: v) } catch { throw ValidationError("--ap3 \(v): \(error)") }
        }
        let a = try Safetensors.read(path: original).tensors.mapValues(\.tensor)
        let b = try Safetensors.read(path: pruned).tensors.mapValues(\.tensor)
        // Weight tensors (rank ≥ 2, named *weight) of both files, in name order; any mismatch is named.
        let keys = a.keys.filter { $0.hasSuffix("weight") && (a[$0]?.rank ?? 0) >= 2 }.sorted()
        try Safetensors.checkFinite(a, keys: keys, path: original)
        try Safetensors.checkFinite(b, keys: keys.filter { b[$0] != nil }, path: pruned)
        let missing = keys.filter { b[$0] == nil }
        let extra = b.keys.filter { $0.hasSuffix("weight") && (b[$0]?.rank ?? 0) >= 2 && a[$0] == nil }.sorted()
        if !missing.isEmpty || !extra.isEmpty {
            throw CLIError("\(original) and \(pruned) are not the same architecture: only in the first: \(missing.joined(separator: ", ")); only in the second: \(extra.joined(separator: ", "))")
        }
        let (layers, total) = try NetworkMetrics.compute(original: a, pruned: b, keys: keys, variants: variants)
        if json {
            let rows = (layers + [total]).map { m -> [String: Any] in
                var d: [String: Any] = ["layer": m.key]
                // Every key is kept; a value JSON cannot hold (NaN, ±∞) is null.
                for (k, v) in m.values { d[k] = v.isFinite ? v : NSNull() }
                return d
            }
            print(String(decoding: try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
            return
        }
        let columns = total.values.map(\.0)
        let keyWidth = max(8, (layers.map(\.key.count).max() ?? 0) + 1)
        print("layer".padding(toLength: keyWidth, withPad: " ", startingAt: 0) + columns.map { $0.padding(toLength: max(14, $0.count + 1), withPad: " ", startingAt: 0) }.joined())
        for m in layers + [total] {
            var line = m.key.padding(toLength: keyWidth, withPad: " ", startingAt: 0)
            for (name, v) in m.values { line += String(format: "%-*.6g", max(14, name.count + 1), v) }
            print(line)
        }
    }
}

/// A task file for `apsweep run-task` (YAML or JSON).
struct TaskFile: Codable {
    var kind: String
    var model: ModelSpec?
    var data: String?
    var dataDir: String?
    var seed: UInt64?
    var training: TrainingConfig?
    var checkpoint: String?
    var prune: PruneTask?

    enum CodingKeys: String, CodingKey {
        case kind, model, data, seed, training, checkpoint, prune
        case dataDir = "data_dir"
    }
}

struct RunTask: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-task",
        abstract: "Run one baseline or prune task locally and write its records as CSV and JSON.")
    @Argument(help: "The task file (YAML or JSON); see docs/tasks.md and Examples/task-prune.yaml.") var file: String
    @Option(help: "Output prefix: PREFIX.csv and PREFIX.json (and PREFIX.safetensors for a baseline).") var out = "task"
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.apply()
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw CLIError("\(file): cannot read the task file") }
        let task: TaskFile
        do { try TaskFileKeys.check(text) } catch { throw CLIError("\(file): \(error)") }
        do { task = try YAMLDecoder().decode(TaskFile.self, from: text) } catch { throw CLIError("\(file): \(describeDecoding(error))") }
        let shard = try DataSource.parse(task.data ?? "fashion-mnist", directory: task.dataDir).load()
        var records: [EpochRecord] = []
        let kind: SweepTask.Kind
        switch task.kind {
        case "baseline": kind = .baseline
        case "prune": kind = .prune
        default: throw CLIError("\(file): kind must be baseline or prune, got \(task.kind)")
        }
        if kind == .baseline && task.model == nil { throw CLIError("\(file): a baseline task needs model") }
        if kind == .prune && (task.prune == nil || task.checkpoint == nil) { throw CLIError("\(file): a prune task needs checkpoint and prune") }
        // The spec of a checkpoint written elsewhere (PyTorch) comes from the task file's model.
        let model = try task.model ?? Checkpoint.read(path: task.checkpoint!).spec
        let sweepTask = SweepTask(kind: kind, model: model, dataset: shard.name, shardIndex: shard.index, shardCount: shard.count,
                                  seed: task.prune?.seed ?? task.seed ?? 0, training: task.training ?? TrainingConfig(), prune: task.prune, baseline: nil)
        let outcome = try TaskRunner.run(sweepTask, data: shard, checkpoint: task.checkpoint, onRecord: { r in
            records.append(r)
            if kind == .baseline {
                print(String(format: "epoch %d  train %.2f%%  test %.2f%%", r.epoch, r.trainAccuracy, r.testAccuracy))
            } else {
                print(String(format: "epoch %d  PD_test %.2f  AP2 %.5g  test %.2f%%", r.epoch, r.pdTest, r.totalMetrics?["ap2"] ?? .nan, r.testAccuracy))
            }
        })
        if case let .baseline(result) = outcome { try Checkpoint.write(result, spec: model, to: out + ".safetensors") }
        try RecordFiles.write(records, csv: out + ".csv", json: out + ".json")
        print("wrote \(out).csv and \(out).json")
    }
}

/// A decoding error as a sentence naming the field.
func describeDecoding(_ error: Error) -> String {
    switch error {
    case let DecodingError.keyNotFound(key, ctx):
        return "missing field \((ctx.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: "."))"
    case let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx):
        return "field \(ctx.codingPath.map(\.stringValue).joined(separator: ".")): \(ctx.debugDescription)"
    case let DecodingError.dataCorrupted(ctx):
        return "field \(ctx.codingPath.map(\.stringValue).joined(separator: ".")): \(ctx.debugDescription)"
    default:
        return "\(error)"
    }
}
