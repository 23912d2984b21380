import NeuralCore

/// How the weights to remove are chosen.
public enum PruningMethod: String, CaseIterable, Sendable, Codable {
    /// Zero the fraction p with the smallest |w|.
    case lowest
    /// Zero the fraction p with the largest |w|; survivors keep their values.
    case highest
    /// Zero exactly round(p·d) weights drawn without replacement from the trial's seed.
    case random
    /// The authors' code: prunes the largest |w| but first overwrites every weight with
    /// |w| − max|w|, so survivors change too. Reproduces their numbers; not the paper's definition.
    case highestCodeFaithful = "highest-code-faithful"
    /// Whole output rows (Linear) or filters (Conv2d) with the smallest L1 norm.
    case structuredL1 = "structured-l1"
    /// Whole output rows (Linear) or filters (Conv2d) with the smallest L2 norm.
    case structuredL2 = "structured-l2"

    public var isStructured: Bool { self == .structuredL1 || self == .structuredL2 }
}

/// Which layers are pruned.
public enum PruningScope: Sendable, Equatable, Codable {
    /// The classifier (last Linear) only: the paper's protocol.
    case last
    /// Every prunable layer, each at the same fraction.
    case perLayer
    /// One ranking across all prunable layers: the fraction p of all their weights.
    case global
    /// The layers with these weight keys ("features.0.weight"), each at the same fraction.
    case named([String])

    /// Parses `last`, `per-layer`, `global` or `layers:KEY,KEY`.
    public init(parsing text: String) throws {
        switch text {
        case "last": self = .last
        case "per-layer": self = .perLayer
        case "global": self = .global
        default:
            guard text.hasPrefix("layers:"), text.count > 7 else {
                throw CompressionError.invalid("unknown scope '\(text)': use last, per-layer, global or layers:KEY[,KEY…]")
            }
            self = .named(text.dropFirst(7).split(separator: ",").map(String.init))
        }
    }

    public var name: String {
        switch self {
        case .last: return "last"
        case .perLayer: return "per-layer"
        case .global: return "global"
        case let .named(keys): return "layers:" + keys.joined(separator: ",")
        }
    }
}

public enum CompressionError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    public var description: String {
        switch self { case let .invalid(why): return why }
    }
}

/// A 0/1 mask per pruned weight tensor, keyed by state_dict key. Masked entries are zero after
/// pruning and stay zero through fine-tuning.
public struct PruningMasks: Sendable {
    public var masks: [String: [Float]]
    /// Keys in the model's order.
    public var keys: [String]

    /// The fraction of zeros over all masked weights.
    public var sparsity: Double {
        let total = masks.values.reduce(0) { $0 + $1.count }
        let zeros = masks.values.reduce(0) { $0 + $1.reduce(0) { $0 + ($1 == 0 ? 1 : 0) } }
        return total == 0 ? 0 : Double(zeros) / Double(total)
    }
}

