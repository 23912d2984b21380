import Foundation

/// 2-D convolution (`torch.nn.Conv2d`, dilation 1, groups 1) as im2col + GEMM.
///
/// Shapes: x [N, C, H, W] → y [N, OC, OH, OW] with OH = (H + 2P − KH) / S + 1 (likewise OW);
/// weight [OC, C, KH, KW]; bias [OC]. Images are processed in chunks of `nb`: the chunk's patches
/// are unfolded into col [C·KH·KW, nb·OH·OW] and one GEMM computes out [OC, nb·OH·OW] = W · col,
/// so small feature maps still make GEMMs large enough to run near BLAS peak. Backward recomputes
/// col instead of keeping it (it is KH·KW times the input). For stride-1 "same" convolutions,
/// d(input) is itself a convolution — of dy with the kernels flipped and in/out swapped, padding K − 1 − P — which turns
/// a memory-bound GEMM with K = OC plus a col2im fold into one GEMM with K = OC·KH·KW; strided
/// convolutions use the GEMM + col2im form.
public final class Conv2d: Layer {
    public var path = ""
    public let inChannels: Int, outChannels: Int
    public let kernel: (h: Int, w: Int), stride: Int, padding: Int
    public let weight: Parameter
    public let bias: Parameter?
    /// When false, `backward` skips d(input) (first layer of a model) and returns an empty tensor.
    public var computesInputGradient = true
    /// How the convolution is computed; every choice gives the same result up to rounding.
    public var algorithm: Algorithm = .automatic
    private var input: Tensor?
    /// The smaller convolution the last training forward ran instead (see `reduction`), for backward.
    private var reducedRun: (conv: Conv2d, first: Int)?
    private var reducedConvs: [Int: Conv2d] = [:]
    /// The kernels in the Winograd domain as the last training forward used them, for backward.
    private var winogradFilters: [Float]?

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

    /// Scratch memory of one worker thread: unfolded patches, gathered outputs, weight gradient,
    /// a padded plane (Winograd).
    final class Workspace {
        var col: [Float] = [], gathered: [Float] = [], dcol: [Float] = [], dW: [Float] = [], plane: [Float] = []
        func reserve(_ buffer: inout [Float], _ count: Int) {
            if buffer.count < count { buffer = [Float](repeating: 0, count: count) }
        }
    }
    var workspaces: [Workspace] = []

    /// Runs `body(chunkStart, chunkCount, workspace, first)` over the batch's chunks of `nb` images,
    /// spreading chunks over `Compute.threads` workers (each with its own workspace; `first` is true
    /// for the first chunk a workspace sees in this call, so accumulators can start fresh); GEMMs
    /// inside run single-threaded.
    func forEachChunk(_ n: Int, _ nb: Int, _ body: (Int, Int, Workspace, Bool) -> Void) -> Int {
        var nb = max(1, nb)
        // With several threads: at least a chunk per thread, and as many chunks for each. The
        // size that suits one GEMM left a core idle on small maps (ResNet-18 on 32×32 inputs:
        // chunks of 113 and 15 images at 4×4, one chunk of 128 at 2×2).
        let threads = Compute.threads
        if threads > 1 && n > 1 {
            let wanted = (max((n + nb - 1) / nb, threads) + threads - 1) / threads * threads
            nb = (n + min(n, wanted) - 1) / min(n, wanted)
        }
        let chunks = (n + nb - 1) / nb
        let workers = max(1, min(Compute.threads, chunks))
        while workspaces.count < workers { workspaces.append(Workspace()) }
        if workers == 1 {
            for c in 0..<chunks { body(c * nb, min(nb, n - c * nb), workspaces[0], c == 0) }
        } else {
            let spaces = workspaces
            Compute.parallel(workers) { w in
                var c = w
                while c < chunks {
                    body(c * nb, min(nb, n - c * nb), spaces[w], c == w)
                    c += workers
                }
            }
        }
        return workers
    }

