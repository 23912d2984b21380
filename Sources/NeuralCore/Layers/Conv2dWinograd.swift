/// Winograd's minimal filtering F(4×4, 3×3) for stride-1 3×3 convolutions: forward and backward.
///
/// Each 4×4 block of outputs ("tile") is computed from the 6×6 input patch d above it as
///     Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A,
/// 36 multiplications per input/output channel pair instead of 144. Summed over input channels,
/// the 36 positions ξ of the 6×6 "Winograd domain" become 36 independent GEMMs
///     M[ξ] (OC × tiles) = U[ξ] (OC × C) · V[ξ] (C × tiles),   U = G g Gᵀ, V = Bᵀ d B,
/// 4× fewer flops than the convolution as one GEMM, for transforms that are a few additions and
/// scalings per value. (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
/// CVPR 2016; interpolation points 0, ±1, ±2, ∞. In Float32 the result differs from direct
/// convolution by about 1e-6 relative to the output's scale.)
///
/// The backward pass is the exact adjoint of that forward, so it is the gradient of what the
/// forward computed, not of an approximation to it:
///     dM = A dY Aᵀ,  dU[ξ] = Σ_tiles dM[ξ] · V[ξ]ᵀ,  dg = Gᵀ dU G,
///     dV[ξ] = U[ξ]ᵀ · dM[ξ],  dd = B dV Bᵀ (added into the overlapping 6×6 patches).
///
/// Matrices (one axis; the 2-D transforms apply them along y, then along x):
///     Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
///     G  = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1/24 1/12 ⅙; 1/24 −1/12 ⅙; 0 0 1]
///     Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
/// Position ξ = 6·i + j, i along y and j along x.
///
/// Layout: the images of a chunk are laid side by side in one zero-padded plane, P = W + p columns
/// apart, so that neighbours share their padding (p ≤ 2) and one row of tiles runs across every
/// image of the chunk. Output x of image i sits at column i·P + x of that long row; the 2 − p
/// columns between two images' outputs are computed but never used (their gradient is zero).
/// A row has J tiles (⌈images·P / 4⌉ rounded up to a multiple of 8, zero beyond): rows are long
/// and contiguous whatever the image size, and every transform runs 8 tiles per SIMD step.
/// A chunk has N = TH · J columns, tile (ty, t) in column ty·J + t; V is [36][C][N], M and dM are
/// [36][OC][N], U is [36][OC][C].
extension Conv2d {
    /// How a convolution is computed.
    public enum Algorithm: Sendable {
        /// Winograd F(4×4, 3×3) where it applies and pays (3×3, stride 1, padding ≤ 2, at least
        /// 8 input channels), the row/im2col GEMM forms otherwise.
        case automatic
        /// The GEMM forms only (im2col, or the row form for stride 1).
        case gemm
        /// Winograd wherever the geometry allows it (3×3, stride 1, padding ≤ 2), whatever the
        /// channel count.
        case winograd
    }

    /// Positions of the Winograd domain.
    static let winogradPositions = 36

    /// The tile layout of one chunk of images (see the type's comment).
    struct WinogradChunk {
        let th: Int, pitch: Int, images: Int
        /// Tiles per row of tiles, a multiple of 8.
        let j: Int
        /// Columns of the Winograd-domain matrices.
        var n: Int { th * j }
        /// Floats per padded row: 4·J + 4 needed, rounded to whole SIMD steps.
        var rowWidth: Int { 4 * j + 32 }
        /// Rows of the padded input plane.
        var hp: Int { 4 * th + 2 }

        init(_ g: Geometry, images: Int) {
            th = (g.oh + 3) / 4
            pitch = g.w + g.p
            self.images = images
            j = ((images * pitch + 3) / 4 + 7) / 8 * 8
        }

