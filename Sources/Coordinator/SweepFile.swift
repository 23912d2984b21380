import Compression
import Datasets
import Experiment
import Foundation
import NeuralCore
import Yams

/// A sweep as written by a researcher (YAML or JSON). Every field but `models` and `prune` has a
/// default. Every mapping refuses keys it does not know, and every error names the line of the
/// file, the field's path and what is allowed.
///
/// ```yaml
/// name: quickstart
/// data: {dataset: fashion-mnist, shards: 1}   # optional fingerprints: [<sha256 of each shard>]
/// models: [{architecture: lenet5}]
/// trials: 2                 # or seeds: [1, 2]
/// baseline: {epochs: 3, lr: 0.05}
/// prune:
///   methods: [lowest, highest, random]
///   sparsities: [0.1, 0.3, 0.5, 0.8]
///   scopes: [last]
///   mode: last-layer
///   fine_tune: {epochs: 5, lr: 0.05}
///   metrics: [gaussian:sigma2=1]
/// max_attempts: 3
/// ```
///
/// A model may start from checkpoints the lab already has (safetensors with PyTorch's keys;
/// each file is one trial, in order, with the sweep's seeds for pruning and fine-tuning), with
/// or without training all layers first:
///
/// ```yaml
/// models:
///   - {architecture: resnet18, classes: 10, input_shape: [3, 32, 32],
///      checkpoints: [weights/seed1.safetensors, weights/seed2.safetensors],
///      baseline: {epochs: 2, lr: 0.01}}      # left out: the checkpoint is the baseline
/// ```
///
/// A model trained from scratch may have its own `baseline` and `fine_tune` (each family with its
/// learning rate, as the paper does); the keys it leaves out are the sweep's:
///
/// ```yaml
/// models:
///   - {architecture: resnet20, baseline: {lr: 0.1}, fine_tune: {lr: 0.1}}
///   - {architecture: vit, baseline: {optimizer: adamw, lr: 0.001, epochs: 15}, fine_tune: {lr: 0.002}}
/// ```
public struct SweepFile: Sendable, Equatable {
    public struct DataSpec: Sendable, Equatable {
        public var dataset: String
        /// The training set is split into this many shards (rule mod-v1); trial t uses shard t mod shards.
        public var shards: Int
        /// The SHA-256 of each shard as `apsweep data info` prints it (one per shard, in shard
        /// order), or empty. Given, only workers holding exactly that data get its tasks; without
        /// them the coordinator pins the fingerprint of the first worker that leases a task of a
        /// shard, which keeps a sweep consistent but cannot tell which copy is the right one.
        public var fingerprints: [String]
        /// Where the data set's files are on this machine (relative to the sweep file once
        /// loaded): what `apsweep sweep` and `plan` read, and its local workers' `--data`. Remote
        /// workers are given their own `--data`.
        public var path: String?
        public init(dataset: String = "fashion-mnist", shards: Int = 1, fingerprints: [String] = [], path: String? = nil) {
            self.dataset = dataset
            self.shards = shards
            self.fingerprints = fingerprints
            self.path = path
        }
    }
    /// Checkpoints a model starts from (paths as written, relative to the sweep file's
    /// directory once loaded) and the training they get first (0 epochs: none).
    public struct Start: Sendable, Equatable {
        public var checkpoints: [String]
        public var training: TrainingConfig
        /// Written as a list (`checkpoints:`), for naming a file in errors.
        public var listed = false
        /// How errors name file `i`: models[m].checkpoint or models[m].checkpoints[i].
        public func name(model m: Int, file i: Int) -> String { listed ? "models[\(m)].checkpoints[\(i)]" : "models[\(m)].checkpoint" }
    }
    /// A model's own baseline training and fine-tuning (nil: the sweep's).
    public struct ModelTuning: Sendable, Equatable {
        public var baseline: TrainingConfig?
        public var fineTune: TrainingConfig?
        public init(baseline: TrainingConfig? = nil, fineTune: TrainingConfig? = nil) {
            self.baseline = baseline
            self.fineTune = fineTune
        }
    }
    public struct PruneGrid: Sendable, Equatable {
        public var methods: [PruningMethod]
        public var sparsities: [Double]
        public var scopes: [String]
        public var mode: FineTuneMode
        public var trainBias: Bool
        public var fineTune: TrainingConfig
        public var metrics: [String]
    }

