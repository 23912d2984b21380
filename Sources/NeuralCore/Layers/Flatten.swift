/// Flattens every dimension after the first (`torch.nn.Flatten()`): x [N, d1, d2, …] → y [N, d1·d2·…].
public final class Flatten: Layer {
    public var path = ""
    private var inputShape: [Int]?
    public init() {}

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try expect(x.shape, "[N, ...]", x.rank >= 1)
        inputShape = x.shape
        return x.reshaped([x.shape[0], x.count / max(1, x.shape[0])])
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let shape = inputShape else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
        try expect(dy.shape, "\(shape.reduce(1, *)) elements", dy.count == shape.reduce(1, *))
        return dy.reshaped(shape)
    }
}
