/// 2-D convolution (`torch.nn.Conv2d`, dilation 1, groups 1) as im2col + GEMM.
///
/// Shapes: x [N, C, H, W] → y [N, OC, OH, OW] with OH = (H + 2P − KH) / S + 1 (likewise OW);
/// weight [OC, C, KH, KW]; bias [OC]. Images are processed in chunks of `nb`: the chunk's patches
/// are unfolded into col [C·KH·KW, nb·OH·OW] and one GEMM computes out [OC, nb·OH·OW] = W · col,
/// so small feature maps still make GEMMs large enough to run near BLAS peak. Backward recomputes
/// col instead of keeping it (it is KH·KW times the input).
public final class Conv2d: Layer {
    public var path = ""
    public let inChannels: Int, outChannels: Int
    public let kernel: (h: Int, w: Int), stride: Int, padding: Int
    public let weight: Parameter
    public let bias: Parameter?
    /// When false, `backward` skips d(input) (first layer of a model) and returns an empty tensor.
    public var computesInputGradient = true
    private var input: Tensor?
    private var col: [Float] = []
    private var gathered: [Float] = []

    /// Initialised as PyTorch does: U(-1/√fan_in, 1/√fan_in), fan_in = C·KH·KW.
    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, rng: inout SeededGenerator) {
        precondition(kernel > 0 && stride > 0 && padding >= 0)
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = (kernel, kernel)
        self.stride = stride
        self.padding = padding
        let fanIn = inChannels * kernel * kernel
        let bound = 1 / Float(fanIn).squareRoot()
        weight = Parameter(uniformTensor([outChannels, inChannels, kernel, kernel], bound: bound, rng: &rng))
        self.bias = bias ? Parameter(uniformTensor([outChannels], bound: bound, rng: &rng)) : nil
    }

    public func namedParameters() -> [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    /// Output height and width for an input of height `h` and width `w`.
    public func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        ((h + 2 * padding - kernel.h) / stride + 1, (w + 2 * padding - kernel.w) / stride + 1)
    }

    private var isPointwise: Bool { kernel == (1, 1) && stride == 1 && padding == 0 }

    /// Images per GEMM: enough columns for an efficient GEMM, col bounded to 16 MB.
    private func chunkSize(n: Int, l: Int, ckk: Int) -> Int {
        if isPointwise { return 1 }
        let wanted = max(1, (4096 + l - 1) / l)
        let byMemory = max(1, (4 << 20) / max(1, ckk * l))
        return max(1, min(n, wanted, byMemory))
    }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        // x [N, C, H, W] → y [N, OC, OH, OW]
        try expect(x.shape, "[N, \(inChannels), H, W] with H, W ≥ \(kernel.h - 2 * padding)",
                   x.rank == 4 && x.shape[1] == inChannels
                       && x.shape[2] + 2 * padding >= kernel.h && x.shape[3] + 2 * padding >= kernel.w)
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let (oh, ow) = outputSize(h, w)
        let l = oh * ow, ckk = inChannels * kernel.h * kernel.w, oc = outChannels
        let nb = chunkSize(n: n, l: l, ckk: ckk)
        var y = Tensor(shape: [n, oc, oh, ow])
        if !isPointwise && col.count < ckk * nb * l { col = [Float](repeating: 0, count: ckk * nb * l) }
        if nb > 1 && gathered.count < oc * nb * l { gathered = [Float](repeating: 0, count: oc * nb * l) }
        x.withPointer { xp in
            weight.value.withPointer { wp in
                y.withMutablePointer { yp in
                    col.withUnsafeMutableBufferPointer { colBuf in
                        gathered.withUnsafeMutableBufferPointer { outBuf in
                            var start = 0
                            while start < n {
                                let cnt = min(nb, n - start)
                                let cols = cnt * l
                                let src: UnsafePointer<Float>
                                if isPointwise {
                                    src = xp + start * inChannels * h * w
                                } else {
                                    im2col(xp + start * inChannels * h * w, images: cnt, h: h, w: w,
                                           oh: oh, ow: ow, into: colBuf.baseAddress!)
                                    src = UnsafePointer(colBuf.baseAddress!)
                                }
                                if cnt == 1 {
                                    BLAS.gemm(m: oc, n: cols, k: ckk, a: wp, lda: ckk, b: src, ldb: cols,
                                              c: yp + start * oc * l, ldc: l)
                                } else {
                                    let out = outBuf.baseAddress!
                                    BLAS.gemm(m: oc, n: cols, k: ckk, a: wp, lda: ckk, b: src, ldb: cols,
                                              c: out, ldc: cols)
                                    // out [OC, cnt·L] → y[start + i, OC, L]
                                    for i in 0..<cnt {
                                        for o in 0..<oc {
                                            (yp + ((start + i) * oc + o) * l).update(from: out + o * cols + i * l, count: l)
                                        }
                                    }
                                }
                                start += cnt
                            }
                        }
                    }
                    if let bias {
                        bias.value.withPointer { bp in
                            for i in 0..<n {
                                for o in 0..<oc {
                                    let row = yp + (i * oc + o) * l, b = bp[o]
                                    for j in 0..<l { row[j] += b }
                                }
                            }
                        }
                    }
                }
            }
        }
        input = mode == .train ? x : nil
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let x = input else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let (oh, ow) = outputSize(h, w)
        try expect(dy.shape, describeShape([n, outChannels, oh, ow]), dy.shape == [n, outChannels, oh, ow])
        let l = oh * ow, ckk = inChannels * kernel.h * kernel.w, oc = outChannels
        let nb = chunkSize(n: n, l: l, ckk: ckk)
        let inputGradient = computesInputGradient
        var dx = inputGradient ? Tensor(shape: x.shape) : Tensor(shape: [0])
        var dcol = (inputGradient && !isPointwise) ? [Float](repeating: 0, count: ckk * nb * l) : []
        if !isPointwise && col.count < ckk * nb * l { col = [Float](repeating: 0, count: ckk * nb * l) }
        if nb > 1 && gathered.count < oc * nb * l { gathered = [Float](repeating: 0, count: oc * nb * l) }
        let imageSize = inChannels * h * w
        x.withPointer { xp in
            dy.withPointer { dyp in
                weight.value.withPointer { wp in
                    weight.grad.withMutablePointer { gwp in
                        dx.withMutablePointer { dxp in
                            col.withUnsafeMutableBufferPointer { colBuf in
                                gathered.withUnsafeMutableBufferPointer { gBuf in
                                    dcol.withUnsafeMutableBufferPointer { dcolBuf in
                                        var start = 0
                                        while start < n {
                                            let cnt = min(nb, n - start)
                                            let cols = cnt * l
                                            // dyc [OC, cnt·L]
                                            let dyc: UnsafePointer<Float>
                                            if cnt == 1 {
                                                dyc = dyp + start * oc * l
                                            } else {
                                                let g = gBuf.baseAddress!
                                                for i in 0..<cnt {
                                                    for o in 0..<oc {
                                                        (g + o * cols + i * l).update(from: dyp + ((start + i) * oc + o) * l, count: l)
                                                    }
                                                }
                                                dyc = UnsafePointer(g)
                                            }
                                            // col [CKK, cnt·L]
                                            let colp: UnsafePointer<Float>
                                            if isPointwise {
                                                colp = xp + start * imageSize
                                            } else {
                                                im2col(xp + start * imageSize, images: cnt, h: h, w: w, oh: oh, ow: ow,
                                                       into: colBuf.baseAddress!)
                                                colp = UnsafePointer(colBuf.baseAddress!)
                                            }
                                            // dW [OC, CKK] += dyc · colᵀ
                                            BLAS.gemm(transB: true, m: oc, n: ckk, k: cols, a: dyc, lda: cols,
                                                      b: colp, ldb: cols, beta: 1, c: gwp, ldc: ckk)
                                            if inputGradient {
                                                if isPointwise {
                                                    // dx_n [C, L] = Wᵀ [C, OC] · dy_n [OC, L]
                                                    BLAS.gemm(transA: true, m: ckk, n: cols, k: oc, a: wp, lda: ckk,
                                                              b: dyc, ldb: cols, c: dxp + start * imageSize, ldc: cols)
                                                } else {
                                                    // dcol [CKK, cnt·L] = Wᵀ · dyc, folded back into dx
                                                    BLAS.gemm(transA: true, m: ckk, n: cols, k: oc, a: wp, lda: ckk,
                                                              b: dyc, ldb: cols, c: dcolBuf.baseAddress!, ldc: cols)
                                                    col2im(dcolBuf.baseAddress!, images: cnt, h: h, w: w, oh: oh, ow: ow,
                                                           into: dxp + start * imageSize)
                                                }
                                            }
                                            start += cnt
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        // db [OC] += Σ_{N, OH, OW} dy
        dy.withPointer { dyp in
            bias?.grad.withMutablePointer { gb in
                for i in 0..<n {
                    for o in 0..<oc {
                        let row = dyp + (i * oc + o) * l
                        var s: Float = 0
                        for j in 0..<l { s += row[j] }
                        gb[o] += s
                    }
                }
            }
        }
        return dx
    }

    /// Unfolds `images` consecutive images at `x` into col [C·KH·KW, images·OH·OW]; padding reads 0.
    private func im2col(_ x: UnsafePointer<Float>, images: Int, h: Int, w: Int, oh: Int, ow: Int,
                        into col: UnsafeMutablePointer<Float>) {
        let (kh, kw, s, p, c) = (kernel.h, kernel.w, stride, padding, inChannels)
        let l = oh * ow, cols = images * l
        parallelChunks(c * kh * kw, threads: Compute.threads, minimumChunk: 4) { rows in
            for r in rows {
                let ch = r / (kh * kw), ki = (r / kw) % kh, kj = r % kw
                // For output column ow, the input column is ow·s − p + kj; valid for owLo..<owHi.
                let owLo = max(0, (p - kj + s - 1) / s)
                let owHi = min(ow, (w - 1 + p - kj) / s + 1)
                for img in 0..<images {
                    let plane = x + (img * c + ch) * h * w
                    let dst0 = col + r * cols + img * l
                    for o in 0..<oh {
                        let ih = o * s - p + ki
                        let dst = dst0 + o * ow
                        if ih < 0 || ih >= h || owLo >= owHi {
                            dst.update(repeating: 0, count: ow)
                            continue
                        }
                        let srcRow = plane + ih * w
                        if owLo > 0 { dst.update(repeating: 0, count: owLo) }
                        if s == 1 {
                            (dst + owLo).update(from: srcRow + (owLo - p + kj), count: owHi - owLo)
                        } else {
                            var iw = owLo * s - p + kj
                            for q in owLo..<owHi { dst[q] = srcRow[iw]; iw += s }
                        }
                        if owHi < ow { (dst + owHi).update(repeating: 0, count: ow - owHi) }
                    }
                }
            }
        }
    }

    /// Adds col [C·KH·KW, images·OH·OW] back into the images at `dx` (the adjoint of `im2col`).
    private func col2im(_ col: UnsafePointer<Float>, images: Int, h: Int, w: Int, oh: Int, ow: Int,
                        into dx: UnsafeMutablePointer<Float>) {
        let (kh, kw, s, p, c) = (kernel.h, kernel.w, stride, padding, inChannels)
        let l = oh * ow, cols = images * l
        // Rows of one channel write only that channel's plane: split the work by channel.
        parallelChunks(c, threads: Compute.threads) { channels in
            for ch in channels {
                for ki in 0..<kh {
                    for kj in 0..<kw {
                        let r = (ch * kh + ki) * kw + kj
                        let owLo = max(0, (p - kj + s - 1) / s)
                        let owHi = min(ow, (w - 1 + p - kj) / s + 1)
                        if owLo >= owHi { continue }
                        for img in 0..<images {
                            let plane = dx + (img * c + ch) * h * w
                            let src0 = col + r * cols + img * l
                            for o in 0..<oh {
                                let ih = o * s - p + ki
                                if ih < 0 || ih >= h { continue }
                                let dstRow = plane + ih * w
                                let src = src0 + o * ow
                                var iw = owLo * s - p + kj
                                for q in owLo..<owHi { dstRow[iw] += src[q]; iw += s }
                            }
                        }
                    }
                }
            }
        }
    }
}
