import Foundation
import NeuralCore

/// A checkpoint as apsweep writes it: safetensors with PyTorch keys, and in the metadata the model
/// spec (`apsweep.spec`, JSON) and the accuracies PD is measured against.
public enum Checkpoint {
    /// Writes a baseline's weights, its spec and its final accuracies.
    public static func write(_ result: BaselineResult, spec: ModelSpec, to path: String) throws {
        try encode(result, spec: spec).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// The checkpoint's bytes (safetensors with the spec and accuracies in its metadata).
    public static func encode(_ result: BaselineResult, spec: ModelSpec) throws -> Data {
        var metadata = result.metadata
        metadata["apsweep.spec"] = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
        return try Safetensors.encode(result.state, metadata: metadata)
    }

    /// The metadata entries for a model written outside a baseline task.
    public static func metadata(spec: ModelSpec) -> [String: String] {
        ["apsweep.spec": (try? String(decoding: JSONEncoder().encode(spec), as: UTF8.self)) ?? ""]
    }

    /// Reads a checkpoint. The spec comes from the file's metadata, or from `spec` for files
    /// written elsewhere (PyTorch). Accuracies missing from the metadata are measured by
    /// `measure` (eval mode over the data) when given, and NaN otherwise.
    public static func read(path: String, spec given: ModelSpec? = nil,
                            measure: ((Model) throws -> (trainAcc: Double, trainLoss: Double, testAcc: Double, testLoss: Double))? = nil)
        throws -> (spec: ModelSpec, baseline: BaselineResult) {
        let (entries, metadata) = try Safetensors.read(path: path)
        var spec = given
        if spec == nil, let json = metadata["apsweep.spec"] {
            spec = try? JSONDecoder().decode(ModelSpec.self, from: Data(json.utf8))
        }
        guard let spec else {
            throw ExperimentError.invalid("\(path): no apsweep model spec in its metadata (written by PyTorch?); give --model, --input and --classes")
        }
        let model = try spec.build(seed: 0)
        do {
            try model.load(entries.mapValues(\.tensor))
        } catch {
            throw ExperimentError.invalid("\(path): \(error)")
        }
        var result = BaselineResult(state: model.stateDict(), trainAccuracy: .nan, testAccuracy: .nan, trainLoss: .nan, testLoss: .nan, history: [])
        if let a = metadata["apsweep.train_accuracy"].flatMap(Double.init), let b = metadata["apsweep.test_accuracy"].flatMap(Double.init),
           let c = metadata["apsweep.train_loss"].flatMap(Double.init), let d = metadata["apsweep.test_loss"].flatMap(Double.init) {
            (result.trainAccuracy, result.testAccuracy, result.trainLoss, result.testLoss) = (a, b, c, d)
        } else if let measure {
            let m = try measure(model)
            (result.trainAccuracy, result.trainLoss, result.testAccuracy, result.testLoss) = (m.trainAcc, m.trainLoss, m.testAcc, m.testLoss)
        }
        return (spec, result)
    }

    /// A model of `spec` holding `tensors` (a checkpoint's content) — every key and shape,
    /// strictly — and finite weights; errors name `path`.
    public static func model(_ tensors: [String: Tensor], spec: ModelSpec, path: String) throws -> Model {
        let model = try spec.build(seed: 0)
        do { try model.load(tensors) } catch { throw ExperimentError.invalid("\(path): \(error)") }
        try checkFinite(tensors, path: path)
        return model
    }

    /// The same from a safetensors file.
    public static func model(path: String, spec: ModelSpec) throws -> Model {
        try model(try Safetensors.read(path: path).0.mapValues(\.tensor), spec: spec, path: path)
    }

    /// Throws naming the first tensor that holds NaN or ±∞ (a diverged training's weights).
    public static func checkFinite(_ result: BaselineResult, path: String) throws {
        try checkFinite(Dictionary(result.state.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a }), path: path)
    }

    public static func checkFinite(_ tensors: [String: Tensor], path: String) throws {
        for (key, value) in tensors.sorted(by: { $0.key < $1.key }) {
            if let bad = value.scalars.firstIndex(where: { !$0.isFinite }) {
                throw ExperimentError.invalid("\(path): tensor \(key) holds \(value.scalars[bad]) at index \(bad); a checkpoint must hold finite weights")
            }
        }
    }
}
