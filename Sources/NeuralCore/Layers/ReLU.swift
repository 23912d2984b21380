/// max(x, 0), elementwise (`torch.nn.ReLU`). Shapes: y and dx have x's shape.
/// The gradient at exactly 0 is 0, as in PyTorch.
public final class ReLU: Layer {
    public var path = ""
    /// The last training-mode output (internal: tests read the activation pattern).
    var output: Tensor?
    public init() {}

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        var y = x
        y.withMutablePointer { p in
            for i in 0..<x.count where !(p[i] > 0) { p[i] = 0 }
        }
        output = mode == .train ? y : nil
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let y = output else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
        try expect(dy.shape, describeShape(y.shape), dy.shape == y.shape)
        var dx = dy
        y.withPointer { yp in
            dx.withMutablePointer { p in
                for i in 0..<y.count where !(yp[i] > 0) { p[i] = 0 }
            }
        }
        return dx
    }
}