        /// Images per chunk: about 1,024 columns, V and M at most 1 M floats (4 MB) each.
        static func images(_ g: Geometry, _ n: Int) -> Int {
            let one = WinogradChunk(g, images: 1)
            let perImage = max(1, one.th * one.pitch / 4)
            let byColumns = (1024 + perImage - 1) / perImage
            let byMemory = (1 << 20) / (winogradPositions * max(g.c, g.oc) * perImage)
            return max(1, min(n, byColumns, byMemory))
        }
    }

    func winogradApplies(_ g: Geometry) -> Bool {
        guard g.k == 3 && g.s == 1 && g.p <= 2 else { return false }
        switch algorithm {
        case .gemm: return false
        case .winograd: return true
        case .automatic:
            // F(4×4, 3×3) computes 4×4 outputs per tile: on small maps most of a tile is waste
            // (a 1×1 map uses 1 of 16, a 2×2 map 4), and the filter transforms, whose cost does
            // not shrink with the map, dominate — ResNet-18's last stages on 32×32 inputs ran
            // 2.5× slower than GEMM. Winograd only where at least half of every tile is used.
            let tiles = ((g.oh + 3) / 4) * ((g.ow + 3) / 4)
            return g.c >= 8 && 2 * g.oh * g.ow >= 16 * tiles
        }
    }

    // MARK: Filter transforms

    /// U[ξ][o·C + c] = (G g[o, c] Gᵀ)[ξ] for every kernel of `weight` [OC, C, 3, 3], 8 kernels
    /// per SIMD step.
    static func winogradFilters(_ g: Geometry, _ w: UnsafePointer<Float>) -> [Float] {
        let pairs = g.oc * g.c
        var u = [Float](repeating: 0, count: winogradPositions * pairs)
        u.withUnsafeMutableBufferPointer { ub in
            let u = ub.baseAddress!
            var p0 = 0
            while p0 < pairs {
                let lanes = min(8, pairs - p0)
                @inline(__always) func tap(_ t: Int) -> SIMD8<Float> {
                    var v = SIMD8<Float>()
                    for l in 0..<lanes { v[l] = w[(p0 + l) * 9 + t] }
                    return v
                }
                // G along y (over kernel rows a) for each column b, then along x for each row i.
                let c0 = filterRow(tap(0), tap(3), tap(6)), c1 = filterRow(tap(1), tap(4), tap(7)), c2 = filterRow(tap(2), tap(5), tap(8))
                @inline(__always) func emit(_ i: Int, _ row: Six) {
                    let out = u + 6 * i * pairs + p0
                    if lanes == 8 {
                        store8(row.0, out); store8(row.1, out + pairs); store8(row.2, out + 2 * pairs)
                        store8(row.3, out + 3 * pairs); store8(row.4, out + 4 * pairs); store8(row.5, out + 5 * pairs)
                    } else {
                        for l in 0..<lanes {
                            out[l] = row.0[l]; out[pairs + l] = row.1[l]; out[2 * pairs + l] = row.2[l]
                            out[3 * pairs + l] = row.3[l]; out[4 * pairs + l] = row.4[l]; out[5 * pairs + l] = row.5[l]
                        }
                    }
                }
                emit(0, filterRow(c0.0, c1.0, c2.0))
                emit(1, filterRow(c0.1, c1.1, c2.1))
                emit(2, filterRow(c0.2, c1.2, c2.2))
                emit(3, filterRow(c0.3, c1.3, c2.3))
                emit(4, filterRow(c0.4, c1.4, c2.4))
                emit(5, filterRow(c0.5, c1.5, c2.5))
                p0 += 8
            }
        }
        return u
    }

