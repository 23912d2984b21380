/// Winograd's minimal filtering F(2×2, 3×3) for stride-1 3×3 convolutions: forward and backward.
///
/// Each 2×2 block of outputs ("tile") is computed from the 4×4 input patch d above it as
///     Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A,
/// 16 multiplications per input/output channel pair instead of 36. Summed over input channels, the
/// 16 positions ξ of the 4×4 "Winograd domain" become 16 independent GEMMs
///     M[ξ] (OC × tiles) = U[ξ] (OC × C) · V[ξ] (C × tiles),   U = G g Gᵀ, V = Bᵀ d B,
/// 2.25× fewer flops than the convolution as one GEMM, for transforms that are additions only.
/// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016.)
///
/// The backward pass is the exact adjoint of that forward, so it is the gradient of what the
/// forward computed, not of an approximation to it:
///     dM = A dY Aᵀ,  dU[ξ] = Σ_tiles dM[ξ] · V[ξ]ᵀ,  dg = Gᵀ dU G,
///     dV[ξ] = U[ξ]ᵀ · dM[ξ],  dd = B dV Bᵀ (added into the overlapping 4×4 patches).
///
/// Matrices:  Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
///            Aᵀ = [1 1 1 0; 0 1 −1 −1].
///
/// Layout: the images of a chunk are laid side by side in one zero-padded plane, P = W + p columns
/// apart, so that neighbours share their padding (p ≤ 2) and one row of tiles runs across every
/// image of the chunk. Output x of image i sits at column i·P + x of that long row; the 2 − p
/// columns between two images' outputs are computed but never used (their gradient is zero).
/// A row has J tiles (⌈images·P / 2⌉ rounded up to a multiple of 8, zero beyond): rows are long
/// and contiguous whatever the image size, and every transform runs 8 tiles per SIMD step.
/// A chunk has N = TH · J columns, tile (ty, t) in column ty·J + t; V is [16][C][N], M and dM are
/// [16][OC][N], U is [16][OC][C].
extension Conv2d {
    /// How a convolution is computed.
    public enum Algorithm: Sendable {
        /// Winograd F(2×2, 3×3) where it applies and pays (3×3, stride 1, at least 8 input
        /// channels), the row/im2col GEMM forms otherwise.
        case automatic
        /// The GEMM forms only (im2col, or the row form for stride 1).
        case gemm
        /// Winograd wherever the geometry allows it (3×3, stride 1), whatever the channel count.
        case winograd
    }

    /// The tile layout of one chunk of images (see the type's comment).
    struct WinogradChunk {
        let th: Int, pitch: Int, images: Int
        /// Tiles per row of tiles, a multiple of 8.
        let j: Int
        /// Columns of the Winograd-domain matrices.
        var n: Int { th * j }
        /// Floats per padded row: 2·J + 2 needed, rounded to whole SIMD16 steps.
        var rowWidth: Int { 2 * j + 16 }
        /// Rows of the padded input plane.
        var hp: Int { 2 * th + 2 }

        init(_ g: Geometry, images: Int) {
            th = (g.oh + 1) / 2
            pitch = g.w + g.p
            self.images = images
            j = ((images * pitch + 1) / 2 + 7) / 8 * 8
        }

        /// Images per chunk: about 1,024 columns, V and M at most 1 M floats (4 MB) each.
        static func images(_ g: Geometry, _ n: Int) -> Int {
            let perImage = max(1, (g.oh + 1) / 2 * (g.w + g.p) / 2)
            let byColumns = (1024 + perImage - 1) / perImage
            let byMemory = (1 << 20) / (16 * max(g.c, g.oc) * perImage)
            return max(1, min(n, byColumns, byMemory))
        }
    }

    func winogradApplies(_ g: Geometry) -> Bool {
        guard g.k == 3 && g.s == 1 && g.p <= 2 else { return false }
        switch algorithm {
        case .gemm: return false
        case .winograd: return true
        case .automatic: return g.c >= 8
        }
    }

    // MARK: Filter transforms