    /// The shape of one convolution: input channels and size, output channels, kernel, stride, padding.
    struct Geometry {
        var c, h, w, oc, k, s, p: Int
        var oh: Int { (h + 2 * p - k) / s + 1 }
        var ow: Int { (w + 2 * p - k) / s + 1 }
        var l: Int { oh * ow }
        var ckk: Int { c * k * k }
        var pointwise: Bool { k == 1 && s == 1 && p == 0 }
        /// Stride-1 convolutions with kernels larger than 1×1 run forward in the row form, unless
        /// the map is so small that half its GEMM would compute the junk rows (K − 1 per image of
        /// H + 2P rows): a 3×3 "same" convolution on 2×2 maps (ResNet-18's third stage on 32×32
        /// inputs) ran at half speed there.
        var rowsApply: Bool { s == 1 && k > 1 && 2 * (k - 1) < h + 2 * p }
        /// "Same" convolutions (3×3 padding 1, 5×5 padding 2, …): their gradients use the row form too.
        var same: Bool { rowsApply && 2 * p == k - 1 }
        /// Row form: each image is a block of (H + 2P) rows of OW columns.
        var block: Int { (h + 2 * p) * ow }
        var rowK: Int { c * k }
        /// Images per row-form chunk: about 4,096 columns, the unfolded chunk bounded to 4 MB; one
        /// when an image alone has 512 columns or more, because a chunk of one image reads dy and
        /// writes y in place, with no gather or scatter copies (first layers on 28×28 inputs, one
        /// thread: vgg-small ≈ 3 % faster, LeNet-5 ≈ 14 %).
        func rowChunk(_ n: Int) -> Int {
            if block >= 512 { return 1 }
            return max(1, min(n, (4096 + block - 1) / block, (1 << 20) / max(1, rowK * block)))
        }
        /// Images per GEMM: enough columns (≈4,096) for an efficient GEMM, col bounded to 4 MB so
        /// a chunk stays in cache (measured: 16 MB chunks were 5 % slower on vgg-small). A
        /// pointwise convolution reads an image in place when it has 512 columns or more; on
        /// smaller maps its images are gathered too, since a GEMM per image of 1–64 columns ran
        /// near matrix-vector speed (ResNet-18's last stage, reduced to 1×1 kernels on 1×1 maps).
        func chunk(_ n: Int) -> Int {
            if pointwise && l >= 512 { return 1 }
            return max(1, min(n, (4096 + l - 1) / l, (1 << 20) / max(1, ckk * l)))
        }
    }