    /// dg[o, c] += Gᵀ dU[o, c] G for every kernel: the adjoint of `winogradFilters`.
    static func addWinogradFilterGradient(_ g: Geometry, _ du: UnsafePointer<Float>, into dw: UnsafeMutablePointer<Float>) {
        let pairs = g.oc * g.c
        var p0 = 0
        while p0 < pairs {
            let lanes = min(8, pairs - p0)
            @inline(__always) func at(_ xi: Int) -> SIMD8<Float> {
                let src = du + xi * pairs + p0
                if lanes == 8 { return load8(src) }
                var v = SIMD8<Float>()
                for l in 0..<lanes { v[l] = src[l] }
                return v
            }
            // Gᵀ along y for each column j, then along x for each kernel row a.
            let j0 = filterGradientRow(at(0), at(6), at(12), at(18), at(24), at(30))
            let j1 = filterGradientRow(at(1), at(7), at(13), at(19), at(25), at(31))
            let j2 = filterGradientRow(at(2), at(8), at(14), at(20), at(26), at(32))
            let j3 = filterGradientRow(at(3), at(9), at(15), at(21), at(27), at(33))
            let j4 = filterGradientRow(at(4), at(10), at(16), at(22), at(28), at(34))
            let j5 = filterGradientRow(at(5), at(11), at(17), at(23), at(29), at(35))
            @inline(__always) func add(_ a: Int, _ k: (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)) {
                for l in 0..<lanes {
                    let kernel = dw + (p0 + l) * 9 + 3 * a
                    kernel[0] += k.0[l]
                    kernel[1] += k.1[l]
                    kernel[2] += k.2[l]
                }
            }
            add(0, filterGradientRow(j0.0, j1.0, j2.0, j3.0, j4.0, j5.0))
            add(1, filterGradientRow(j0.1, j1.1, j2.1, j3.1, j4.1, j5.1))
            add(2, filterGradientRow(j0.2, j1.2, j2.2, j3.2, j4.2, j5.2))
            p0 += 8
        }
    }

    // MARK: Data transforms

    /// Copies channel `c` of the chunk's images into the padded plane [HP, rowWidth]: image i's
    /// plane at rows p…, columns i·P + p…; zeros elsewhere.
    static func padInputs(_ g: Geometry, _ k: WinogradChunk, _ x: UnsafePointer<Float>, channel c: Int,
                          into plane: UnsafeMutablePointer<Float>) {
        let width = k.rowWidth
        plane.update(repeating: 0, count: k.hp * width)
        for img in 0..<k.images {
            let src = x + (img * g.c + c) * g.h * g.w
            let dst = plane + g.p * width + img * k.pitch + g.p
            for r in 0..<g.h { (dst + r * width).update(from: src + r * g.w, count: g.w) }
        }
    }

    /// V[ξ][column] = (Bᵀ d B)[ξ] for every tile of a padded plane; `v` is channel c's first
    /// column of ξ = 0, `stride` = C·N the distance between two ξ. `rows` is scratch of 6·rowWidth.
    static func winogradInputTiles(_ k: WinogradChunk, plane: UnsafePointer<Float>, rows: UnsafeMutablePointer<Float>,
                                   into v: UnsafeMutablePointer<Float>, stride: Int) {
        let width = k.rowWidth
        for ty in 0..<k.th {
            // Bᵀ along y on whole rows: the six plane rows of this row of tiles → six rows i.
            let p = plane + 4 * ty * width
            var q = 0
            while q < width {
                let d = inputRow(load16(p + q), load16(p + width + q), load16(p + 2 * width + q),
                                 load16(p + 3 * width + q), load16(p + 4 * width + q), load16(p + 5 * width + q))
                store16(d.0, rows + q); store16(d.1, rows + width + q); store16(d.2, rows + 2 * width + q)
                store16(d.3, rows + 3 * width + q); store16(d.4, rows + 4 * width + q); store16(d.5, rows + 5 * width + q)
                q += 16
            }
            // Bᵀ along x, 8 tiles at a time: tile t reads columns 4t … 4t + 5 of each row.
            for i in 0..<6 {
                let r = rows + i * width
                let out = v + ty * k.j + 6 * i * stride
                var t = 0
                while t < k.j {
                    let (d0, d1, d2, d3) = deinterleave4(load32(r + 4 * t))
                    let (d4, d5, _, _) = deinterleave4(load32(r + 4 * t + 4))
                    let e = inputRow(d0, d1, d2, d3, d4, d5)
                    store8(e.0, out + t); store8(e.1, out + stride + t); store8(e.2, out + 2 * stride + t)
                    store8(e.3, out + 3 * stride + t); store8(e.4, out + 4 * stride + t); store8(e.5, out + 5 * stride + t)
                    t += 8
                }
            }
        }
    }

