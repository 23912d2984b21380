import NeuralCore

/// Applies pruning masks around an optimizer: masked gradients are zeroed before every step and
/// masked weights re-zeroed after it.
///
/// With a masked weight at 0 and its gradient at 0, SGD's weight decay adds 0 and its momentum
/// buffer receives 0 on every step (it starts at the first step's zero update), and AdamW's moments
/// stay 0; so pruned weights, their gradients and their optimizer state all stay exactly zero.
public final class MaskedOptimizer: Optimizer {
    public let inner: Optimizer
    private let masked: [(Parameter, [Float])]

    /// `masks` by state_dict key; `parameters` maps keys of `model` to their tensors.
    public init(_ inner: Optimizer, masks: PruningMasks, model: Model) {
        self.inner = inner
        let byKey = Dictionary(uniqueKeysWithValues: model.namedParameters())
        masked = masks.keys.compactMap { key in byKey[key].map { ($0, masks.masks[key]!) } }
    }

    public var learningRate: Float {
        get { inner.learningRate }
        set { inner.learningRate = newValue }
    }

    public func step() {
        for (p, mask) in masked {
            p.grad.withMutablePointer { g in for i in 0..<mask.count { g[i] *= mask[i] } }
        }
        inner.step()
        for (p, mask) in masked {
            p.value.withMutablePointer { w in for i in 0..<mask.count { w[i] *= mask[i] } }
        }
    }
}