    /// U[ξ][o][c] = (G g[o, c] Gᵀ)[ξ] for every kernel of `weight` [OC, C, 3, 3].
    static func winogradFilters(_ g: Geometry, _ w: UnsafePointer<Float>) -> [Float] {
        let pairs = g.oc * g.c
        var u = [Float](repeating: 0, count: 16 * pairs)
        u.withUnsafeMutableBufferPointer { ub in
            let u = ub.baseAddress!
            for pair in 0..<pairs {
                let k = w + pair * 9
                // q = G g (4×3), row by row, then q Gᵀ (4×4)
                @inline(__always) func store(_ i: Int, _ q0: Float, _ q1: Float, _ q2: Float) {
                    u[(4 * i + 0) * pairs + pair] = q0
                    u[(4 * i + 1) * pairs + pair] = 0.5 * (q0 + q1 + q2)
                    u[(4 * i + 2) * pairs + pair] = 0.5 * (q0 - q1 + q2)
                    u[(4 * i + 3) * pairs + pair] = q2
                }
                store(0, k[0], k[1], k[2])
                store(1, 0.5 * (k[0] + k[3] + k[6]), 0.5 * (k[1] + k[4] + k[7]), 0.5 * (k[2] + k[5] + k[8]))
                store(2, 0.5 * (k[0] - k[3] + k[6]), 0.5 * (k[1] - k[4] + k[7]), 0.5 * (k[2] - k[5] + k[8]))
                store(3, k[6], k[7], k[8])
            }
        }
        return u
    }