    /// y[image, o, 4·ty + a, 4·tx + b] = (Aᵀ M A)[a, b] for output channel o of every image of the
    /// chunk; `m` is o's first column of ξ = 0, `stride` = OC·N. `rows` is scratch of 4·rowWidth.
    static func winogradOutputTiles(_ g: Geometry, _ k: WinogradChunk, _ m: UnsafePointer<Float>, stride: Int,
                                    rows: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>, channel o: Int) {
        let width = k.rowWidth
        for ty in 0..<k.th {
            var t = 0
            while t < k.j {
                let c = m + ty * k.j + t
                @inline(__always) func at(_ xi: Int) -> SIMD8<Float> { load8(c + xi * stride) }
                // Aᵀ along y for each column j, then along x for each output row a.
                let s0 = outputRow(at(0), at(6), at(12), at(18), at(24), at(30))
                let s1 = outputRow(at(1), at(7), at(13), at(19), at(25), at(31))
                let s2 = outputRow(at(2), at(8), at(14), at(20), at(26), at(32))
                let s3 = outputRow(at(3), at(9), at(15), at(21), at(27), at(33))
                let s4 = outputRow(at(4), at(10), at(16), at(22), at(28), at(34))
                let s5 = outputRow(at(5), at(11), at(17), at(23), at(29), at(35))
                let y0 = outputRow(s0.0, s1.0, s2.0, s3.0, s4.0, s5.0)
                let y1 = outputRow(s0.1, s1.1, s2.1, s3.1, s4.1, s5.1)
                let y2 = outputRow(s0.2, s1.2, s2.2, s3.2, s4.2, s5.2)
                let y3 = outputRow(s0.3, s1.3, s2.3, s3.3, s4.3, s5.3)
                store32(interleave4(y0.0, y0.1, y0.2, y0.3), rows + 4 * t)
                store32(interleave4(y1.0, y1.1, y1.2, y1.3), rows + width + 4 * t)
                store32(interleave4(y2.0, y2.1, y2.2, y2.3), rows + 2 * width + 4 * t)
                store32(interleave4(y3.0, y3.1, y3.2, y3.3), rows + 3 * width + 4 * t)
                t += 8
            }
            for a in 0..<min(4, g.oh - 4 * ty) {
                for img in 0..<k.images {
                    (y + ((img * g.oc + o) * g.oh + 4 * ty + a) * g.ow).update(from: rows + a * width + img * k.pitch, count: g.ow)
                }
            }
        }
    }

