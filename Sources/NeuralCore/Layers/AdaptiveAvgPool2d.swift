/// Global average pooling, `torch.nn.AdaptiveAvgPool2d(1)`.
///
/// Shapes: x [N, C, H, W] → y [N, C, 1, 1], the mean of each plane.
public final class AdaptiveAvgPool2d: Layer {
    public var path = ""
    private var inputShape: [Int]?

    public init() {}

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try expect(x.shape, "[N, C, H, W]", x.rank == 4 && x.shape[2] * x.shape[3] > 0)
        let (n, c) = (x.shape[0], x.shape[1])
        let hw = x.shape[2] * x.shape[3]
        var y = Tensor(shape: [n, c, 1, 1])
        x.withPointer { xp in
            y.withMutablePointer { yp in
                for plane in 0..<(n * c) {
                    var s: Float = 0
                    for i in 0..<hw { s += xp[plane * hw + i] }
                    yp[plane] = s / Float(hw)
                }
            }
        }
        inputShape = mode == .train ? x.shape : nil
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let shape = inputShape else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
        try expect(dy.shape, describeShape([shape[0], shape[1], 1, 1]), dy.count == shape[0] * shape[1])
        let hw = shape[2] * shape[3]
        var dx = Tensor(shape: shape)
        dy.withPointer { dyp in
            dx.withMutablePointer { dxp in
                for plane in 0..<(shape[0] * shape[1]) {
                    let g = dyp[plane] / Float(hw)
                    (dxp + plane * hw).update(repeating: g, count: hw)
                }
            }
        }
        return dx
    }
}