    public var name: String
    public var data: DataSpec
    public var models: [ModelSpec]
    /// Per model (same order): the checkpoints it starts from, or nil (trained from scratch).
    public var starts: [Start?]
    /// Per model (same order): its own training where it differs from the sweep's — the paper
    /// trains and fine-tunes each family with its own learning rate. Keys a model leaves out
    /// come from the sweep's `baseline` and `prune.fine_tune`.
    public var tuning: [ModelTuning] = []
    public var seeds: [UInt64]
    public var baseline: TrainingConfig
    public var prune: PruneGrid
    public var maxAttempts: Int

    /// The training of model `m`'s baselines from scratch (not used for checkpoints: `Start`).
    public func baseline(model m: Int) -> TrainingConfig { (m < tuning.count ? tuning[m].baseline : nil) ?? baseline }
    /// The fine-tuning of model `m`'s prune tasks.
    public func fineTune(model m: Int) -> TrainingConfig { (m < tuning.count ? tuning[m].fineTune : nil) ?? prune.fineTune }

    /// Data sets a sweep can name (shard files of `apsweep data synthetic` are "synthetic").
    public static let datasets = ["fashion-mnist", "mnist", "cifar10", "cifar100", "synthetic"]
    /// The largest epoch count accepted anywhere (a typo of 1e9 is refused, not run).
    public static let maxEpochs = 100_000