    /// dg[o, c] += Gᵀ dU[o, c] G for every kernel: the adjoint of `winogradFilters`.
    static func addWinogradFilterGradient(_ g: Geometry, _ du: UnsafePointer<Float>, into dw: UnsafeMutablePointer<Float>) {
        let pairs = g.oc * g.c
        for pair in 0..<pairs {
            // r = Gᵀ dU (3×4) column by column, then r G (3×3)
            let k = dw + pair * 9
            @inline(__always) func d(_ xi: Int) -> Float { du[xi * pairs + pair] }
            @inline(__always) func add(_ a: Int, _ r0: Float, _ r1: Float, _ r2: Float, _ r3: Float) {
                k[3 * a] += r0 + 0.5 * (r1 + r2)
                k[3 * a + 1] += 0.5 * (r1 - r2)
                k[3 * a + 2] += 0.5 * (r1 + r2) + r3
            }
            add(0, d(0) + 0.5 * (d(4) + d(8)), d(1) + 0.5 * (d(5) + d(9)), d(2) + 0.5 * (d(6) + d(10)), d(3) + 0.5 * (d(7) + d(11)))
            add(1, 0.5 * (d(4) - d(8)), 0.5 * (d(5) - d(9)), 0.5 * (d(6) - d(10)), 0.5 * (d(7) - d(11)))
            add(2, 0.5 * (d(4) + d(8)) + d(12), 0.5 * (d(5) + d(9)) + d(13), 0.5 * (d(6) + d(10)) + d(14), 0.5 * (d(7) + d(11)) + d(15))
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
    /// column of ξ = 0, `stride` = C·N the distance between two ξ.
    static func winogradInputTiles(_ k: WinogradChunk, plane: UnsafePointer<Float>, into v: UnsafeMutablePointer<Float>, stride: Int) {
        let width = k.rowWidth
        for ty in 0..<k.th {
            let p0 = plane + 2 * ty * width, p1 = p0 + width, p2 = p1 + width, p3 = p2 + width
            let out = v + ty * k.j
            var j = 0
            while j < k.j {
                // 8 tiles: columns 2j … 2j + 17 of the four rows, Bᵀ along y on whole vectors,
                // then B along x on the even/odd columns (d0 = even, d1 = odd, d2/d3 one tile on).
                let q = 2 * j
                let a0 = load16(p0 + q), a1 = load16(p1 + q), a2 = load16(p2 + q), a3 = load16(p3 + q)
                let b0 = load16(p0 + q + 2), b1 = load16(p1 + q + 2), b2 = load16(p2 + q + 2), b3 = load16(p3 + q + 2)
                let o = out + j
                inputRow(a0 - a2, b0 - b2, o, stride)
                inputRow(a1 + a2, b1 + b2, o + 4 * stride, stride)
                inputRow(a2 - a1, b2 - b1, o + 8 * stride, stride)
                inputRow(a1 - a3, b1 - b3, o + 12 * stride, stride)
                j += 8
            }
        }
    }

    /// B along x for one row i of 8 tiles: ξ = 4i + (0…3) from d0…d3 = even(a), odd(a), even(b), odd(b).
    @inline(__always)
    private static func inputRow(_ a: SIMD16<Float>, _ b: SIMD16<Float>, _ out: UnsafeMutablePointer<Float>, _ stride: Int) {
        let d0 = a.evenHalf, d1 = a.oddHalf, d2 = b.evenHalf, d3 = b.oddHalf
        store8(d0 - d2, out)
        store8(d1 + d2, out + stride)
        store8(d2 - d1, out + 2 * stride)
        store8(d1 - d3, out + 3 * stride)
    }

    /// y[image, o, 2·ty + a, 2·tx + b] = (Aᵀ M A)[a, b] for output channel o of every image of the
    /// chunk; `m` is o's first column of ξ = 0, `stride` = OC·N. `rows` is scratch of 2·rowWidth.
    static func winogradOutputTiles(_ g: Geometry, _ k: WinogradChunk, _ m: UnsafePointer<Float>, stride: Int,
                                    rows: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>, channel o: Int) {
        let width = k.rowWidth
        let out0 = rows, out1 = rows + width
        for ty in 0..<k.th {
            var j = 0
            while j < k.j {
                let c = m + ty * k.j + j
                @inline(__always) func at(_ xi: Int) -> SIMD8<Float> { load8(c + xi * stride) }
                // Aᵀ along y per column, then A along x; two rows of interleaved outputs.
                let s00 = at(0) + at(4) + at(8), s01 = at(1) + at(5) + at(9)
                let s02 = at(2) + at(6) + at(10), s03 = at(3) + at(7) + at(11)
                let s10 = at(4) - at(8) - at(12), s11 = at(5) - at(9) - at(13)
                let s12 = at(6) - at(10) - at(14), s13 = at(7) - at(11) - at(15)
                store16(interleave(s00 + s01 + s02, s01 - s02 - s03), out0 + 2 * j)
                store16(interleave(s10 + s11 + s12, s11 - s12 - s13), out1 + 2 * j)
                j += 8
            }
            let second = 2 * ty + 1 < g.oh
            for img in 0..<k.images {
                let plane = y + (img * g.oc + o) * g.l + 2 * ty * g.ow
                plane.update(from: out0 + img * k.pitch, count: g.ow)
                if second { (plane + g.ow).update(from: out1 + img * k.pitch, count: g.ow) }
            }
        }
    }

    /// dM[ξ][column] = (A dY Aᵀ)[ξ] for output channel o of every image of the chunk (the unused
    /// columns between and after the images get zero): the adjoint of `winogradOutputTiles`.
    /// `plane` is scratch of 2·TH·rowWidth.
    static func winogradOutputGradientTiles(_ g: Geometry, _ k: WinogradChunk, _ dy: UnsafePointer<Float>, channel o: Int,
                                            plane: UnsafeMutablePointer<Float>, into dm: UnsafeMutablePointer<Float>, stride: Int) {
        let width = k.rowWidth
        plane.update(repeating: 0, count: 2 * k.th * width)
        for img in 0..<k.images {
            let src = dy + (img * g.oc + o) * g.l
            for r in 0..<g.oh { (plane + r * width + img * k.pitch).update(from: src + r * g.ow, count: g.ow) }
        }
        for ty in 0..<k.th {
            let r0 = plane + 2 * ty * width, r1 = r0 + width
            var j = 0
            while j < k.j {
                let top = load16(r0 + 2 * j), bottom = load16(r1 + 2 * j)
                let e00 = top.evenHalf, e01 = top.oddHalf, e10 = bottom.evenHalf, e11 = bottom.oddHalf
                // A along y: rows (e0, e0 + e1, e0 − e1, −e1); Aᵀ along x: (a, a + b, a − b, −b).
                let c = dm + ty * k.j + j
                outputGradientRow(e00, e01, c, stride)
                outputGradientRow(e00 + e10, e01 + e11, c + 4 * stride, stride)
                outputGradientRow(e00 - e10, e01 - e11, c + 8 * stride, stride)
                outputGradientRow(-e10, -e11, c + 12 * stride, stride)
                j += 8
            }
        }
    }

    @inline(__always)
    private static func outputGradientRow(_ a: SIMD8<Float>, _ b: SIMD8<Float>, _ out: UnsafeMutablePointer<Float>, _ stride: Int) {
        store8(a, out)
        store8(a + b, out + stride)
        store8(a - b, out + 2 * stride)
        store8(-b, out + 3 * stride)
    }

    /// dx for channel c of every image of the chunk from dV (`dv` is c's first column of ξ = 0):
    /// (B dV Bᵀ) of each tile added into a padded plane, then cropped: the adjoint of
    /// `padInputs` + `winogradInputTiles`. `plane` is scratch of HP·rowWidth.
    static func winogradInputGradientTiles(_ g: Geometry, _ k: WinogradChunk, _ dv: UnsafePointer<Float>, stride: Int,
                                           plane: UnsafeMutablePointer<Float>, into dx: UnsafeMutablePointer<Float>, channel c: Int) {
        let width = k.rowWidth
        plane.update(repeating: 0, count: k.hp * width)
        for ty in 0..<k.th {
            let v = dv + ty * k.j
            let p0 = plane + 2 * ty * width
            var j = 0
            while j < k.j {
                @inline(__always) func at(_ xi: Int) -> SIMD8<Float> { load8(v + xi * stride + j) }
                // B along y, column by column (ξ = 4i + col): rows r = (v0, v1 − v2 + v3, v1 + v2 − v0, −v3)
                // over i; then each row r goes along x into plane row 2ty + r.
                let w00 = at(0), w01 = at(1), w02 = at(2), w03 = at(3)
                let w30 = -at(12), w31 = -at(13), w32 = -at(14), w33 = -at(15)
                let w10 = at(4) - at(8) + at(12), w11 = at(5) - at(9) + at(13)
                let w12 = at(6) - at(10) + at(14), w13 = at(7) - at(11) + at(15)
                let w20 = at(4) + at(8) - at(0), w21 = at(5) + at(9) - at(1)
                let w22 = at(6) + at(10) - at(2), w23 = at(7) + at(11) - at(3)
                let q = 2 * j
                inputGradientRow(w00, w01, w02, w03, p0 + q)
                inputGradientRow(w10, w11, w12, w13, p0 + width + q)
                inputGradientRow(w20, w21, w22, w23, p0 + 2 * width + q)
                inputGradientRow(w30, w31, w32, w33, p0 + 3 * width + q)
                j += 8
            }
        }
        for img in 0..<k.images {
            let out = dx + (img * g.c + c) * g.h * g.w
            let src = plane + g.p * width + img * k.pitch + g.p
            for r in 0..<g.h { (out + r * g.w).update(from: src + r * width, count: g.w) }
        }
    }

    /// Bᵀ's adjoint along x for 8 tiles of one row: tile m adds (s0, s1) at columns 2m, 2m + 1 and
    /// (s2, s3) at 2m + 2, 2m + 3, with s0 = v0, s1 = v1 − v2 + v3, s2 = v1 + v2 − v0, s3 = −v3.
    @inline(__always)
    private static func inputGradientRow(_ v0: SIMD8<Float>, _ v1: SIMD8<Float>, _ v2: SIMD8<Float>, _ v3: SIMD8<Float>,
                                         _ row: UnsafeMutablePointer<Float>) {
        store16(load16(row) + interleave(v0, v1 - v2 + v3), row)
        store16(load16(row + 2) + interleave(v1 + v2 - v0, -v3), row + 2)
    }

    // MARK: Forward and backward

    /// y = x ⋆ weight over the whole batch, chunk by chunk on the workers (bias added by the caller).
    func convolveWinograd(_ g: Geometry, n: Int, x: UnsafePointer<Float>, weight wp: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        let u = Conv2d.winogradFilters(g, wp)
        _ = forEachChunk(n, WinogradChunk.images(g, n)) { start, cnt, ws, _ in
            let k = WinogradChunk(g, images: cnt), cols = k.n
            ws.reserve(&ws.col, 16 * g.c * cols)
            ws.reserve(&ws.gathered, 16 * g.oc * cols)
            ws.reserve(&ws.plane, k.hp * k.rowWidth)
            ws.col.withUnsafeMutableBufferPointer { vb in
                ws.gathered.withUnsafeMutableBufferPointer { mb in
                    ws.plane.withUnsafeMutableBufferPointer { pb in
                        let v = vb.baseAddress!, m = mb.baseAddress!, plane = pb.baseAddress!
                        Conv2d.transformInputs(g, k, x + start * g.c * g.h * g.w, plane: plane, into: v)
                        u.withUnsafeBufferPointer { ub in
                            for xi in 0..<16 {
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

    /// V for the chunk's images (x points at the first), one channel's padded plane at a time.
    static func transformInputs(_ g: Geometry, _ k: WinogradChunk, _ x: UnsafePointer<Float>,
                                plane: UnsafeMutablePointer<Float>, into v: UnsafeMutablePointer<Float>) {
        for c in 0..<g.c {
            padInputs(g, k, x, channel: c, into: plane)
            winogradInputTiles(k, plane: plane, into: v + c * k.n, stride: g.c * k.n)
        }
    }

    /// The weight gradient (into the worker's `dW`, in the Winograd domain [16][OC][C]) and, when
    /// `dx` is given, the input gradient of the images of one chunk.
    func winogradBackwardChunk(_ g: Geometry, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, u: UnsafePointer<Float>,
                               dx: UnsafeMutablePointer<Float>?, start: Int, count cnt: Int, ws: Workspace, first: Bool) {
        let k = WinogradChunk(g, images: cnt), cols = k.n
        let xs = x + start * g.c * g.h * g.w, dys = dy + start * g.oc * g.l
        ws.reserve(&ws.col, 16 * g.c * cols)
        ws.reserve(&ws.gathered, 16 * g.oc * cols)
        ws.reserve(&ws.plane, k.hp * k.rowWidth)
        ws.reserve(&ws.dW, 16 * g.oc * g.c)
        if dx != nil { ws.reserve(&ws.dcol, 16 * g.c * cols) }
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
                        for xi in 0..<16 {
                            BLAS.gemm(transB: true, m: g.oc, n: g.c, k: cols, a: dm + xi * g.oc * cols, lda: cols,
                                      b: v + xi * g.c * cols, ldb: cols, beta: first ? 0 : 1,
                                      c: du + xi * g.oc * g.c, ldc: g.c, threads: 1)
                        }
                        guard let dx else { return }
                        ws.dcol.withUnsafeMutableBufferPointer { dvb in
                            let dv = dvb.baseAddress!
                            // dV[ξ] (C × N) = U[ξ]ᵀ · dM[ξ]
                            for xi in 0..<16 {
                                BLAS.gemm(transA: true, m: g.c, n: cols, k: g.oc, a: u + xi * g.oc * g.c, lda: g.c,
                                          b: dm + xi * g.oc * cols, ldb: cols, c: dv + xi * g.c * cols, ldc: cols, threads: 1)
                            }
                            for c in 0..<g.c {
                                Conv2d.winogradInputGradientTiles(g, k, dv + c * cols, stride: g.c * cols, plane: plane,
                                                                  into: dx + start * g.c * g.h * g.w, channel: c)
                            }
                        }
                    }
                }
            }
        }
    }
}

@inline(__always) private func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}
@inline(__always) private func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> { load8(UnsafePointer(p)) }
@inline(__always) private func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}
@inline(__always) private func load16(_ p: UnsafeMutablePointer<Float>) -> SIMD16<Float> { load16(UnsafePointer(p)) }
@inline(__always) private func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
@inline(__always) private func store16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}
/// (a0, b0, a1, b1, …): two rows of results back into adjacent columns.
@inline(__always) private func interleave(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD16<Float> {
    var r = SIMD16<Float>()
    for i in 0..<8 {
        r[2 * i] = a[i]
        r[2 * i + 1] = b[i]
    }
    return r
}
