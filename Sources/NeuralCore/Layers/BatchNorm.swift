/// Batch normalisation over the channel dimension (`torch.nn.BatchNorm1d` / `BatchNorm2d`).
///
/// Shapes: BatchNorm2d x [N, C, H, W]; BatchNorm1d x [N, C] or [N, C, L]; y has x's shape.
/// weight, bias, running_mean, running_var [C]; num_batches_tracked [] (int64 in PyTorch).
/// Train mode normalises with the batch's mean and biased variance and updates the running
/// statistics as PyTorch does: r ← (1 − momentum)·r + momentum·batch, with the unbiased variance
/// for running_var. Eval mode normalises with the running statistics. Sums are in Float64.
public final class BatchNorm: Layer {
    public var path = ""
    public let channels: Int
    public let spatial: Bool
    public let eps: Float, momentum: Float
    public let weight: Parameter, bias: Parameter
    public let runningMean: Buffer, runningVar: Buffer, batchesTracked: Buffer
    private var xhat: Tensor?
    private var invStd: [Float] = []
    private var lastMode = Mode.eval

    /// `spatial` true makes a BatchNorm2d (input [N, C, H, W]), false a BatchNorm1d.
    public init(_ channels: Int, spatial: Bool, eps: Float = 1e-5, momentum: Float = 0.1) {
        self.channels = channels
        self.spatial = spatial
        self.eps = eps
        self.momentum = momentum
        weight = Parameter(Tensor(shape: [channels], repeating: 1))
        bias = Parameter(Tensor(shape: [channels]))
        runningMean = Buffer(Tensor(shape: [channels]))
        runningVar = Buffer(Tensor(shape: [channels], repeating: 1))
        batchesTracked = Buffer(Tensor(shape: []), type: .int64)
    }

    public static func twoD(_ c: Int) -> BatchNorm { BatchNorm(c, spatial: true) }
    public static func oneD(_ c: Int) -> BatchNorm { BatchNorm(c, spatial: false) }

