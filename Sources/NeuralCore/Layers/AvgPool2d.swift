/// Average pooling (`torch.nn.AvgPool2d`, floor mode, count_include_pad = true).
///
/// Shapes: x [N, C, H, W] → y [N, C, OH, OW], OH = (H + 2P − K) / S + 1; every window divides
/// by K·K, padded positions included, as PyTorch's default does.
public final class AvgPool2d: Layer {
    public var path = ""
    public let kernel: Int, stride: Int, padding: Int
    private var inputShape: [Int]?

    public init(kernel: Int, stride: Int? = nil, padding: Int = 0) {
        precondition(kernel > 0 && padding >= 0 && padding * 2 <= kernel, "padding must be at most half the kernel")
        self.kernel = kernel
        self.stride = stride ?? kernel
        self.padding = padding
    }

    private func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        ((h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1)
    }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try expect(x.shape, "[N, C, H, W] with H, W ≥ \(kernel - 2 * padding)",
                   x.rank == 4 && x.shape[2] + 2 * padding >= kernel && x.shape[3] + 2 * padding >= kernel)
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = outputSize(h, w)
        let (k, s, p) = (kernel, stride, padding)
        let scale = 1 / Float(k * k)
        var y = Tensor(shape: [n, c, oh, ow])
        x.withPointer { xp in
            y.withMutablePointer { yp in
                for plane in 0..<(n * c) {
                    let src = xp + plane * h * w
                    for i in 0..<oh {
                        let r0 = max(0, i * s - p), r1 = min(h, i * s - p + k)
                        for j in 0..<ow {
                            let c0 = max(0, j * s - p), c1 = min(w, j * s - p + k)
                            var sum: Float = 0
                            for r in r0..<r1 { for cc in c0..<c1 { sum += src[r * w + cc] } }
                            yp[(plane * oh + i) * ow + j] = sum * scale
                        }
                    }
                }
            }
        }
        inputShape = mode == .train ? x.shape : nil
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let shape = inputShape else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (oh, ow) = outputSize(h, w)
        try expect(dy.shape, describeShape([n, c, oh, ow]), dy.shape == [n, c, oh, ow])
        let (k, s, p) = (kernel, stride, padding)
        let scale = 1 / Float(k * k)
        var dx = Tensor(shape: shape)
        dy.withPointer { dyp in
            dx.withMutablePointer { dxp in
                for plane in 0..<(n * c) {
                    let dst = dxp + plane * h * w
                    for i in 0..<oh {
                        let r0 = max(0, i * s - p), r1 = min(h, i * s - p + k)
                        for j in 0..<ow {
                            let c0 = max(0, j * s - p), c1 = min(w, j * s - p + k)
                            let g = dyp[(plane * oh + i) * ow + j] * scale
                            for r in r0..<r1 { for cc in c0..<c1 { dst[r * w + cc] += g } }
                        }
                    }
                }
            }
        }
        return dx
    }
}