    /// dM[ξ][column] = (A dY Aᵀ)[ξ] for output channel o of every image of the chunk (the unused
    /// columns between and after the images get zero): the adjoint of `winogradOutputTiles`.
    /// `plane` is scratch of 4·TH·rowWidth.
    static func winogradOutputGradientTiles(_ g: Geometry, _ k: WinogradChunk, _ dy: UnsafePointer<Float>, channel o: Int,
                                            plane: UnsafeMutablePointer<Float>, into dm: UnsafeMutablePointer<Float>, stride: Int) {
        let width = k.rowWidth
        plane.update(repeating: 0, count: 4 * k.th * width)
        for img in 0..<k.images {
            let src = dy + (img * g.oc + o) * g.l
            for r in 0..<g.oh { (plane + r * width + img * k.pitch).update(from: src + r * g.ow, count: g.ow) }
        }
        for ty in 0..<k.th {
            let r0 = plane + 4 * ty * width
            var t = 0
            while t < k.j {
                // e[a][b]: row a of the tiles' dY, column b (8 tiles per vector).
                let e0 = deinterleave4(load32(r0 + 4 * t)), e1 = deinterleave4(load32(r0 + width + 4 * t))
                let e2 = deinterleave4(load32(r0 + 2 * width + 4 * t)), e3 = deinterleave4(load32(r0 + 3 * width + 4 * t))
                // A along y for each column b, then along x for each row i.
                let p0 = outputGradientRow(e0.0, e1.0, e2.0, e3.0), p1 = outputGradientRow(e0.1, e1.1, e2.1, e3.1)
                let p2 = outputGradientRow(e0.2, e1.2, e2.2, e3.2), p3 = outputGradientRow(e0.3, e1.3, e2.3, e3.3)
                let c = dm + ty * k.j + t
                @inline(__always) func put(_ i: Int, _ r: Six) {
                    let base = c + 6 * i * stride
                    store8(r.0, base); store8(r.1, base + stride); store8(r.2, base + 2 * stride)
                    store8(r.3, base + 3 * stride); store8(r.4, base + 4 * stride); store8(r.5, base + 5 * stride)
                }
                put(0, outputGradientRow(p0.0, p1.0, p2.0, p3.0))
                put(1, outputGradientRow(p0.1, p1.1, p2.1, p3.1))
                put(2, outputGradientRow(p0.2, p1.2, p2.2, p3.2))
                put(3, outputGradientRow(p0.3, p1.3, p2.3, p3.3))
                put(4, outputGradientRow(p0.4, p1.4, p2.4, p3.4))
                put(5, outputGradientRow(p0.5, p1.5, p2.5, p3.5))
                t += 8
            }
        }
    }

    /// dx for channel c of every image of the chunk from dV (`dv` is c's first column of ξ = 0):
    /// (B dV Bᵀ) of each tile added into a padded plane, then cropped: the adjoint of
    /// `padInputs` + `winogradInputTiles`. `plane` is scratch of HP·rowWidth, `rows` of
    /// 36·rowWidth / 4 (one row of tiles after B along y).
    static func winogradInputGradientTiles(_ g: Geometry, _ k: WinogradChunk, _ dv: UnsafePointer<Float>, stride: Int,
                                           plane: UnsafeMutablePointer<Float>, rows: UnsafeMutablePointer<Float>,
                                           into dx: UnsafeMutablePointer<Float>, channel c: Int) {
        let width = k.rowWidth, j = k.j
        plane.update(repeating: 0, count: k.hp * width)
        for ty in 0..<k.th {
            // B along y for each column jx: rows[(6·r + jx)·J + t] for plane-row offsets r = 0…5.
            let v = dv + ty * j
            for jx in 0..<6 {
                var t = 0
                while t < j {
                    let w = inputGradientRow(load8(v + jx * stride + t), load8(v + (6 + jx) * stride + t), load8(v + (12 + jx) * stride + t),
                                             load8(v + (18 + jx) * stride + t), load8(v + (24 + jx) * stride + t), load8(v + (30 + jx) * stride + t))
                    let out = rows + jx * j + t
                    store8(w.0, out); store8(w.1, out + 6 * j); store8(w.2, out + 12 * j)
                    store8(w.3, out + 18 * j); store8(w.4, out + 24 * j); store8(w.5, out + 30 * j)
                    t += 8
                }
            }
            // then B along x for each plane row r, added into columns 4t … 4t + 5.
            for r in 0..<6 {
                let src = rows + 6 * r * j, row = plane + (4 * ty + r) * width
                var t = 0
                while t < j {
                    let d = inputGradientRow(load8(src + t), load8(src + j + t), load8(src + 2 * j + t),
                                             load8(src + 3 * j + t), load8(src + 4 * j + t), load8(src + 5 * j + t))
                    let at = row + 4 * t
                    add32(interleave4(d.0, d.1, d.2, d.3), at)
                    add32(interleave4(d.4, d.5, SIMD8(), SIMD8()), at + 4)
                    t += 8
                }
            }
        }
        for img in 0..<k.images {
            let out = dx + (img * g.c + c) * g.h * g.w
            let src = plane + g.p * width + img * k.pitch + g.p
            for r in 0..<g.h { (out + r * g.w).update(from: src + r * width, count: g.w) }
        }
    }

