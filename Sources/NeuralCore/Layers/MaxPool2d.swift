/// Max pooling (`torch.nn.MaxPool2d`, dilation 1, floor mode). Padding reads as −∞.
///
/// Shapes: x [N, C, H, W] → y [N, C, OH, OW], OH = (H + 2P − K) / S + 1. Ties go to the first
/// maximum in row-major window order, as in PyTorch; backward routes each gradient to it.
public final class MaxPool2d: Layer {
    public var path = ""
    public let kernel: Int, stride: Int, padding: Int
    /// Index of each window's maximum in its plane (internal: tests read it).
    var argmax: [Int32] = []
    private var inputShape: [Int]?

    public init(kernel: Int, stride: Int? = nil, padding: Int = 0) {
        precondition(kernel > 0 && padding >= 0 && padding * 2 <= kernel, "padding must be at most half the kernel")
        self.kernel = kernel
        self.stride = stride ?? kernel
        self.padding = padding
    }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try expect(x.shape, "[N, C, H, W] with H, W ≥ \(kernel - 2 * padding)",
                   x.rank == 4 && x.shape[2] + 2 * padding >= kernel && x.shape[3] + 2 * padding >= kernel)
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let oh = (h + 2 * padding - kernel) / stride + 1, ow = (w + 2 * padding - kernel) / stride + 1
        let planes = n * c
        var y = Tensor(shape: [n, c, oh, ow])
        if argmax.count != planes * oh * ow { argmax = [Int32](repeating: 0, count: planes * oh * ow) }
        let (k, s, p) = (kernel, stride, padding)
        x.withPointer { xp in
            y.withMutablePointer { yp in
                argmax.withUnsafeMutableBufferPointer { ap in
                    let ap = ap.baseAddress!
                    parallelChunks(planes, threads: Compute.threads, minimumChunk: 16) { range in
                        if k == 2 && s == 2 && p == 0 {
                            Self.pool2x2(xp, yp, ap, planes: range, h: h, w: w, oh: oh, ow: ow)
                            return
                        }
                        for plane in range {
                            let src = xp + plane * h * w
                            for i in 0..<oh {
                                let r0 = max(0, i * s - p), r1 = min(h, i * s - p + k)
                                for j in 0..<ow {
                                    let c0 = max(0, j * s - p), c1 = min(w, j * s - p + k)
                                    var best = -Float.infinity, at = r0 * w + c0
                                    for r in r0..<r1 {
                                        for cc in c0..<c1 {
                                            let v = src[r * w + cc]
                                            if v > best || (v.isNaN && !best.isNaN) { best = v; at = r * w + cc }
                                        }
                                    }
                                    let o = (plane * oh + i) * ow + j
                                    yp[o] = best
                                    ap[o] = Int32(at)
                                }
                            }
                        }
                    }
                }
            }
        }
        inputShape = mode == .train ? x.shape : nil
        return y
    }

    /// The common 2×2 / stride 2 case without window bounds checks.
    private static func pool2x2(_ xp: UnsafePointer<Float>, _ yp: UnsafeMutablePointer<Float>, _ ap: UnsafeMutablePointer<Int32>,
                                planes: Range<Int>, h: Int, w: Int, oh: Int, ow: Int) {
        for plane in planes {
            let src = xp + plane * h * w
            var o = plane * oh * ow
            for i in 0..<oh {
                let r0 = src + 2 * i * w, r1 = r0 + w
                for j in 0..<ow {
                    let c = 2 * j
                    // Branch-free: selects compile to blends, comparisons of random data mispredict.
                    let top = 2 * i * w + c
                    var best = r0[c], at = top
                    let v1 = r0[c + 1], v2 = r1[c], v3 = r1[c + 1]
                    if v1 > best { best = v1; at = top + 1 }
                    if v2 > best { best = v2; at = top + w }
                    if v3 > best { best = v3; at = top + w + 1 }
                    yp[o] = best
                    ap[o] = Int32(at)
                    o += 1
                }
            }
        }
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let shape = inputShape else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
        try expect(dy.shape, "\(argmax.count) elements", dy.count == argmax.count)
        let planeIn = shape[2] * shape[3], planeOut = dy.shape[2] * dy.shape[3]
        var dx = Tensor(shape: shape)
        let dyp = dy.withPointer { $0 }, dxp = dx.withMutablePointer { $0 }
        let ap = argmax.withUnsafeBufferPointer { $0.baseAddress! }
        withExtendedLifetime((dy, dx, argmax)) {
            // Planes are independent: split them over the threads.
            parallelChunks(shape[0] * shape[1], threads: Compute.threads, minimumChunk: max(1, 4096 / max(1, planeIn))) { planes in
                for plane in planes {
                    let d = dxp + plane * planeIn
                    for o in (plane * planeOut)..<((plane + 1) * planeOut) { d[Int(ap[o])] += dyp[o] }
                }
            }
        }
        return dx
    }
}