    public func namedParameters() -> [(String, Parameter)] { [("weight", weight), ("bias", bias)] }
    public func namedBuffers() -> [(String, Buffer)] {
        [("running_mean", runningMean), ("running_var", runningVar), ("num_batches_tracked", batchesTracked)]
    }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        if spatial {
            try expect(x.shape, "[N, \(channels), H, W]", x.rank == 4 && x.shape[1] == channels)
        } else {
            try expect(x.shape, "[N, \(channels)] or [N, \(channels), L]",
                       (x.rank == 2 || x.rank == 3) && x.shape[1] == channels)
        }
        let n = x.shape[0], c = channels
        let inner = x.count / max(1, n * c)
        let m = n * inner
        if mode == .train && m <= 1 {
            throw NeuralCoreError.shapeMismatch(layer: path, expected: "more than one value per channel in training", actual: x.shape)
        }
        var y = Tensor(shape: x.shape)
        var xh = Tensor(shape: mode == .train ? x.shape : [0])
        if invStd.count != c { invStd = [Float](repeating: 0, count: c) }
        let momentum = self.momentum, eps = self.eps
        x.withPointer { xp in
            y.withMutablePointer { yp in
                xh.withMutablePointer { xhp in
                    weight.value.withPointer { gp in
                        bias.value.withPointer { bp in
                            runningMean.value.withMutablePointer { rm in
                                runningVar.value.withMutablePointer { rv in
                                    invStd.withUnsafeMutableBufferPointer { isd in
                                        parallelChunks(c, threads: Compute.threads) { range in
                                            for ch in range {
                                                var mean: Float, inv: Float
                                                if mode == .train {
                                                    var s = 0.0
                                                    for i in 0..<n { let row = xp + (i * c + ch) * inner; for j in 0..<inner { s += Double(row[j]) } }
                                                    let mu = s / Double(m)
                                                    var v = 0.0
                                                    for i in 0..<n {
                                                        let row = xp + (i * c + ch) * inner
                                                        for j in 0..<inner { let d = Double(row[j]) - mu; v += d * d }
                                                    }
                                                    let biased = v / Double(m)
                                                    mean = Float(mu)
                                                    inv = Float(1 / (biased + Double(eps)).squareRoot())
                                                    rm[ch] = (1 - momentum) * rm[ch] + momentum * mean
                                                    rv[ch] = (1 - momentum) * rv[ch] + momentum * Float(v / Double(m - 1))
                                                } else {
                                                    mean = rm[ch]
                                                    inv = 1 / (rv[ch] + eps).squareRoot()
                                                }
                                                isd[ch] = inv
                                                let g = gp[ch], b = bp[ch]
                                                for i in 0..<n {
                                                    let o = (i * c + ch) * inner
                                                    for j in 0..<inner {
                                                        let h = (xp[o + j] - mean) * inv
                                                        if mode == .train { xhp[o + j] = h }
                                                        yp[o + j] = g * h + b
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if mode == .train {
            batchesTracked.value.scalars[0] += 1
            xhat = xh
        } else {
            // Eval-mode backward (frozen statistics) needs x̂ too; keep it only when asked to.
            xhat = nil
            evalInput = keepsEvalInput ? x : nil
        }
        lastMode = mode
        return y
    }

    /// Keep the input of eval-mode forwards so that backward can run through frozen statistics.
    public var keepsEvalInput = false
    private var evalInput: Tensor?

    public func backward(_ dy: Tensor) throws -> Tensor {
        let c = channels
        if lastMode == .eval {
            guard let x = evalInput else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
            try expect(dy.shape, describeShape(x.shape), dy.shape == x.shape)
            return backwardFrozen(x, dy)
        }
        guard let xh = xhat else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
        try expect(dy.shape, describeShape(xh.shape), dy.shape == xh.shape)
        let n = xh.shape[0], inner = xh.count / (n * c), m = Float(n * inner)
        var dx = Tensor(shape: xh.shape)
        xh.withPointer { hp in
            dy.withPointer { dyp in
                dx.withMutablePointer { dxp in
                    weight.value.withPointer { gp in
                        weight.grad.withMutablePointer { dg in
                            bias.grad.withMutablePointer { db in
                                invStd.withUnsafeBufferPointer { isd in
                                    parallelChunks(c, threads: Compute.threads) { range in
                                        for ch in range {
                                            var sdy = 0.0, sdyh = 0.0
                                            for i in 0..<n {
                                                let o = (i * c + ch) * inner
                                                for j in 0..<inner { sdy += Double(dyp[o + j]); sdyh += Double(dyp[o + j] * hp[o + j]) }
                                            }
                                            dg[ch] += Float(sdyh)
                                            db[ch] += Float(sdy)
                                            // dx = γ/(σ·M) · (M·dy − Σdy − x̂·Σdy·x̂)
                                            let k = gp[ch] * isd[ch] / m
                                            let a = Float(sdy), b = Float(sdyh)
                                            for i in 0..<n {
                                                let o = (i * c + ch) * inner
                                                for j in 0..<inner { dxp[o + j] = k * (m * dyp[o + j] - a - hp[o + j] * b) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return dx
    }

    /// Backward through eval-mode normalisation: the statistics are constants.
    private func backwardFrozen(_ x: Tensor, _ dy: Tensor) -> Tensor {
        let c = channels, n = x.shape[0], inner = x.count / (n * c)
        var dx = Tensor(shape: x.shape)
        x.withPointer { xp in
            dy.withPointer { dyp in
                dx.withMutablePointer { dxp in
                    for ch in 0..<c {
                        let mean = runningMean.value.scalars[ch], inv = invStd[ch], g = weight.value.scalars[ch]
                        var sdy = 0.0, sdyh = 0.0
                        for i in 0..<n {
                            let o = (i * c + ch) * inner
                            for j in 0..<inner {
                                let d = dyp[o + j]
                                sdy += Double(d); sdyh += Double(d * (xp[o + j] - mean) * inv)
                                dxp[o + j] = d * g * inv
                            }
                        }
                        weight.grad.scalars[ch] += Float(sdyh)
                        bias.grad.scalars[ch] += Float(sdy)
                    }
                }
            }
        }
        return dx
    }
}
