import Foundation

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

    /// Images per GEMM: enough columns (≈4,096) for an efficient GEMM, col bounded to 4 MB so a
    /// chunk stays in cache (measured: 16 MB chunks were 5 % slower on vgg-small).
    private func chunkSize(n: Int, l: Int, ckk: Int) -> Int {
        if isPointwise { return 1 }
        let wanted = max(1, (4096 + l - 1) / l)
        let byMemory = max(1, (1 << 20) / max(1, ckk * l))
        return max(1, min(n, wanted, byMemory))
    }

    /// Scratch memory of one worker thread: unfolded patches, gathered outputs, weight gradient.
    private final class Workspace {
        var col: [Float] = [], gathered: [Float] = [], dcol: [Float] = [], dW: [Float] = []
        func reserve(_ buffer: inout [Float], _ count: Int) {
            if buffer.count < count { buffer = [Float](repeating: 0, count: count) }
        }
    }
    private var workspaces: [Workspace] = []

    /// Runs `body(chunkStart, chunkCount, workspace)` over the batch's chunks of `nb` images,
    /// spreading chunks over `Compute.threads` workers (each with its own workspace); GEMMs inside
    /// run single-threaded.
    private func forEachChunk(_ n: Int, _ nb: Int, _ body: (Int, Int, Workspace) -> Void) -> Int {
        let chunks = (n + nb - 1) / nb
        let workers = max(1, min(Compute.threads, chunks))
        while workspaces.count < workers { workspaces.append(Workspace()) }
        if workers == 1 {
            for c in 0..<chunks { body(c * nb, min(nb, n - c * nb), workspaces[0]) }
        } else {
            let spaces = workspaces
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                var c = w
                while c < chunks {
                    body(c * nb, min(nb, n - c * nb), spaces[w])
                    c += workers
                }
            }
        }
        return workers
    }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        // x [N, C, H, W] → y [N, OC, OH, OW]
        try expect(x.shape, "[N, \(inChannels), H, W] with H, W ≥ \(kernel.h - 2 * padding)",
                   x.rank == 4 && x.shape[1] == inChannels
                       && x.shape[2] + 2 * padding >= kernel.h && x.shape[3] + 2 * padding >= kernel.w)
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let (oh, ow) = outputSize(h, w)
        let l = oh * ow, ckk = inChannels * kernel.h * kernel.w, oc = outChannels
        let imageSize = inChannels * h * w
        let pointwise = isPointwise
        let nb = chunkSize(n: n, l: l, ckk: ckk)
        var y = Tensor(shape: [n, oc, oh, ow], unsafeUninitialized: { _ in })   // every element is written below
        x.withPointer { xp in
            weight.value.withPointer { wp in
                y.withMutablePointer { yp in
                    let bias = self.bias?.value
                    _ = forEachChunk(n, nb) { start, cnt, ws in
                        let cols = cnt * l
                        let src: UnsafePointer<Float>
                        if pointwise {
                            src = xp + start * imageSize
                        } else {
                            ws.reserve(&ws.col, ckk * cols)
                            ws.col.withUnsafeMutableBufferPointer { im2col(xp + start * imageSize, images: cnt, h: h, w: w, oh: oh, ow: ow, into: $0.baseAddress!) }
                            src = ws.col.withUnsafeBufferPointer { $0.baseAddress! }
                        }
                        if cnt == 1 {
                            BLAS.gemm(m: oc, n: cols, k: ckk, a: wp, lda: ckk, b: src, ldb: cols, c: yp + start * oc * l, ldc: l, threads: 1)
                        } else {
                            ws.reserve(&ws.gathered, oc * cols)
                            ws.gathered.withUnsafeMutableBufferPointer { g in
                                let out = g.baseAddress!
                                BLAS.gemm(m: oc, n: cols, k: ckk, a: wp, lda: ckk, b: src, ldb: cols, c: out, ldc: cols, threads: 1)
                                // out [OC, cnt·L] → y[start + i, OC, L]
                                for i in 0..<cnt {
                                    for o in 0..<oc {
                                        (yp + ((start + i) * oc + o) * l).update(from: out + o * cols + i * l, count: l)
                                    }
                                }
                            }
                        }
                        bias?.withPointer { bp in
                            for i in start..<(start + cnt) {
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
        let inputGradient = computesInputGradient, pointwise = isPointwise
        var dx = inputGradient ? Tensor(shape: x.shape) : Tensor(shape: [0])
        let imageSize = inChannels * h * w
        for ws in workspaces { ws.reserve(&ws.dW, oc * ckk) }
        var workers = 0
        x.withPointer { xp in
            dy.withPointer { dyp in
                weight.value.withPointer { wp in
                    dx.withMutablePointer { dxp in
                        workers = forEachChunk(n, nb) { start, cnt, ws in
                            let cols = cnt * l
                            ws.reserve(&ws.dW, oc * ckk)
                            // dyc [OC, cnt·L]
                            let dyc: UnsafePointer<Float>
                            if cnt == 1 {
                                dyc = dyp + start * oc * l
                            } else {
                                ws.reserve(&ws.gathered, oc * cols)
                                ws.gathered.withUnsafeMutableBufferPointer { gb in
                                    let g = gb.baseAddress!
                                    for i in 0..<cnt {
                                        for o in 0..<oc {
                                            (g + o * cols + i * l).update(from: dyp + ((start + i) * oc + o) * l, count: l)
                                        }
                                    }
                                }
                                dyc = ws.gathered.withUnsafeBufferPointer { $0.baseAddress! }
                            }
                            // col [CKK, cnt·L]
                            let colp: UnsafePointer<Float>
                            if pointwise {
                                colp = xp + start * imageSize
                            } else {
                                ws.reserve(&ws.col, ckk * cols)
                                ws.col.withUnsafeMutableBufferPointer { im2col(xp + start * imageSize, images: cnt, h: h, w: w, oh: oh, ow: ow, into: $0.baseAddress!) }
                                colp = ws.col.withUnsafeBufferPointer { $0.baseAddress! }
                            }
                            // dW_worker [OC, CKK] += dyc · colᵀ (the first chunk of a worker overwrites)
                            let first = start < nb * max(1, min(Compute.threads, (n + nb - 1) / nb))
                            ws.dW.withUnsafeMutableBufferPointer { dw in
                                BLAS.gemm(transB: true, m: oc, n: ckk, k: cols, a: dyc, lda: cols, b: colp, ldb: cols,
                                          beta: first ? 0 : 1, c: dw.baseAddress!, ldc: ckk, threads: 1)
                            }
                            guard inputGradient else { return }
                            if pointwise {
                                // dx_n [C, L] = Wᵀ [C, OC] · dy_n [OC, L]
                                BLAS.gemm(transA: true, m: ckk, n: cols, k: oc, a: wp, lda: ckk, b: dyc, ldb: cols,
                                          c: dxp + start * imageSize, ldc: cols, threads: 1)
                            } else {
                                // dcol [CKK, cnt·L] = Wᵀ · dyc, folded back into dx
                                ws.reserve(&ws.dcol, ckk * cols)
                                ws.dcol.withUnsafeMutableBufferPointer { dc in
                                    BLAS.gemm(transA: true, m: ckk, n: cols, k: oc, a: wp, lda: ckk, b: dyc, ldb: cols,
                                              c: dc.baseAddress!, ldc: cols, threads: 1)
                                    col2im(dc.baseAddress!, images: cnt, h: h, w: w, oh: oh, ow: ow, into: dxp + start * imageSize)
                                }
                            }
                        }
                    }
                }
            }
        }
        // dW += Σ over workers; db [OC] += Σ_{N, OH, OW} dy
        weight.grad.withMutablePointer { g in
            for ws in workspaces.prefix(workers) {
                ws.dW.withUnsafeBufferPointer { d in for i in 0..<(oc * ckk) { g[i] += d[i] } }
            }
        }
        dy.withPointer { dyp in
            bias?.grad.withMutablePointer { gb in
                for i in 0..<n {
                    for o in 0..<oc { gb[o] += Float(vectorSum(dyp + (i * oc + o) * l, l)) }
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
        do {
            for r in 0..<(c * kh * kw) {
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
        do {
            for ch in 0..<c {
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
                                if s == 1 {
                                    let dst = dstRow + (owLo - p + kj)
                                    for q in 0..<(owHi - owLo) { dst[q] += src[owLo + q] }
                                } else {
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
}