    // MARK: Forward and backward

    /// y = x ⋆ weight over the whole batch, chunk by chunk on the workers, from the kernels in the
    /// Winograd domain, `filters` = `winogradFilters(g, weight)` (bias added by the caller).
    func convolveWinograd(_ g: Geometry, n: Int, x: UnsafePointer<Float>, filters u: [Float], y: UnsafeMutablePointer<Float>) {
        let positions = Conv2d.winogradPositions
        _ = forEachChunk(n, WinogradChunk.images(g, n)) { start, cnt, ws, _ in
            let k = WinogradChunk(g, images: cnt), cols = k.n
            ws.reserve(&ws.col, positions * g.c * cols)
            ws.reserve(&ws.gathered, positions * g.oc * cols)
            ws.reserve(&ws.plane, (k.hp + 9) * k.rowWidth)
            ws.col.withUnsafeMutableBufferPointer { vb in
                ws.gathered.withUnsafeMutableBufferPointer { mb in
                    ws.plane.withUnsafeMutableBufferPointer { pb in
                        let v = vb.baseAddress!, m = mb.baseAddress!, plane = pb.baseAddress!
                        Conv2d.transformInputs(g, k, x + start * g.c * g.h * g.w, plane: plane, into: v)
                        u.withUnsafeBufferPointer { ub in
                            for xi in 0..<positions {
                                BLAS.gemm(m: g.oc, n: cols, k: g.c, a: ub.baseAddress! + xi * g.oc * g.c, lda: g.c,
                                          b: v + xi * g.c * cols, ldb: cols, c: m + xi * g.oc * cols, ldc: cols, threads: 1)
                            }
                        }
                        for o in 0..<g.oc {
                            Conv2d.winogradOutputTiles(g, k, m + o * cols, stride: g.oc * cols, rows: plane,
                                                       into: y + start * g.oc * g.l, channel: o)
                        }
                    }
                }
            }
        }
    }

    /// V for the chunk's images (x points at the first), one channel's padded plane at a time;
    /// `plane` is scratch of (HP + 6)·rowWidth.
    static func transformInputs(_ g: Geometry, _ k: WinogradChunk, _ x: UnsafePointer<Float>,
                                plane: UnsafeMutablePointer<Float>, into v: UnsafeMutablePointer<Float>) {
        for c in 0..<g.c {
            padInputs(g, k, x, channel: c, into: plane)
            winogradInputTiles(k, plane: plane, rows: plane + k.hp * k.rowWidth, into: v + c * k.n, stride: g.c * k.n)
        }
    }