/// Magnitude pruning of a model's weights.
public enum Pruner {
    /// Prunes `model` in place and returns the masks.
    ///
    /// Unstructured methods remove k = round(p·d) weights of each pruned tensor (of all of them
    /// together for `.global`). Ties in |w| are broken by index (the earlier weight counts as
    /// smaller), so the result is deterministic. `seed` drives `.random` only.
    public static func prune(_ model: Model, method: PruningMethod, sparsity: Double, scope: PruningScope, seed: UInt64) throws -> PruningMasks {
        guard sparsity >= 0, sparsity <= 1, sparsity.isFinite else {
            throw CompressionError.invalid("sparsity \(sparsity) is outside [0, 1]")
        }
        let prunable = model.prunableWeights
        let targets: [(String, Parameter)]
        switch scope {
        case .last:
            targets = prunable.filter { $0.0 == model.classifierWeightKey }
        case .perLayer, .global:
            targets = prunable
        case let .named(keys):
            let known = Set(prunable.map(\.0))
            if let bad = keys.first(where: { !known.contains($0) }) {
                throw CompressionError.invalid("layer '\(bad)' is not a prunable weight of \(model.spec.name); prunable: \(prunable.map(\.0).joined(separator: ", "))")
            }
            targets = prunable.filter { keys.contains($0.0) }
        }
        guard !targets.isEmpty else { throw CompressionError.invalid("no prunable layer in scope \(scope.name)") }
        var rng = SeededGenerator(seed: seed)
        var masks: [String: [Float]] = [:]
        if scope == .global && !method.isStructured {
            // One ranking over the concatenation of all targets.
            let all = targets.flatMap { $0.1.value.scalars }
            let flat = try unstructuredMask(all, method: method, sparsity: sparsity, rng: &rng)
            var offset = 0
            for (key, p) in targets {
                masks[key] = Array(flat[offset..<(offset + p.value.count)])
                offset += p.value.count
            }
        } else {
            for (key, p) in targets {
                masks[key] = method.isStructured
                    ? structuredMask(p.value, l2: method == .structuredL2, sparsity: sparsity)
                    : try unstructuredMask(p.value.scalars, method: method, sparsity: sparsity, rng: &rng)
            }
        }
        for (key, p) in targets {
            let mask = masks[key]!
            if method == .highestCodeFaithful {
                // The authors' code: w ← |w| − max|w| before zeroing the pruned entries.
                let maxAbs = p.value.scalars.reduce(0) { max($0, abs($1)) }
                for i in 0..<p.value.count { p.value.scalars[i] = (abs(p.value.scalars[i]) - maxAbs) * mask[i] }
            } else {
                for i in 0..<p.value.count { p.value.scalars[i] *= mask[i] }
            }
        }
        return PruningMasks(masks: masks, keys: targets.map(\.0))
    }

    /// The mask removing round(p·d) of `weights` by `method`.
    static func unstructuredMask(_ weights: [Float], method: PruningMethod, sparsity: Double,
                                 rng: inout SeededGenerator) throws -> [Float] {
        let d = weights.count
        let k = Int((sparsity * Double(d)).rounded())
        var mask = [Float](repeating: 1, count: d)
        guard k > 0 else { return mask }
        switch method {
        case .random:
            // Partial Fisher–Yates: the first k of a seeded permutation.
            var index = Array(0..<d)
            for i in 0..<k {
                let j = i + Int(rng.next() % UInt64(d - i))
                index.swapAt(i, j)
                mask[index[i]] = 0
            }
        case .lowest, .highest, .highestCodeFaithful:
            let ascending = method == .lowest
            let order = (0..<d).sorted { a, b in
                let x = abs(weights[a]), y = abs(weights[b])
                if x != y { return ascending ? x < y : x > y }
                return a < b
            }
            for i in order.prefix(k) { mask[i] = 0 }
        case .structuredL1, .structuredL2:
            preconditionFailure("structured masks are built per tensor")
        }
        return mask
    }

    /// Zeroes whole output rows (dimension 0) with the smallest L1/L2 norm: round(p·rows) of them.
    static func structuredMask(_ weight: Tensor, l2: Bool, sparsity: Double) -> [Float] {
        let rows = weight.shape[0], per = weight.count / max(1, rows)
        let norms: [Double] = (0..<rows).map { r in
            var s = 0.0
            for j in 0..<per {
                let v = Double(weight.scalars[r * per + j])
                s += l2 ? v * v : abs(v)
            }
            return s
        }
        let k = Int((sparsity * Double(rows)).rounded())
        let order = (0..<rows).sorted { norms[$0] != norms[$1] ? norms[$0] < norms[$1] : $0 < $1 }
        var mask = [Float](repeating: 1, count: weight.count)
        for r in order.prefix(k) { for j in 0..<per { mask[r * per + j] = 0 } }
        return mask
    }
}
