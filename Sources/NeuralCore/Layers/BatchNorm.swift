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
    /// The training forward's input and batch statistics: backward recomputes x̂ = (x − mean)·invStd
    /// instead of keeping a tensor of it (one write and one activation-sized buffer less per step).
    private var trainInput: Tensor?
    private var batchMean: [Float] = []
    private var invStd: [Float] = []
    private var lastMode = Mode.eval
    /// Keep the input of eval-mode forwards so that backward can run through frozen statistics.
    public var keepsEvalInput = false
    /// Frozen statistics (PyTorch's `bn.eval()` inside a training model): training-mode forwards
    /// normalise with the running statistics, leave them as they are, and backward treats them
    /// as constants.
    public var frozen = false
    private var evalInput: Tensor?

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
        let training = mode == .train && !frozen
        if training && m <= 1 {
            throw NeuralCoreError.shapeMismatch(layer: path, expected: "more than one value per channel in training", actual: x.shape)
        }
        var y = Tensor(shape: x.shape, unsafeUninitialized: { _ in })
        if invStd.count != c { invStd = [Float](repeating: 0, count: c) }
        if batchMean.count != c { batchMean = [Float](repeating: 0, count: c) }
        let momentum = self.momentum, eps = self.eps
        let xp = x.withPointer { $0 }, yp = y.withMutablePointer { $0 }
        let gp = weight.value.withPointer { $0 }, bp = bias.value.withPointer { $0 }
        let rm = runningMean.value.withMutablePointer { $0 }, rv = runningVar.value.withMutablePointer { $0 }
        let isd = invStd.withUnsafeMutableBufferPointer { $0.baseAddress! }
        let bm = batchMean.withUnsafeMutableBufferPointer { $0.baseAddress! }
        withExtendedLifetime((x, y)) {
            parallelChunks(c, threads: Compute.threads) { range in
                for ch in range {
                    var mean: Float, inv: Float
                    if training {
                        // Sums shifted by the first value keep the variance well conditioned.
                        let shift = xp[ch * inner]
                        var s1 = 0.0, s2 = 0.0
                        for i in 0..<n {
                            let (a, b) = vectorShiftedMoments(xp + (i * c + ch) * inner, inner, shift: shift)
                            s1 += a; s2 += b
                        }
                        let meanShifted = s1 / Double(m)
                        let sumSquares = max(0, s2 - s1 * meanShifted)   // Σ (x − mean)²
                        mean = Float(Double(shift) + meanShifted)
                        inv = Float(1 / (sumSquares / Double(m) + Double(eps)).squareRoot())
                        rm[ch] = (1 - momentum) * rm[ch] + momentum * mean
                        rv[ch] = (1 - momentum) * rv[ch] + momentum * Float(sumSquares / Double(m - 1))
                    } else {
                        mean = rm[ch]
                        inv = 1 / (rv[ch] + eps).squareRoot()
                    }
                    isd[ch] = inv
                    bm[ch] = mean
                    let scale = gp[ch] * inv, offset = bp[ch] - mean * gp[ch] * inv
                    for i in 0..<n {
                        let o = (i * c + ch) * inner
                        let src = xp + o, dst = yp + o
                        for j in 0..<inner { dst[j] = src[j] * scale + offset }
                    }
                }
            }
        }
        if training {
            batchesTracked.value.scalars[0] += 1
            trainInput = x
        } else {
            // Backward through frozen statistics needs the input too; keep it when training
            // (frozen) or when asked to.
            trainInput = nil
            evalInput = keepsEvalInput || mode == .train ? x : nil
        }
        lastMode = training ? .train : .eval
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        let c = channels
        if lastMode == .eval {
            guard let x = evalInput else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
            try expect(dy.shape, describeShape(x.shape), dy.shape == x.shape)
            return backwardFrozen(x, dy)
        }
        guard let x = trainInput else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
        try expect(dy.shape, describeShape(x.shape), dy.shape == x.shape)
        let n = x.shape[0], inner = x.count / (n * c), m = Float(n * inner)
        var dx = Tensor(shape: x.shape, unsafeUninitialized: { _ in })
        let xp = x.withPointer { $0 }, dyp = dy.withPointer { $0 }, dxp = dx.withMutablePointer { $0 }
        let gp = weight.value.withPointer { $0 }
        let dg = weight.grad.withMutablePointer { $0 }, db = bias.grad.withMutablePointer { $0 }
        let isd = invStd.withUnsafeBufferPointer { $0.baseAddress! }, bm = batchMean.withUnsafeBufferPointer { $0.baseAddress! }
        withExtendedLifetime((x, dy, dx)) {
            parallelChunks(c, threads: Compute.threads) { range in
                for ch in range {
                    let mean = bm[ch], inv = isd[ch]
                    // Σ dy and Σ dy·(x − mean); Σ dy·x̂ is the latter times invStd.
                    var sdy = 0.0, sdyc = 0.0
                    for i in 0..<n {
                        let o = (i * c + ch) * inner
                        let (s, d) = vectorSumAndShiftedDot(dyp + o, xp + o, inner, shift: mean)
                        sdy += s
                        sdyc += d
                    }
                    let sdyh = sdyc * Double(inv)
                    dg[ch] += Float(sdyh)
                    db[ch] += Float(sdy)
                    // dx = γ/(σ·M) · (M·dy − Σdy − x̂·Σdy·x̂), x̂ = (x − mean)·invStd
                    let k = gp[ch] * inv / m
                    let a = Float(sdy), b = Float(sdyh) * inv
                    for i in 0..<n {
                        let o = (i * c + ch) * inner
                        let g = dyp + o, h = xp + o, d = dxp + o
                        for j in 0..<inner { d[j] = k * (m * g[j] - a - (h[j] - mean) * b) }
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