    /// The weight gradient (into the worker's `dW`, in the Winograd domain [36][OC][C]) and, when
    /// `dx` is given, the input gradient of the images of one chunk.
    func winogradBackwardChunk(_ g: Geometry, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, u: UnsafePointer<Float>,
                               dx: UnsafeMutablePointer<Float>?, start: Int, count cnt: Int, ws: Workspace, first: Bool) {
        let k = WinogradChunk(g, images: cnt), cols = k.n, positions = Conv2d.winogradPositions
        let xs = x + start * g.c * g.h * g.w, dys = dy + start * g.oc * g.l
        ws.reserve(&ws.col, positions * g.c * cols)
        ws.reserve(&ws.gathered, positions * g.oc * cols)
        ws.reserve(&ws.plane, (k.hp + 9) * k.rowWidth)
        ws.reserve(&ws.dW, positions * g.oc * g.c)
        if dx != nil { ws.reserve(&ws.dcol, positions * g.c * cols) }
        ws.col.withUnsafeMutableBufferPointer { vb in
            ws.gathered.withUnsafeMutableBufferPointer { mb in
                ws.plane.withUnsafeMutableBufferPointer { pb in
                    ws.dW.withUnsafeMutableBufferPointer { db in
                        let v = vb.baseAddress!, dm = mb.baseAddress!, plane = pb.baseAddress!, du = db.baseAddress!
                        Conv2d.transformInputs(g, k, xs, plane: plane, into: v)
                        for o in 0..<g.oc {
                            Conv2d.winogradOutputGradientTiles(g, k, dys, channel: o, plane: plane, into: dm + o * cols, stride: g.oc * cols)
                        }
                        // dU[ξ] (OC × C) (+)= dM[ξ] · V[ξ]ᵀ
                        for xi in 0..<positions {
                            BLAS.gemm(transB: true, m: g.oc, n: g.c, k: cols, a: dm + xi * g.oc * cols, lda: cols,
                                      b: v + xi * g.c * cols, ldb: cols, beta: first ? 0 : 1,
                                      c: du + xi * g.oc * g.c, ldc: g.c, threads: 1)
                        }
                        guard let dx else { return }
                        ws.dcol.withUnsafeMutableBufferPointer { dvb in
                            let dv = dvb.baseAddress!
                            // dV[ξ] (C × N) = U[ξ]ᵀ · dM[ξ]
                            for xi in 0..<positions {
                                BLAS.gemm(transA: true, m: g.c, n: cols, k: g.oc, a: u + xi * g.oc * g.c, lda: g.c,
                                          b: dm + xi * g.oc * cols, ldb: cols, c: dv + xi * g.c * cols, ldc: cols, threads: 1)
                            }
                            for c in 0..<g.c {
                                Conv2d.winogradInputGradientTiles(g, k, dv + c * cols, stride: g.c * cols, plane: plane,
                                                                  rows: plane + k.hp * k.rowWidth, into: dx + start * g.c * g.h * g.w, channel: c)
                            }
                        }
                    }
                }
            }
        }
    }
}

// MARK: The one-axis transforms, on any SIMD width

/// Bᵀ applied to (d0 … d5).
@inline(__always) private func inputRow<V: SIMD>(_ d0: V, _ d1: V, _ d2: V, _ d3: V, _ d4: V, _ d5: V) -> (V, V, V, V, V, V)
    where V.Scalar == Float {
    (4 * d0 - 5 * d2 + d4,
     d3 + d4 - 4 * (d1 + d2),
     d4 - d3 + 4 * (d1 - d2),
     d4 - d2 + 2 * (d3 - d1),
     d4 - d2 + 2 * (d1 - d3),
     4 * d1 - 5 * d3 + d5)
}

/// (Bᵀ)ᵀ = B applied to (v0 … v5): the adjoint of `inputRow`.
@inline(__always) private func inputGradientRow<V: SIMD>(_ v0: V, _ v1: V, _ v2: V, _ v3: V, _ v4: V, _ v5: V) -> (V, V, V, V, V, V)
    where V.Scalar == Float {
    (4 * v0,
     4 * (v2 - v1 + v5) + 2 * (v4 - v3),
     -5 * v0 - 4 * (v1 + v2) - v3 - v4,
     v1 - v2 + 2 * (v3 - v4) - 5 * v5,
     v0 + v1 + v2 + v3 + v4,
     v5)
}

/// Aᵀ applied to (m0 … m5).
@inline(__always) private func outputRow<V: SIMD>(_ m0: V, _ m1: V, _ m2: V, _ m3: V, _ m4: V, _ m5: V) -> (V, V, V, V)
    where V.Scalar == Float {
    let a = m1 + m2, b = m1 - m2, c = m3 + m4, d = m3 - m4
    return (m0 + a + c, b + 2 * d, a + 4 * c, b + 8 * d + m5)
}

/// A applied to (e0 … e3): the adjoint of `outputRow`.
@inline(__always) private func outputGradientRow<V: SIMD>(_ e0: V, _ e1: V, _ e2: V, _ e3: V) -> (V, V, V, V, V, V)
    where V.Scalar == Float {
    let even = e0 + e2, odd = e1 + e3, even4 = e0 + 4 * e2, odd2 = 2 * e1 + 8 * e3
    return (e0, even + odd, even - odd, even4 + odd2, even4 - odd2, e3)
}

private typealias Six = (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)