    public static func load(path: String) throws -> SweepFile {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw SweepError.invalid("\(path): cannot read the sweep file")
        }
        do {
            var sweep = try parse(text)
            // Checkpoint and data paths are relative to the sweep file, as a reader of it expects.
            let base = URL(fileURLWithPath: path).deletingLastPathComponent()
            func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : base.appendingPathComponent(p).standardizedFileURL.path }
            sweep.data.path = sweep.data.path.map(resolve)
            for m in sweep.starts.indices {
                if let files = sweep.starts[m]?.checkpoints { sweep.starts[m]?.checkpoints = files.map(resolve) }
            }
            return sweep
        } catch let e as SweepError { throw SweepError.invalid("\(path): \(e)") }
    }

    /// Parses and validates YAML (JSON is YAML too).
    public static func parse(_ text: String) throws -> SweepFile {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw SweepError.invalid("not valid YAML: \(error)") }
        guard let root else { throw SweepError.invalid("the sweep file is empty; it needs at least models and prune") }
        let r = YAMLFields()
        let top = try r.mapping(root, "", allowed: ["name", "data", "models", "trials", "seeds", "baseline", "prune", "max_attempts"])
        let name = try top["name"].map { try r.string($0, "name") } ?? "sweep"
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) else {
            throw r.error(top["name"]!, "name", "'\(name)' must be letters, digits, '.', '_' or '-' (it names the run's directory)")
        }
        var data = DataSpec()
        if let d = top["data"] {
            let m = try r.mapping(d, "data", allowed: ["dataset", "shards", "fingerprints", "path"])
            if let n = m["dataset"] {
                data.dataset = try r.string(n, "data.dataset")
                let folder: Bool
                do { folder = try ImageFolder.settings(data.dataset) != nil } catch { throw r.error(n, "data.dataset", "\(error)") }
                guard datasets.contains(data.dataset) || folder else {
                    throw r.error(n, "data.dataset", "unknown data set '\(data.dataset)'; allowed: \(datasets.joined(separator: ", ")), folder[:SIZE][:gray][:skip-corrupt]")
                }
            }
            if let n = m["path"] {
                let text = try r.string(n, "data.path")
                guard !text.isEmpty else { throw r.error(n, "data.path", "is empty; give the directory of the data set's files") }
                data.path = text
            }
            if let n = m["shards"] { data.shards = try r.int(n, "data.shards", 1...10_000) }
            if let n = m["fingerprints"] {
                data.fingerprints = try r.list(n, "data.fingerprints").enumerated().map { i, f in
                    let s = try r.string(f, "data.fingerprints[\(i)]").lowercased()
                    guard s.count == 64, s.allSatisfy(\.isHexDigit) else {
                        throw r.error(f, "data.fingerprints[\(i)]", "'\(s.prefix(20))' is not a SHA-256 (64 hexadecimal digits, as `apsweep data info` prints it)")
                    }
                    return s
                }
                guard data.fingerprints.count == data.shards else {
                    throw r.error(n, "data.fingerprints", "\(data.fingerprints.count) given for \(data.shards) shard(s); give one SHA-256 per shard, in shard order, as `apsweep data info` prints them")
                }
            }
        }
        guard let modelsNode = top["models"] else {
            throw SweepError.invalid("models: missing; give at least one, e.g. [{architecture: lenet5}]; architectures: \(Architecture.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let modelNodes = try r.list(modelsNode, "models")
        guard !modelNodes.isEmpty else { throw r.error(modelsNode, "models", "give at least one, e.g. [{architecture: lenet5}]") }
        var seeds: [UInt64]
        if let s = top["seeds"] {
            if top["trials"] != nil { throw r.error(s, "seeds", "give trials or seeds, not both") }
            seeds = try r.list(s, "seeds").enumerated().map { i, n in UInt64(try r.int(n, "seeds[\(i)]", 0...Int.max)) }
            guard !seeds.isEmpty, Set(seeds).count == seeds.count else { throw r.error(s, "seeds", "must be distinct and non-empty") }
        } else {
            let trials = try top["trials"].map { try r.int($0, "trials", 1...1000) } ?? 3
            seeds = (1...trials).map(UInt64.init)
        }
        let baseline = try top["baseline"].map { try training($0, "baseline", r, defaults: TrainingConfig()) } ?? TrainingConfig()
        guard let pruneNode = top["prune"] else { throw SweepError.invalid("prune: missing; give methods and sparsities") }
        let p = try r.mapping(pruneNode, "prune", allowed: ["methods", "sparsities", "scopes", "mode", "train_bias", "fine_tune", "metrics"])
        let methods = try p["methods"].map { n in
            try r.list(n, "prune.methods").enumerated().map { i, m -> PruningMethod in
                let text = try r.string(m, "prune.methods[\(i)]")
                guard let method = PruningMethod(rawValue: text) else {
                    throw r.error(m, "prune.methods[\(i)]", "'\(text)' is not a method; allowed: \(PruningMethod.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return method
            }
        } ?? [.lowest, .highest, .random]
        let sparsities = try p["sparsities"].map { n in
            try r.list(n, "prune.sparsities").enumerated().map { i, s in try r.double(s, "prune.sparsities[\(i)]", 0...1) }
        } ?? [0.1, 0.3, 0.5, 0.8]
        let scopes = try p["scopes"].map { n in
            try r.list(n, "prune.scopes").enumerated().map { i, s -> String in
                let text = try r.string(s, "prune.scopes[\(i)]")
                do { _ = try PruningScope(parsing: text) } catch { throw r.error(s, "prune.scopes[\(i)]", "\(error)") }
                return text
            }
        } ?? ["last"]
        var mode = FineTuneMode.lastLayer
        if let n = p["mode"] {
            let text = try r.string(n, "prune.mode")
            guard let m = FineTuneMode(rawValue: text) else {
                throw r.error(n, "prune.mode", "'\(text)' is not a mode; allowed: \(FineTuneMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            mode = m
        }
        let fineTune = try p["fine_tune"].map { try training($0, "prune.fine_tune", r, defaults: TrainingConfig(epochs: 20)) } ?? TrainingConfig(epochs: 20)
        let metrics = try p["metrics"].map { n in
            try r.list(n, "prune.metrics").enumerated().map { i, s -> String in
                let text = try r.string(s, "prune.metrics[\(i)]")
                do { _ = try MetricVariant(parsing: text) } catch { throw r.error(s, "prune.metrics[\(i)]", "\(error)") }
                return text
            }
        } ?? ["gaussian:sigma2=1"]
        for (what, list) in [("methods", methods.count), ("sparsities", sparsities.count), ("scopes", scopes.count), ("metrics", metrics.count)] where list == 0 {
            throw SweepError.invalid("prune.\(what): give at least one")
        }
        let entries = try modelNodes.enumerated().map { i, n in try modelEntry(n, "models[\(i)]", r, baseline: baseline, fineTune: fineTune) }
        let models = entries.map(\.spec), starts = entries.map(\.start)
        let maxAttempts = try top["max_attempts"].map { try r.int($0, "max_attempts", 1...1000) } ?? 3
        return SweepFile(name: name, data: data, models: models, starts: starts, tuning: entries.map(\.tuning), seeds: seeds, baseline: baseline,
                         prune: PruneGrid(methods: methods, sparsities: sparsities, scopes: scopes, mode: mode,
                                          trainBias: try p["train_bias"].map { try r.bool($0, "prune.train_bias") } ?? false,
                                          fineTune: fineTune, metrics: metrics),
                         maxAttempts: maxAttempts)
    }

    /// A model entry: the architecture's spec and, when it names checkpoints, where it starts.
    /// A model's `baseline` and `fine_tune` start from the sweep's (`baseline`, `fineTune`) and
    /// change only the keys they give; with checkpoints, `baseline` starts from 0 epochs instead.
    static func modelEntry(_ node: Node, _ path: String, _ r: YAMLFields, baseline: TrainingConfig, fineTune: TrainingConfig) throws
        -> (spec: ModelSpec, start: Start?, tuning: ModelTuning) {
        let m = try r.mapping(node, path, allowed: ["architecture", "width", "input_shape", "input", "classes", "patch", "dim", "depth", "heads", "mlp_dim",
                                                    "dropout", "checkpoint", "checkpoints", "baseline", "fine_tune"])
        let spec = try model(node, m, path, r)
        var tuning = ModelTuning(fineTune: try m["fine_tune"].map { try Self.training($0, path + ".fine_tune", r, defaults: fineTune) })
        if m["checkpoint"] != nil && m["checkpoints"] != nil { throw r.error(m["checkpoints"]!, path + ".checkpoints", "give checkpoint or checkpoints, not both") }
        var files: [String] = []
        if let n = m["checkpoint"] { files = [try r.string(n, path + ".checkpoint")] }
        if let n = m["checkpoints"] {
            files = try r.list(n, path + ".checkpoints").enumerated().map { i, f in try r.string(f, "\(path).checkpoints[\(i)]") }
            guard !files.isEmpty else { throw r.error(n, path + ".checkpoints", "give at least one file") }
            guard Set(files).count == files.count else { throw r.error(n, path + ".checkpoints", "names a file twice (each file is one trial)") }
        }
        for f in files where f.isEmpty { throw r.error(m["checkpoint"] ?? m["checkpoints"]!, path, "a checkpoint path is empty") }
        if files.isEmpty {
            tuning.baseline = try m["baseline"].map { try Self.training($0, path + ".baseline", r, defaults: baseline) }
            return (spec, nil, tuning)
        }
        let training = try m["baseline"].map { try Self.training($0, path + ".baseline", r, defaults: TrainingConfig(epochs: 0)) } ?? TrainingConfig(epochs: 0)
        return (spec, Start(checkpoints: files, training: training, listed: m["checkpoints"] != nil), tuning)
    }

    /// A model as a task file writes it (the keys of `ModelSpec`'s JSON).
    static func model(_ node: Node, _ path: String, _ r: YAMLFields) throws -> ModelSpec {
        let m = try r.mapping(node, path, allowed: ["architecture", "width", "input_shape", "classes", "patch", "dim", "depth", "heads", "mlp_dim", "dropout"])
        return try model(node, m, path, r)
    }

    static func model(_ node: Node, _ m: [String: Node], _ path: String, _ r: YAMLFields) throws -> ModelSpec {
        guard let a = m["architecture"] else {
            throw r.error(node, path, "needs architecture; allowed: \(Architecture.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let text = try r.string(a, path + ".architecture")
        guard let architecture = Architecture(rawValue: text) else {
            throw r.error(a, path + ".architecture", "unknown architecture '\(text)'; allowed: \(Architecture.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var input = [1, 28, 28]
        if m["input_shape"] != nil && m["input"] != nil { throw r.error(m["input"]!, path + ".input", "give input or input_shape, not both") }
        if let n = m["input_shape"] ?? m["input"] {
            let key = path + (m["input_shape"] != nil ? ".input_shape" : ".input")
            let items = try r.list(n, key)
            guard items.count == 3 else { throw r.error(n, key, "must be [C, H, W], got \(items.count) numbers") }
            input = try items.enumerated().map { i, x in try r.int(x, "\(key)[\(i)]", 1...4096) }
        }
        let dim = try m["dim"].map { try r.int($0, path + ".dim", 1...65_536) } ?? 64
        return ModelSpec(architecture, width: try m["width"].map { try r.double($0, path + ".width", 1e-3...64) } ?? 1, inputShape: input,
                         classes: try m["classes"].map { try r.int($0, path + ".classes", 2...1_000_000) } ?? 10,
                         patch: try m["patch"].map { try r.int($0, path + ".patch", 1...4096) } ?? 7, dim: dim,
                         depth: try m["depth"].map { try r.int($0, path + ".depth", 1...1000) } ?? 4,
                         heads: try m["heads"].map { try r.int($0, path + ".heads", 1...1024) } ?? 4,
                         mlpDim: try m["mlp_dim"].map { try r.int($0, path + ".mlp_dim", 1...1_048_576) },
                         dropout: Float(try m["dropout"].map { try r.double($0, path + ".dropout", 0...0.999) } ?? 0))
    }

    static func training(_ node: Node, _ path: String, _ r: YAMLFields, defaults d: TrainingConfig) throws -> TrainingConfig {
        let m = try r.mapping(node, path, allowed: ["epochs", "batch", "optimizer", "lr", "momentum", "nesterov", "weight_decay", "schedule",
                                                    "step_every", "step_gamma", "label_smoothing", "augment_padding"])
        func choice<T: RawRepresentable & CaseIterable>(_ key: String, _ fallback: T) throws -> T where T.RawValue == String {
            guard let n = m[key] else { return fallback }
            let text = try r.string(n, "\(path).\(key)")
            guard let v = T(rawValue: text) else {
                throw r.error(n, "\(path).\(key)", "'\(text)' is not allowed; allowed: \(T.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return v
        }
        let config = TrainingConfig(
            epochs: try m["epochs"].map { try r.int($0, "\(path).epochs", 0...maxEpochs) } ?? d.epochs,
            batch: try m["batch"].map { try r.int($0, "\(path).batch", 1...1_000_000) } ?? d.batch,
            optimizer: try choice("optimizer", d.optimizer),
            lr: try m["lr"].map { try r.double($0, "\(path).lr", 1e-12...100, open: true) } ?? d.lr,
            momentum: try m["momentum"].map { try r.double($0, "\(path).momentum", 0...0.999_999) } ?? d.momentum,
            nesterov: try m["nesterov"].map { try r.bool($0, "\(path).nesterov") } ?? d.nesterov,
            weightDecay: try m["weight_decay"].map { try r.double($0, "\(path).weight_decay", 0...10) } ?? d.weightDecay,
            schedule: try choice("schedule", d.schedule),
            stepEvery: try m["step_every"].map { try r.int($0, "\(path).step_every", 0...maxEpochs) } ?? d.stepEvery,
            stepGamma: try m["step_gamma"].map { try r.double($0, "\(path).step_gamma", 1e-12...1) } ?? d.stepGamma,
            labelSmoothing: try m["label_smoothing"].map { try r.double($0, "\(path).label_smoothing", 0...0.999) } ?? d.labelSmoothing,
            augmentPadding: try m["augment_padding"].map { try r.int($0, "\(path).augment_padding", 0...64) } ?? d.augmentPadding)
        do { try config.validate(path) } catch { throw r.error(node, path, "\(error)") }
        return config
    }
}

/// Reads typed fields from YAML nodes; every error names the line, the field's path and what is
/// allowed.
struct YAMLFields {
    func error(_ node: Node, _ path: String, _ message: String) -> SweepError {
        let line = node.mark.map { "line \($0.line): " } ?? ""
        return SweepError.invalid("\(line)\(path.isEmpty ? "" : path + ": ")\(message)")
    }

    /// A mapping's entries by key; keys not in `allowed` are refused by name.
    func mapping(_ node: Node, _ path: String, allowed: [String]) throws -> [String: Node] {
        guard let m = node.mapping else { throw error(node, path, "must be a mapping of \(allowed.joined(separator: ", "))") }
        var out: [String: Node] = [:]
        for (k, v) in m {
            guard let key = k.string else { throw error(k, path, "keys must be names") }
            guard allowed.contains(key) else {
                throw error(k, path.isEmpty ? key : "\(path).\(key)", "unknown key '\(key)'\(path.isEmpty ? "" : " in \(path)"); allowed: \(allowed.sorted().joined(separator: ", "))")
            }
            guard out[key] == nil else { throw error(k, "\(path).\(key)", "given twice") }
            out[key] = v
        }
        return out
    }

    func list(_ node: Node, _ path: String) throws -> [Node] {
        guard let s = node.sequence else { throw error(node, path, "must be a list, e.g. [a, b]") }
        return Array(s)
    }

    func string(_ node: Node, _ path: String) throws -> String {
        guard let s = node.scalar?.string else { throw error(node, path, "must be a single value") }
        return s
    }

    /// An integer in `range`; an integral number written as a float (1e9) is read as the integer
    /// it is, so that `1e9` and `1000000000` get the same answer.
    func int(_ node: Node, _ path: String, _ range: ClosedRange<Int>) throws -> Int {
        guard let text = node.scalar?.string else { throw error(node, path, "must be a number") }
        let value: Double
        if let i = Int(text) { value = Double(i) } else if let d = node.float { value = d } else {
            throw error(node, path, "'\(text)' is not a number")
        }
        guard value.isFinite, value == value.rounded() else { throw error(node, path, "\(text) must be a whole number") }
        guard value >= Double(range.lowerBound) else { throw error(node, path, "\(text) is less than the minimum \(range.lowerBound)") }
        guard value <= Double(range.upperBound) else { throw error(node, path, "\(text) is more than the maximum \(range.upperBound)") }
        return Int(value)
    }

    func double(_ node: Node, _ path: String, _ range: ClosedRange<Double>, open: Bool = false) throws -> Double {
        guard let text = node.scalar?.string else { throw error(node, path, "must be a number") }
        guard let v = node.float ?? Double(text), v.isFinite else { throw error(node, path, "'\(text)' is not a number") }
        guard range.contains(v) else { throw error(node, path, "\(text) is outside [\(range.lowerBound), \(range.upperBound)]") }
        return v
    }

    func bool(_ node: Node, _ path: String) throws -> Bool {
        guard let b = node.bool else { throw error(node, path, "must be true or false") }
        return b
    }
}

public enum SweepError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    public var description: String { if case let .invalid(m) = self { return m }; return "" }
}

/// The keys of a task file for `apsweep run-task` (docs/tasks.md), checked as a sweep file's are:
/// an unknown or repeated key, a wrong model or training field is refused with its line, before
/// anything runs. The values are then decoded by the task file's own type.
public enum TaskFileKeys {
    public static func check(_ text: String) throws {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw SweepError.invalid("not valid YAML: \(error)") }
        guard let root else { throw SweepError.invalid("the task file is empty; it needs kind and, for a prune task, checkpoint and prune") }
        let r = YAMLFields()
        let top = try r.mapping(root, "", allowed: ["kind", "model", "data", "data_dir", "seed", "training", "checkpoint", "prune"])
        if let m = top["model"] { _ = try SweepFile.model(m, "model", r) }
        if let t = top["training"] { _ = try SweepFile.training(t, "training", r, defaults: TrainingConfig()) }
        if let p = top["prune"] {
            let m = try r.mapping(p, "prune", allowed: ["method", "sparsity", "scope", "seed", "mode", "train_bias", "cache_features", "fine_tune", "metrics"])
            if let f = m["fine_tune"] { _ = try SweepFile.training(f, "prune.fine_tune", r, defaults: TrainingConfig(epochs: 20)) }
        }
    }
}