    private func geometry(_ x: [Int]) -> Geometry {
        Geometry(c: inChannels, h: x[2], w: x[3], oc: outChannels, k: kernel.h, s: stride, p: padding)
    }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        // x [N, C, H, W] → y [N, OC, OH, OW]
        try expect(x.shape, "[N, \(inChannels), H, W] with H, W ≥ \(kernel.h - 2 * padding)",
                   x.rank == 4 && x.shape[1] == inChannels
                       && x.shape[2] + 2 * padding >= kernel.h && x.shape[3] + 2 * padding >= kernel.w)
        let g = geometry(x.shape), n = x.shape[0]
        reducedRun = nil
        if algorithm == .automatic, let r = reduction(g) { return try forwardReduced(x, mode: mode, r) }
        var y = Tensor(shape: [n, g.oc, g.oh, g.ow], unsafeUninitialized: { _ in })   // every element is written below
        let filters = x.withPointer { xp in
            weight.value.withPointer { wp in
                y.withMutablePointer { yp in convolve(g, n: n, x: xp, weight: wp, y: yp) }
            }
        }
        winogradFilters = mode == .train ? filters : nil
        if let bias {
            let yp = y.withMutablePointer { $0 }, bp = bias.value.withPointer { $0 }, l = g.l, oc = g.oc
            withExtendedLifetime((y, bias)) {
                parallelChunks(n * oc, threads: Compute.threads, minimumChunk: max(1, 8192 / l)) { planes in
                    for i in planes {
                        let row = yp + i * l, b = bp[i % oc]
                        for j in 0..<l { row[j] += b }
                    }
                }
            }
        }
        input = mode == .train ? x : nil
        return y
    }

    /// y [N, OC, OH, OW] = x [N, C, H, W] ⋆ weight [OC, C, K, K], chunk by chunk over the workers.
    /// Returns the kernels in the Winograd domain when it took that path (backward reuses them).
    @discardableResult
    private func convolve(_ g: Geometry, n: Int, x: UnsafePointer<Float>, weight wp: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) -> [Float]? {
        if winogradApplies(g) {
            let filters = Conv2d.winogradFilters(g, wp)
            convolveWinograd(g, n: n, x: x, filters: filters, y: y)
            return filters
        }
        if g.rowsApply {
            convolveByRows(g, n: n, x: x, weight: wp, y: y)
            return nil
        }
        _ = forEachChunk(n, g.chunk(n)) { start, cnt, ws, _ in
            let cols = cnt * g.l
            let src = Conv2d.columns(g, x, start: start, count: cnt, ws: ws)
            if cnt == 1 {
                BLAS.gemm(m: g.oc, n: cols, k: g.ckk, a: wp, lda: g.ckk, b: src, ldb: cols, c: y + start * g.oc * g.l, ldc: g.l, threads: 1)
                return
            }
            ws.reserve(&ws.gathered, g.oc * cols)
            ws.gathered.withUnsafeMutableBufferPointer { gb in
                let out = gb.baseAddress!
                BLAS.gemm(m: g.oc, n: cols, k: g.ckk, a: wp, lda: g.ckk, b: src, ldb: cols, c: out, ldc: cols, threads: 1)
                // out [OC, cnt·L] → y[start + i, OC, L]
                for i in 0..<cnt {
                    for o in 0..<g.oc {
                        (y + ((start + i) * g.oc + o) * g.l).update(from: out + o * cols + i * g.l, count: g.l)
                    }
                }
            }
        }
        return nil
    }

    /// The GEMM operand of images start ..< start + count: the image itself for one image of a
    /// pointwise convolution, otherwise their im2col unfolding [C·K·K, count·OH·OW] in the
    /// workspace (for pointwise convolutions, a gather).
    private static func columns(_ g: Geometry, _ x: UnsafePointer<Float>, start: Int, count: Int, ws: Workspace) -> UnsafePointer<Float> {
        let images = x + start * g.c * g.h * g.w
        if g.pointwise && count == 1 { return images }
        ws.reserve(&ws.col, g.ckk * count * g.l)
        ws.col.withUnsafeMutableBufferPointer { Conv2d.im2col(g, images, images: count, into: $0.baseAddress!) }
        return ws.col.withUnsafeBufferPointer { $0.baseAddress! }
    }

    /// The row form of a stride-1 convolution. Each image is unfolded only along x:
    /// rows[(c, j), (image, r, x)] = x[c, r − p, x + j − p] over the vertically padded rows r and the
    /// OW output columns, 1/K of im2col's volume. The kernel's row i then reads the same matrix
    /// shifted by i rows, so y = Σᵢ Wᵢ · rows[:, i·OW …] with Wᵢ[o, (c, j)] = W[o, c, i, j]: K GEMMs
    /// that accumulate, writing H + 2P − OH junk rows per image that are skipped when copying out.
    private func convolveByRows(_ g: Geometry, n: Int, x: UnsafePointer<Float>, weight wp: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        let nb = g.rowChunk(n), imageSize = g.c * g.h * g.w
        let slices = Conv2d.kernelRows(g, wp)
        _ = forEachChunk(n, nb) { start, cnt, ws, _ in
            let cols = cnt * g.block, useful = cols - (g.k - 1) * g.ow
            ws.reserve(&ws.col, g.rowK * cols)
            if cnt > 1 { ws.reserve(&ws.gathered, g.oc * cols) }
            ws.col.withUnsafeMutableBufferPointer { colBuf in
                let rows = colBuf.baseAddress!
                Conv2d.unfoldRows(g, x + start * imageSize, images: cnt, into: rows)
                if cnt == 1 {
                    // One image: the useful columns are exactly OH·OW, written straight into y.
                    slices.withUnsafeBufferPointer { wk in
                        for i in 0..<g.k {
                            BLAS.gemm(m: g.oc, n: useful, k: g.rowK, a: wk.baseAddress! + i * g.oc * g.rowK, lda: g.rowK,
                                      b: rows + i * g.ow, ldb: cols, beta: i == 0 ? 0 : 1, c: y + start * g.oc * g.l, ldc: g.l, threads: 1)
                        }
                    }
                    return
                }
                ws.gathered.withUnsafeMutableBufferPointer { outBuf in
                    let out = outBuf.baseAddress!
                    slices.withUnsafeBufferPointer { wk in
                        for i in 0..<g.k {
                            BLAS.gemm(m: g.oc, n: useful, k: g.rowK, a: wk.baseAddress! + i * g.oc * g.rowK, lda: g.rowK,
                                      b: rows + i * g.ow, ldb: cols, beta: i == 0 ? 0 : 1, c: out, ldc: cols, threads: 1)
                        }
                    }
                    // out [OC, image blocks] → y: the first OH·OW columns of each block are the image.
                    for img in 0..<cnt {
                        for o in 0..<g.oc {
                            (y + ((start + img) * g.oc + o) * g.l).update(from: out + o * cols + img * g.block, count: g.l)
                        }
                    }
                }
            }
        }
    }

    /// W split by kernel row: [K][OC][C·K], Wᵢ[o, c·K + j] = W[o, c, i, j].
    static func kernelRows(_ g: Geometry, _ wp: UnsafePointer<Float>) -> [Float] {
        var out = [Float](repeating: 0, count: g.k * g.oc * g.rowK)
        for i in 0..<g.k {
            for o in 0..<g.oc {
                for c in 0..<g.c {
                    for j in 0..<g.k { out[(i * g.oc + o) * g.rowK + c * g.k + j] = wp[((o * g.c + c) * g.k + i) * g.k + j] }
                }
            }
        }
        return out
    }

    /// rows[(c, j), (image, r, x)] = x[image, c, r − p, x + j − p] for x < OW, zero outside the image.
    static func unfoldRows(_ g: Geometry, _ x: UnsafePointer<Float>, images: Int, into rows: UnsafeMutablePointer<Float>) {
        let (k, p, c, h, w, ow) = (g.k, g.p, g.c, g.h, g.w, g.ow)
        let cols = images * g.block
        for ch in 0..<c {
            for j in 0..<k {
                let lo = max(0, p - j), hi = min(ow, w + p - j)   // x with x + j − p inside [0, w)
                let row0 = rows + (ch * k + j) * cols
                for img in 0..<images {
                    let plane = x + (img * c + ch) * h * w
                    let dst0 = row0 + img * g.block
                    for r in 0..<(h + 2 * p) {
                        let dst = dst0 + r * ow
                        let ih = r - p
                        if ih < 0 || ih >= h {
                            for q in 0..<ow { dst[q] = 0 }
                            continue
                        }
                        let src = plane + ih * w + (j - p)
                        for q in 0..<lo { dst[q] = 0 }
                        for q in lo..<hi { dst[q] = src[q] }
                        for q in hi..<ow { dst[q] = 0 }
                    }
                }
            }
        }
    }

    /// dW for the row form: dWᵢ = dY · rows[:, i·W …]ᵀ, dY laid out like the forward's output
    /// (junk rows zero), accumulated into the worker's dW in [OC, C, K, K] order.
    ///
    /// With `kernels` (the row-split weight, `kernelRows`) and `dx`, also the input gradient: the
    /// adjoint of the forward, drows[:, i·OW …] += Wᵢᵀ · dY, folded back into dx by `foldRows`
    /// (stride-1 convolutions that are not "same"; those use the transposed convolution).
    private func backwardByRows(_ g: Geometry, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, start: Int, cnt: Int, ws: Workspace, first: Bool,
                                kernels: UnsafePointer<Float>? = nil, dx: UnsafeMutablePointer<Float>? = nil) {
        let cols = cnt * g.block, useful = cols - (g.k - 1) * g.ow
        ws.reserve(&ws.col, g.rowK * cols)
        if cnt > 1 { ws.reserve(&ws.gathered, g.oc * cols) }
        ws.reserve(&ws.dcol, g.k * g.oc * g.rowK)
        ws.reserve(&ws.dW, g.oc * g.ckk)
        ws.col.withUnsafeMutableBufferPointer { colBuf in
            Conv2d.unfoldRows(g, x + start * g.c * g.h * g.w, images: cnt, into: colBuf.baseAddress!)
            ws.gathered.withUnsafeMutableBufferPointer { gb in
                // dY [OC, cols]: one image's dy is read in place (its OH·OW columns are the useful
                // ones); several are laid out in blocks with their junk rows zero.
                let dY: UnsafePointer<Float>, ldY: Int
                if cnt == 1 {
                    (dY, ldY) = (dy + start * g.oc * g.l, g.l)
                } else {
                    for o in 0..<g.oc {
                        for img in 0..<cnt {
                            let dst = gb.baseAddress! + o * cols + img * g.block
                            dst.update(from: dy + ((start + img) * g.oc + o) * g.l, count: g.l)
                            (dst + g.l).update(repeating: 0, count: g.block - g.l)
                        }
                    }
                    (dY, ldY) = (UnsafePointer(gb.baseAddress!), cols)
                }
                ws.dcol.withUnsafeMutableBufferPointer { dk in
                    for i in 0..<g.k {
                        BLAS.gemm(transB: true, m: g.oc, n: g.rowK, k: useful, a: dY, lda: ldY, b: colBuf.baseAddress! + i * g.ow, ldb: cols,
                                  c: dk.baseAddress! + i * g.oc * g.rowK, ldc: g.rowK, threads: 1)
                    }
                    ws.dW.withUnsafeMutableBufferPointer { dw in
                        for i in 0..<g.k {
                            for o in 0..<g.oc {
                                for c in 0..<g.c {
                                    for j in 0..<g.k {
                                        let v = dk[(i * g.oc + o) * g.rowK + c * g.k + j]
                                        let at = ((o * g.c + c) * g.k + i) * g.k + j
                                        dw[at] = first ? v : dw[at] + v
                                    }
                                }
                            }
                        }
                    }
                }
                guard let kernels, let dx else { return }
                // The unfolded rows are not needed any more: they become d(rows).
                let drows = colBuf.baseAddress!
                drows.update(repeating: 0, count: g.rowK * cols)
                for i in 0..<g.k {
                    BLAS.gemm(transA: true, m: g.rowK, n: useful, k: g.oc, a: kernels + i * g.oc * g.rowK, lda: g.rowK,
                              b: dY, ldb: ldY, beta: 1, c: drows + i * g.ow, ldc: cols, threads: 1)
                }
                Conv2d.foldRows(g, drows, images: cnt, into: dx + start * g.c * g.h * g.w)
            }
        }
    }

    /// dx[image, c, r − p, x + j − p] += rows[(c, j), (image, r, x)]: the adjoint of `unfoldRows`
    /// (positions outside the image are dropped).
    static func foldRows(_ g: Geometry, _ rows: UnsafePointer<Float>, images: Int, into dx: UnsafeMutablePointer<Float>) {
        let (k, p, c, h, w, ow) = (g.k, g.p, g.c, g.h, g.w, g.ow)
        let cols = images * g.block
        for ch in 0..<c {
            for j in 0..<k {
                let lo = max(0, p - j), hi = min(ow, w + p - j)
                guard lo < hi else { continue }
                let row0 = rows + (ch * k + j) * cols
                for img in 0..<images {
                    let plane = dx + (img * c + ch) * h * w
                    let src0 = row0 + img * g.block
                    for ih in 0..<h {
                        let src = src0 + (ih + p) * ow, dst = plane + ih * w + (j - p)
                        for q in lo..<hi { dst[q] += src[q] }
                    }
                }
            }
        }
    }

    // MARK: kernels larger than the map

    /// The taps of one kernel dimension that ever touch the input (the others only ever multiply
    /// padding), as the first one and their count.
    static func usedTaps(size: Int, k: Int, s: Int, p: Int) -> (first: Int, count: Int) {
        let out = (size + 2 * p - k) / s + 1
        var lo = k, hi = -1
        for r in 0..<k where (0..<out).contains(where: { (0..<size).contains($0 * s - p + r) }) {
            lo = min(lo, r)
            hi = max(hi, r)
        }
        return (lo, hi - lo + 1)
    }

    /// On maps no larger than the kernel's reach — a padded 3×3 convolution on a 1×1 map (ResNet's
    /// last stage on 32×32 inputs) sees only its centre tap, a strided one on 2×2 only a 2×2
    /// corner — the convolution equals a smaller one with the used taps and less padding, which
    /// does a ninth (or four ninths) of the work. Returns its first tap, kernel and padding.
    func reduction(_ g: Geometry) -> (first: Int, k: Int, p: Int)? {
        let rows = Self.usedTaps(size: g.h, k: g.k, s: g.s, p: g.p), cols = Self.usedTaps(size: g.w, k: g.k, s: g.s, p: g.p)
        guard rows == cols, rows.count >= 1, rows.count < g.k else { return nil }
        let p = g.p - rows.first
        guard p >= 0, (g.h + 2 * p - rows.count) / g.s + 1 == g.oh, (g.w + 2 * p - rows.count) / g.s + 1 == g.ow else { return nil }
        return (rows.first, rows.count, p)
    }

    private func forwardReduced(_ x: Tensor, mode: Mode, _ r: (first: Int, k: Int, p: Int)) throws -> Tensor {
        let key = r.k * 1000 + r.p
        let inner: Conv2d
        if let c = reducedConvs[key] { inner = c } else {
            var rng = SeededGenerator(seed: 0)
            inner = Conv2d(inChannels, outChannels, kernel: r.k, stride: stride, padding: r.p, bias: bias != nil, rng: &rng)
            reducedConvs[key] = inner
        }
        let k = kernel.h, pairs = outChannels * inChannels
        inner.weight.value = Tensor(shape: [outChannels, inChannels, r.k, r.k]) { dst in
            weight.value.withPointer { src in
                for q in 0..<pairs {
                    for i in 0..<r.k { for j in 0..<r.k { dst[(q * r.k + i) * r.k + j] = src[(q * k + r.first + i) * k + r.first + j] } }
                }
            }
        }
        if let bias { inner.bias!.value = bias.value }
        inner.computesInputGradient = computesInputGradient
        inner.path = path
        let y = try inner.forward(x, mode: mode)
        input = nil
        winogradFilters = nil
        if mode == .train { reducedRun = (inner, r.first) }
        return y
    }

    /// Backward through the smaller convolution; its weight gradient goes to the used taps (the
    /// others' gradient is exactly zero).
    private func backwardReduced(_ dy: Tensor, _ run: (conv: Conv2d, first: Int)) throws -> Tensor {
        let inner = run.conv
        inner.weight.zeroGrad()
        inner.bias?.zeroGrad()
        let dx = try inner.backward(dy)
        let k = kernel.h, rk = inner.kernel.h, pairs = outChannels * inChannels
        let src = inner.weight.grad.withPointer { $0 }, dst = weight.grad.withMutablePointer { $0 }
        withExtendedLifetime((inner.weight.grad, weight.grad)) {
            for q in 0..<pairs {
                for i in 0..<rk { for j in 0..<rk { dst[(q * k + run.first + i) * k + run.first + j] += src[(q * rk + i) * rk + j] } }
            }
        }
        if let bias, let b = inner.bias {
            let g = b.grad.scalars
            bias.grad.withMutablePointer { p in for o in 0..<outChannels { p[o] += g[o] } }
        }
        return dx
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        if let run = reducedRun { return try backwardReduced(dy, run) }
        guard let x = input else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
        let g = geometry(x.shape), n = x.shape[0]
        try expect(dy.shape, describeShape([n, g.oc, g.oh, g.ow]), dy.shape == [n, g.oc, g.oh, g.ow])
        if winogradApplies(g) { return backwardWinograd(g, x: x, dy: dy) }
        let nb = g.chunk(n), imageSize = g.c * g.h * g.w
        // The transposed form pays off for "same" convolutions; with little padding it would
        // convolve a (K − 1 − P)-padded dy, mostly zeros (LeNet's 5×5 valid convolution: 2× slower).
        let transposed = computesInputGradient && g.same
        let folded = computesInputGradient && !transposed
        // The transposed path writes every element of dx; col2im adds into it and needs zeros.
        var dx = !computesInputGradient ? Tensor(shape: [0])
            : (transposed ? Tensor(shape: x.shape, unsafeUninitialized: { _ in }) : Tensor(shape: x.shape, repeating: 0))
        var workers = 0
        x.withPointer { xp in
            dy.withPointer { dyp in
                weight.value.withPointer { wp in
                    dx.withMutablePointer { dxp in
                        if g.rowsApply {
                            // Stride 1: the weight gradient in the row form; the input gradient of a
                            // "same" convolution below (transposed), of any other folded by rows.
                            let kernels = folded ? Conv2d.kernelRows(g, wp) : []
                            kernels.withUnsafeBufferPointer { kb in
                                workers = forEachChunk(n, g.rowChunk(n)) { start, cnt, ws, first in
                                    self.backwardByRows(g, x: xp, dy: dyp, start: start, cnt: cnt, ws: ws, first: first,
                                                        kernels: folded ? kb.baseAddress! : nil, dx: folded ? dxp : nil)
                                }
                            }
                        } else {
                            workers = forEachChunk(n, nb) { start, cnt, ws, first in
                                let cols = cnt * g.l
                                ws.reserve(&ws.dW, g.oc * g.ckk)
                                // dyc [OC, cnt·L]
                                let dyc: UnsafePointer<Float>
                                if cnt == 1 {
                                    dyc = dyp + start * g.oc * g.l
                                } else {
                                    ws.reserve(&ws.gathered, g.oc * cols)
                                    ws.gathered.withUnsafeMutableBufferPointer { gb in
                                        for i in 0..<cnt {
                                            for o in 0..<g.oc {
                                                (gb.baseAddress! + o * cols + i * g.l).update(from: dyp + ((start + i) * g.oc + o) * g.l, count: g.l)
                                            }
                                        }
                                    }
                                    dyc = ws.gathered.withUnsafeBufferPointer { $0.baseAddress! }
                                }
                                // col [CKK, cnt·L]
                                let colp = Conv2d.columns(g, xp, start: start, count: cnt, ws: ws)
                                // dW_worker [OC, CKK] (+)= dyc · colᵀ: a worker's first chunk overwrites
                                ws.dW.withUnsafeMutableBufferPointer { dw in
                                    BLAS.gemm(transB: true, m: g.oc, n: g.ckk, k: cols, a: dyc, lda: cols, b: colp, ldb: cols,
                                              beta: first ? 0 : 1, c: dw.baseAddress!, ldc: g.ckk, threads: 1)
                                }
                                guard folded else { return }
                                if g.pointwise && cnt == 1 {
                                    // dx_n [C, L] = Wᵀ [C, OC] · dy_n [OC, L]
                                    BLAS.gemm(transA: true, m: g.ckk, n: cols, k: g.oc, a: wp, lda: g.ckk, b: dyc, ldb: cols,
                                              c: dxp + start * imageSize, ldc: cols, threads: 1)
                                } else {
                                    // dcol [CKK, cnt·L] = Wᵀ · dyc, folded back into dx
                                    ws.reserve(&ws.dcol, g.ckk * cols)
                                    ws.dcol.withUnsafeMutableBufferPointer { dc in
                                        BLAS.gemm(transA: true, m: g.ckk, n: cols, k: g.oc, a: wp, lda: g.ckk, b: dyc, ldb: cols,
                                                  c: dc.baseAddress!, ldc: cols, threads: 1)
                                        Conv2d.col2im(g, dc.baseAddress!, images: cnt, into: dxp + start * imageSize)
                                    }
                                }
                            }
                        }
                        if transposed {
                            // dx = dy ⋆ W', W'[c, o, i, j] = W[o, c, K−1−i, K−1−j], padding K − 1 − P.
                            let k = g.k, kk = k * k
                            var flipped = [Float](repeating: 0, count: g.oc * g.ckk)
                            for o in 0..<g.oc {
                                for c in 0..<g.c {
                                    for t in 0..<kk { flipped[(c * g.oc + o) * kk + (kk - 1 - t)] = wp[(o * g.c + c) * kk + t] }
                                }
                            }
                            let back = Geometry(c: g.oc, h: g.oh, w: g.ow, oc: g.c, k: k, s: 1, p: k - 1 - g.p)
                            flipped.withUnsafeBufferPointer { convolve(back, n: n, x: dyp, weight: $0.baseAddress!, y: dxp) }
                        }
                    }
                }
            }
        }
        // dW += Σ over workers
        weight.grad.withMutablePointer { gw in
            for ws in workspaces.prefix(workers) {
                ws.dW.withUnsafeBufferPointer { d in for i in 0..<(g.oc * g.ckk) { gw[i] += d[i] } }
            }
        }
        addBiasGradient(g, dy)
        return dx
    }

    /// db [OC] += Σ_{N, OH, OW} dy
    private func addBiasGradient(_ g: Geometry, _ dy: Tensor) {
        guard let bias else { return }
        let n = dy.shape[0], l = g.l, oc = g.oc
        let dyp = dy.withPointer { $0 }, gb = bias.grad.withMutablePointer { $0 }
        withExtendedLifetime((dy, bias)) {
            // Channels are independent: split them over the threads.
            parallelChunks(oc, threads: Compute.threads, minimumChunk: max(1, 8192 / max(1, n * l))) { channels in
                for o in channels {
                    var sum = 0.0
                    for i in 0..<n { sum += vectorSum(dyp + (i * oc + o) * l, l) }
                    gb[o] += Float(sum)
                }
            }
        }
    }

    /// Backward in the Winograd domain (Conv2dWinograd.swift): the workers' dU are summed, then
    /// transformed back into the weight gradient.
    private func backwardWinograd(_ g: Geometry, x: Tensor, dy: Tensor) -> Tensor {
        let n = x.shape[0]
        var dx = computesInputGradient ? Tensor(shape: x.shape, unsafeUninitialized: { _ in }) : Tensor(shape: [0])
        let u = winogradFilters ?? weight.value.withPointer { Conv2d.winogradFilters(g, $0) }
        var workers = 0
        let wantsDx = computesInputGradient
        x.withPointer { xp in
            dy.withPointer { dyp in
                dx.withMutablePointer { dxp in
                    u.withUnsafeBufferPointer { ub in
                        workers = forEachChunk(n, WinogradChunk.images(g, n)) { start, cnt, ws, first in
                            self.winogradBackwardChunk(g, x: xp, dy: dyp, u: ub.baseAddress!, dx: wantsDx ? dxp : nil,
                                                       start: start, count: cnt, ws: ws, first: first)
                        }
                    }
                }
            }
        }
        var du = [Float](repeating: 0, count: Conv2d.winogradPositions * g.oc * g.c)
        for ws in workspaces.prefix(workers) {
            ws.dW.withUnsafeBufferPointer { d in for i in 0..<du.count { du[i] += d[i] } }
        }
        weight.grad.withMutablePointer { gw in
            du.withUnsafeBufferPointer { Conv2d.addWinogradFilterGradient(g, $0.baseAddress!, into: gw) }
        }
        addBiasGradient(g, dy)
        return dx
    }

    /// Unfolds `images` consecutive images at `x` into col [C·K·K, images·OH·OW]; padding reads 0.
    static func im2col(_ g: Geometry, _ x: UnsafePointer<Float>, images: Int, into col: UnsafeMutablePointer<Float>) {
        let (k, s, p, c, h, w, oh, ow) = (g.k, g.s, g.p, g.c, g.h, g.w, g.oh, g.ow)
        let l = oh * ow, cols = images * l
        for r in 0..<(c * k * k) {
            let ch = r / (k * k), ki = (r / k) % k, kj = r % k
            // For output column q, the input column is q·s − p + kj; valid for owLo..<owHi.
            let owLo = max(0, (p - kj + s - 1) / s)
            let owHi = min(ow, (w - 1 + p - kj) / s + 1)
            for img in 0..<images {
                let plane = x + (img * c + ch) * h * w
                let dst0 = col + r * cols + img * l
                for o in 0..<oh {
                    let ih = o * s - p + ki
                    let dst = dst0 + o * ow
                    if ih < 0 || ih >= h || owLo >= owHi {
                        for q in 0..<ow { dst[q] = 0 }
                        continue
                    }
                    let srcRow = plane + ih * w
                    // Plain loops: rows are 7–32 floats, too short for memcpy/memset calls to pay.
                    for q in 0..<owLo { dst[q] = 0 }
                    if s == 1 {
                        let src = srcRow + (kj - p)
                        for q in owLo..<owHi { dst[q] = src[q] }
                    } else {
                        var iw = owLo * s - p + kj
                        for q in owLo..<owHi { dst[q] = srcRow[iw]; iw += s }
                    }
                    for q in owHi..<ow { dst[q] = 0 }
                }
            }
        }
    }

    /// Adds col [C·K·K, images·OH·OW] back into the images at `dx` (the adjoint of `im2col`).
    static func col2im(_ g: Geometry, _ col: UnsafePointer<Float>, images: Int, into dx: UnsafeMutablePointer<Float>) {
        let (k, s, p, c, h, w, oh, ow) = (g.k, g.s, g.p, g.c, g.h, g.w, g.oh, g.ow)
        let l = oh * ow, cols = images * l
        for r in 0..<(c * k * k) {
            let ch = r / (k * k), ki = (r / k) % k, kj = r % k
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
