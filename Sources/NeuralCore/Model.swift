/// A network with its metadata: input shape, classes, and which layers pruning may touch.
///
/// Parameter and buffer names are PyTorch `state_dict` keys ("features.0.weight",
/// "layer1.0.bn1.running_mean"), so a checkpoint written by torch for the same architecture loads
/// without a mapping table.
public final class Model {
    /// The zoo name and options this model was built from.
    public let spec: ModelSpec
    /// The root layer; `forward` runs it.
    public let root: Layer
    /// The path of the last (classifier) layer, e.g. "classifier.4" or "fc".
    public let classifierPath: String

    init(spec: ModelSpec, root: Layer) {
        self.spec = spec
        self.root = root
        root.assignPaths("")
        let weighted = Model.weightedLayers(root)
        // Nobody needs d(loss)/d(image): the layer that sees the input first skips it.
        var first: Layer = root
        while let child = first.namedChildren().first?.1 { first = child }
        (first as? Conv2d)?.computesInputGradient = false
        (first as? Linear)?.computesInputGradient = false
        classifierPath = weighted.last(where: { $0 is Linear })?.path ?? ""
    }

    /// Conv2d and Linear layers in the order their parameters are listed.
    private static func weightedLayers(_ layer: Layer) -> [Layer] {
        if layer is Conv2d || layer is Linear { return [layer] }
        if let patch = layer as? PatchEmbedding { return [patch.conv] }
        if let attention = layer as? MultiheadSelfAttention { return [attention.inProj, attention.outProj] }
        return layer.namedChildren().flatMap { weightedLayers($0.1) }
    }

    /// The classifier (last Linear layer).
    public var classifier: Linear {
        Model.weightedLayers(root).last { $0 is Linear } as! Linear
    }

    /// The input of the classifier for x [N, C, H, W]: every layer before the classifier, in `mode`.
    /// Requires the classifier to be the last layer of the (nested) last Sequential, as in every
    /// model of the zoo.
    public func forwardToClassifier(_ x: Tensor, mode: Mode) throws -> Tensor {
        let head = classifier
        func run(_ layer: Layer, _ x: Tensor) throws -> Tensor {
            guard let seq = layer as? Sequential else {
                throw NeuralCoreError.invalidConfiguration("\(spec.name): the classifier is not the last layer of a Sequential")
            }
            var h = x
            for (i, (_, child)) in seq.layers.enumerated() {
                if child === head { return h }
                if i == seq.layers.count - 1 { return try run(child, h) }
                h = try child.forward(h, mode: mode)
            }
            return h
        }
        guard x.rank == 4, Array(x.shape.dropFirst()) == spec.inputShape else {
            throw NeuralCoreError.shapeMismatch(layer: "\(spec.name) input", expected: "[N, \(spec.inputShape.map(String.init).joined(separator: ", "))]", actual: x.shape)
        }
        return try run(root, x)
    }

    public var inputShape: [Int] { spec.inputShape }
    public var classes: Int { spec.classes }

    /// logits [N, classes] for x [N, C, H, W].
    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        guard x.rank == 4, Array(x.shape.dropFirst()) == spec.inputShape else {
            throw NeuralCoreError.shapeMismatch(layer: "\(spec.name) input", expected: "[N, \(spec.inputShape.map(String.init).joined(separator: ", "))]", actual: x.shape)
        }
        return try root.forward(x, mode: mode)
    }

    /// Backpropagates d(loss)/d(logits), accumulating every parameter gradient.
    public func backward(_ dLogits: Tensor) throws { _ = try root.backward(dLogits) }

    /// Every trainable tensor under its state_dict key, in PyTorch's registration order.
    public func namedParameters() -> [(String, Parameter)] { root.namedParameters() }
    public var parameters: [Parameter] { namedParameters().map(\.1) }
    /// Running statistics and counters under their state_dict keys.
    public func namedBuffers() -> [(String, Buffer)] { root.namedBuffers() }

    /// The number of trainable scalars.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

    /// The weight tensors pruning may act on (conv, linear and attention projection weights), by
    /// state_dict key, in registration order.
    public var prunableWeights: [(String, Parameter)] {
        let weights = Set(Model.weightedLayers(root).compactMap { layer -> ObjectIdentifier? in
            if let conv = layer as? Conv2d { return ObjectIdentifier(conv.weight) }
            if let linear = layer as? Linear { return ObjectIdentifier(linear.weight) }
            return nil
        })
        return namedParameters().filter { weights.contains(ObjectIdentifier($0.1)) }
    }

    /// The classifier's weight key, e.g. "classifier.4.weight".
    public var classifierWeightKey: String { join(classifierPath, "weight") }

    public func zeroGrad() { for p in parameters { p.zeroGrad() } }

    /// The model's state (parameters then buffers) under PyTorch's keys.
    public func stateDict() -> [(key: String, value: Tensor, type: BufferType)] {
        namedParameters().map { ($0.0, $0.1.value, BufferType.float32) }
            + namedBuffers().map { ($0.0, $0.1.value, $0.1.type) }
    }

    /// Loads every parameter and buffer from `state`. Nothing changes unless every key of the
    /// model is present with the right shape and no extra key is there (BN's num_batches_tracked
    /// may be missing, as in older PyTorch files).
    public func load(_ state: [String: Tensor]) throws {
        let params = namedParameters(), buffers = namedBuffers()
        var expected: [String: [Int]] = [:]
        for (k, p) in params { expected[k] = p.value.shape }
        for (k, b) in buffers { expected[k] = b.value.shape }
        let optional = Set(buffers.filter { $0.0.hasSuffix("num_batches_tracked") }.map(\.0))
        let missing = expected.keys.filter { state[$0] == nil && !optional.contains($0) }.sorted()
        let unexpected = state.keys.filter { expected[$0] == nil }.sorted()
        let wrong = expected.compactMap { k, shape -> String? in
            guard let t = state[k], t.shape != shape, !(shape.isEmpty && t.count == 1) else { return nil }
            return "\(k): model \(describeShape(shape)), file \(describeShape(t.shape))"
        }.sorted()
        if !missing.isEmpty || !unexpected.isEmpty || !wrong.isEmpty {
            throw NeuralCoreError.stateDictMismatch(missing: missing, unexpected: unexpected, wrongShape: wrong)
        }
        for (k, p) in params { p.value = state[k]!.reshaped(p.value.shape) }
        for (k, b) in buffers { if let t = state[k] { b.value = t.reshaped(b.value.shape) } }
    }
}
