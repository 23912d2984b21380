import Compression
import Experiment
import Foundation
import NeuralCore
import Yams

/// A sweep as written by a researcher (YAML or JSON). Every field but `models` and `prune` has a
/// default; validation errors name the field and say what is allowed.
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
public struct SweepFile: Sendable, Equatable {
    public struct DataSpec: Sendable, Equatable, Codable {
        public var dataset: String
        /// The training set is split into this many shards (rule mod-v1); trial t uses shard t mod shards.
        public var shards: Int
        /// The SHA-256 of each shard as `apsweep data info` prints it (one per shard, in shard
        /// order), or empty. Given, only workers holding exactly that data get its tasks; without
        /// them the coordinator pins the fingerprint of the first worker that leases a task of a
        /// shard, which keeps a sweep consistent but cannot tell which copy is the right one.
        public var fingerprints: [String]
        public init(dataset: String = "fashion-mnist", shards: Int = 1, fingerprints: [String] = []) {
            self.dataset = dataset
            self.shards = shards
            self.fingerprints = fingerprints
        }
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(dataset: try c.decodeIfPresent(String.self, forKey: .dataset) ?? "fashion-mnist",
                      shards: try c.decodeIfPresent(Int.self, forKey: .shards) ?? 1,
                      fingerprints: try c.decodeIfPresent([String].self, forKey: .fingerprints) ?? [])
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
    public var seeds: [UInt64]
    public var baseline: TrainingConfig
    public var prune: PruneGrid
    public var maxAttempts: Int

    public static func load(path: String) throws -> SweepFile {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw SweepError.invalid("\(path): cannot read the sweep file")
        }
        do { return try parse(text) } catch let e as SweepError { throw SweepError.invalid("\(path): \(e)") }
    }