/// G applied to (g0, g1, g2).
@inline(__always) private func filterRow(_ g0: SIMD8<Float>, _ g1: SIMD8<Float>, _ g2: SIMD8<Float>) -> Six {
    let even = g0 + g2
    return (g0 / 4, -(even + g1) / 6, (g1 - even) / 6, g0 / 24 + g1 / 12 + g2 / 6, g0 / 24 - g1 / 12 + g2 / 6, g2)
}

/// Gᵀ applied to (u0 … u5): the adjoint of `filterRow`.
@inline(__always) private func filterGradientRow(_ u0: SIMD8<Float>, _ u1: SIMD8<Float>, _ u2: SIMD8<Float>, _ u3: SIMD8<Float>,
                                                 _ u4: SIMD8<Float>, _ u5: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    (u0 / 4 - (u1 + u2) / 6 + (u3 + u4) / 24,
     (u2 - u1) / 6 + (u3 - u4) / 12,
     (u3 + u4 - u1 - u2) / 6 + u5)
}

// MARK: Loads, stores and lane shuffles

@inline(__always) private func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}
@inline(__always) private func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> { load8(UnsafePointer(p)) }
@inline(__always) private func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}
@inline(__always) private func load16(_ p: UnsafeMutablePointer<Float>) -> SIMD16<Float> { load16(UnsafePointer(p)) }
/// 32 floats as two 16-lane halves (arithmetic on SIMD32 is not vectorised by the compiler).
@inline(__always) private func load32(_ p: UnsafePointer<Float>) -> (SIMD16<Float>, SIMD16<Float>) { (load16(p), load16(p + 16)) }
@inline(__always) private func load32(_ p: UnsafeMutablePointer<Float>) -> (SIMD16<Float>, SIMD16<Float>) { load32(UnsafePointer(p)) }
@inline(__always) private func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
@inline(__always) private func store16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}
@inline(__always) private func store32(_ v: (SIMD16<Float>, SIMD16<Float>), _ p: UnsafeMutablePointer<Float>) {
    store16(v.0, p)
    store16(v.1, p + 16)
}
/// Adds 32 floats into memory at `p`.
@inline(__always) private func add32(_ v: (SIMD16<Float>, SIMD16<Float>), _ p: UnsafeMutablePointer<Float>) {
    store16(load16(p) + v.0, p)
    store16(load16(p + 16) + v.1, p + 16)
}

/// Lanes 4t + k of the 32 floats `v` for k = 0, 1, 2, 3: column k of 8 consecutive tiles.
@inline(__always) private func deinterleave4(_ v: (SIMD16<Float>, SIMD16<Float>)) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    let loEven = v.0.evenHalf, loOdd = v.0.oddHalf, hiEven = v.1.evenHalf, hiOdd = v.1.oddHalf
    return (SIMD8(lowHalf: loEven.evenHalf, highHalf: hiEven.evenHalf), SIMD8(lowHalf: loOdd.evenHalf, highHalf: hiOdd.evenHalf),
            SIMD8(lowHalf: loEven.oddHalf, highHalf: hiEven.oddHalf), SIMD8(lowHalf: loOdd.oddHalf, highHalf: hiOdd.oddHalf))
}

/// (a0, b0, c0, d0, a1, b1, …) as two 16-lane halves: the inverse of `deinterleave4`.
@inline(__always) private func interleave4(_ a: SIMD8<Float>, _ b: SIMD8<Float>, _ c: SIMD8<Float>, _ d: SIMD8<Float>) -> (SIMD16<Float>, SIMD16<Float>) {
    let ac = interleave(a, c), bd = interleave(b, d)
    return (interleave(ac.lowHalf, bd.lowHalf), interleave(ac.highHalf, bd.highHalf))
}

/// (a0, b0, a1, b1, …).
@inline(__always) private func interleave(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD16<Float> {
    var r = SIMD16<Float>()
    for i in 0..<8 {
        r[2 * i] = a[i]
        r[2 * i + 1] = b[i]
    }
    return r
}
