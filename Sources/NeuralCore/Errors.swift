/// Errors of the training core. Each message names the layer or file involved and what to do.
public enum NeuralCoreError: Error, CustomStringConvertible, Equatable {
    /// A layer received an input whose shape it cannot take.
    case shapeMismatch(layer: String, expected: String, actual: [Int])
    /// `backward` was called on a layer without a preceding training-mode `forward`.
    case backwardWithoutForward(layer: String)
    /// A model or layer configuration that cannot be built.
    case invalidConfiguration(String)
    /// A checkpoint or fixture file that cannot be read.
    case malformedFile(path: String, reason: String)
    /// A state dict that does not fit a model: missing, unexpected or wrongly shaped keys.
    case stateDictMismatch(missing: [String], unexpected: [String], wrongShape: [String])
    /// OpenBLAS could not be loaded.
    case blasUnavailable(String)

    public var description: String {
        switch self {
        case let .shapeMismatch(layer, expected, actual):
            return "layer \(layer.isEmpty ? "<root>" : layer): expected input of shape \(expected), got \(describeShape(actual))"
        case let .backwardWithoutForward(layer):
            return "layer \(layer.isEmpty ? "<root>" : layer): backward called without a training-mode forward first"
        case let .invalidConfiguration(why):
            return "invalid configuration: \(why)"
        case let .malformedFile(path, reason):
            return "\(path): \(reason)"
        case let .stateDictMismatch(missing, unexpected, wrongShape):
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing keys: \(missing.joined(separator: ", "))") }
            if !unexpected.isEmpty { parts.append("unexpected keys: \(unexpected.joined(separator: ", "))") }
            if !wrongShape.isEmpty { parts.append("wrong shapes: \(wrongShape.joined(separator: "; "))") }
            return "checkpoint does not fit the model (\(parts.joined(separator: "; "))); check --model, --width and the class count"
        case let .blasUnavailable(why):
            return why
        }
    }
}