    /// Parses and validates YAML (JSON is YAML too).
    public static func parse(_ text: String) throws -> SweepFile {
        let root: Any?
        do { root = try Yams.load(yaml: text) } catch { throw SweepError.invalid("not valid YAML: \(error)") }
        guard let map = root as? [String: Any] else { throw SweepError.invalid("the sweep file must be a mapping with models, prune, …") }
        let known: Set = ["name", "data", "models", "trials", "seeds", "baseline", "prune", "max_attempts"]
        if let bad = map.keys.first(where: { !known.contains($0) }) {
            throw SweepError.invalid("unknown field '\(bad)'; allowed: \(known.sorted().joined(separator: ", "))")
        }
        func decode<T: Decodable>(_ type: T.Type, _ value: Any?, _ field: String) throws -> T? {
            guard let value else { return nil }
            do {
                let yaml = try Yams.dump(object: value)
                return try YAMLDecoder().decode(T.self, from: yaml)
            } catch {
                throw SweepError.invalid("\(field): \(SweepFile.describe(error))")
            }
        }
        if let fields = map["data"] as? [String: Any], let bad = fields.keys.first(where: { !["dataset", "shards", "fingerprints"].contains($0) }) {
            throw SweepError.invalid("data: unknown field '\(bad)'; allowed: dataset, shards, fingerprints")
        }
        let data = try decode(DataSpec.self, map["data"], "data") ?? DataSpec()
        guard data.shards >= 1 else { throw SweepError.invalid("data.shards must be ≥ 1") }
        if !data.fingerprints.isEmpty {
            guard data.fingerprints.count == data.shards else {
                throw SweepError.invalid("data.fingerprints: \(data.fingerprints.count) given for \(data.shards) shard(s); give one SHA-256 per shard, in shard order, as `apsweep data info` prints them")
            }
            if let bad = data.fingerprints.first(where: { $0.count != 64 || !$0.allSatisfy(\.isHexDigit) }) {
                throw SweepError.invalid("data.fingerprints: '\(bad)' is not a SHA-256 (64 hexadecimal digits, as `apsweep data info` prints it)")
            }
        }
        let models: [ModelSpec]?
        do { models = try decode([ModelSpec].self, map["models"], "models") } catch {
            throw SweepError.invalid("\(error); architectures: \(Architecture.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let models, !models.isEmpty else {
            throw SweepError.invalid("models: give at least one, e.g. [{architecture: lenet5}]; architectures: \(Architecture.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var seeds: [UInt64]
        if let s = try decode([UInt64].self, map["seeds"], "seeds") {
            seeds = s
        } else {
            let trials = try decode(Int.self, map["trials"], "trials") ?? 3
            guard trials >= 1 else { throw SweepError.invalid("trials must be ≥ 1") }
            seeds = (1...trials).map(UInt64.init)
        }
        guard !seeds.isEmpty, Set(seeds).count == seeds.count else { throw SweepError.invalid("seeds must be distinct and non-empty") }
        let baseline = try decode(TrainingConfig.self, map["baseline"], "baseline") ?? TrainingConfig()
        do { try baseline.validate("baseline") } catch { throw SweepError.invalid("\(error)") }
        guard let p = map["prune"] as? [String: Any] else { throw SweepError.invalid("prune: missing; give methods and sparsities") }
        let pruneKnown: Set = ["methods", "sparsities", "scopes", "mode", "train_bias", "fine_tune", "metrics"]
        if let bad = p.keys.first(where: { !pruneKnown.contains($0) }) {
            throw SweepError.invalid("prune: unknown field '\(bad)'; allowed: \(pruneKnown.sorted().joined(separator: ", "))")
        }
        let methodNames = try decode([String].self, p["methods"], "prune.methods") ?? ["lowest", "highest", "random"]
        let methods = try methodNames.map { m -> PruningMethod in
            guard let method = PruningMethod(rawValue: m) else {
                throw SweepError.invalid("prune.methods: '\(m)' is not a method; allowed: \(PruningMethod.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return method
        }
        let sparsities = try decode([Double].self, p["sparsities"], "prune.sparsities") ?? [0.1, 0.3, 0.5, 0.8]
        if let bad = sparsities.first(where: { !($0 >= 0 && $0 <= 1) }) { throw SweepError.invalid("prune.sparsities: \(bad) is outside [0, 1]") }
        let scopes = try decode([String].self, p["scopes"], "prune.scopes") ?? ["last"]
        for s in scopes { do { _ = try PruningScope(parsing: s) } catch { throw SweepError.invalid("prune.scopes: \(error)") } }
        let modeName = try decode(String.self, p["mode"], "prune.mode") ?? "last-layer"
        guard let mode = FineTuneMode(rawValue: modeName) else {
            throw SweepError.invalid("prune.mode: '\(modeName)' is not a mode; allowed: \(FineTuneMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let fineTune = try decode(TrainingConfig.self, p["fine_tune"], "prune.fine_tune") ?? TrainingConfig(epochs: 20)
        do { try fineTune.validate("prune.fine_tune") } catch { throw SweepError.invalid("\(error)") }
        let metrics = try decode([String].self, p["metrics"], "prune.metrics") ?? ["gaussian:sigma2=1"]
        for m in metrics { do { _ = try MetricVariant(parsing: m) } catch { throw SweepError.invalid("prune.metrics: \(error)") } }
        let maxAttempts = try decode(Int.self, map["max_attempts"], "max_attempts") ?? 3
        guard maxAttempts >= 1 else { throw SweepError.invalid("max_attempts must be ≥ 1") }
        return SweepFile(name: map["name"] as? String ?? "sweep", data: data, models: models, seeds: seeds, baseline: baseline,
                         prune: PruneGrid(methods: methods, sparsities: sparsities, scopes: scopes, mode: mode,
                                          trainBias: try decode(Bool.self, p["train_bias"], "prune.train_bias") ?? false,
                                          fineTune: fineTune, metrics: metrics),
                         maxAttempts: maxAttempts)
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case let DecodingError.keyNotFound(key, _): return "missing field \(key.stringValue)"
        case let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx), let DecodingError.dataCorrupted(ctx):
            let path = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            return (path.isEmpty ? "" : "\(path): ") + ctx.debugDescription
        default: return "\(error)"
        }
    }
}

public enum SweepError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    public var description: String { if case let .invalid(m) = self { return m }; return "" }
}
