/// Inverted dropout (`torch.nn.Dropout`): in train mode each element is zeroed with probability
/// p and the survivors scaled by 1/(1 − p); eval mode is the identity. Shapes: y has x's shape.
///
/// Draws come from the layer's own seeded generator, so two runs with the same seed drop the same
/// elements (PyTorch's generator is different: masks never match PyTorch's bit for bit).
public final class Dropout: Layer {
    public var path = ""
    public let probability: Float
    private var rng: SeededGenerator
    private var mask: [Float]?

    public init(_ probability: Float, seed: UInt64) {
        precondition(probability >= 0 && probability < 1, "dropout probability must be in [0, 1)")
        self.probability = probability
        self.rng = SeededGenerator(seed: seed)
    }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        guard mode == .train, probability > 0 else { mask = nil; return x }
        let keep = 1 - probability, scale = 1 / keep
        var m = [Float](repeating: 0, count: x.count)
        for i in 0..<m.count where rng.nextUniformFloat() < keep { m[i] = scale }
        var y = x
        y.withMutablePointer { p in
            for i in 0..<x.count { p[i] *= m[i] }
        }
        mask = m
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let m = mask else { return dy }   // p = 0 or eval: identity
        try expect(dy.shape, "\(m.count) elements", dy.count == m.count)
        var dx = dy
        dx.withMutablePointer { p in
            for i in 0..<m.count { p[i] *= m[i] }
        }
        return dx
    }
}
