import Foundation

/// Multi-head self-attention (`torch.nn.MultiheadAttention(D, H, batch_first=True)` called as
/// `attn(x, x, x, need_weights=False)`, no mask, no attention dropout).
///
/// Shapes: x [N, T, D] → y [N, T, D]; in_proj_weight [3D, D], in_proj_bias [3D];
/// out_proj.weight [D, D], out_proj.bias [D]. With dh = D/H, per batch item n and head h:
/// S = Q Kᵀ/√dh [T, T], P = softmax(S) row-wise, O = P V [T, dh]; heads are concatenated into
/// [N, T, D] and projected by out_proj. Q, K and V are read in place from the packed projection
/// [N, T, 3D] with leading dimension 3D, so no head is ever copied.
public final class MultiheadSelfAttention: Layer {
    public var path = ""
    public let dim: Int, heads: Int
    public let inProj: Linear, outProj: Linear
    private var qkv: Tensor?
    private var probs: [Float] = []

    public init(dim: Int, heads: Int, rng: inout SeededGenerator) {
        precondition(heads > 0 && dim % heads == 0, "dim \(dim) must be a multiple of heads \(heads)")
        self.dim = dim
        self.heads = heads
        inProj = Linear(dim, 3 * dim, rng: &rng)
        outProj = Linear(dim, dim, rng: &rng)
    }

    public func namedParameters() -> [(String, Parameter)] {
        [("in_proj_weight", inProj.weight), ("in_proj_bias", inProj.bias!),
         ("out_proj.weight", outProj.weight), ("out_proj.bias", outProj.bias!)]
    }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try expect(x.shape, "[N, T, \(dim)]", x.rank == 3 && x.shape[2] == dim)
        let (n, t, d) = (x.shape[0], x.shape[1], dim)
        let dh = d / heads, scale = 1 / Float(dh).squareRoot()
        let packed = try inProj.forward(x, mode: mode)             // [N, T, 3D]
        var attn = Tensor(shape: [n, t, d])
        var p = [Float](repeating: 0, count: n * heads * t * t)
        packed.withPointer { qp in
            attn.withMutablePointer { ap in
                p.withUnsafeMutableBufferPointer { pb in
                    for b in 0..<n {
                        for h in 0..<heads {
                            let q = qp + b * t * 3 * d + h * dh, k = q + d, v = q + 2 * d
                            let s = pb.baseAddress! + (b * heads + h) * t * t
                            // S [T, T] = Q Kᵀ · scale
                            BLAS.gemm(transB: true, m: t, n: t, k: dh, alpha: scale, a: q, lda: 3 * d, b: k, ldb: 3 * d, c: s, ldc: t)
                            softmaxRows(s, rows: t, cols: t)
                            // O [T, dh] = P V, written into its head's columns of attn
                            BLAS.gemm(m: t, n: dh, k: t, a: s, lda: t, b: v, ldb: 3 * d, c: ap + b * t * d + h * dh, ldc: d)
                        }
                    }
                }
            }
        }
        if mode == .train { qkv = packed; probs = p } else { qkv = nil }
        return try outProj.forward(attn, mode: mode)
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let packed = qkv else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
        let (n, t, d) = (packed.shape[0], packed.shape[1], dim)
        try expect(dy.shape, describeShape([n, t, d]), dy.shape == [n, t, d])
        let dh = d / heads, scale = 1 / Float(dh).squareRoot()
        let dattn = try outProj.backward(dy)                      // [N, T, D]
        var dqkv = Tensor(shape: [n, t, 3 * d])
        var ds = [Float](repeating: 0, count: t * t)
        packed.withPointer { qp in
            dattn.withPointer { dop in
                dqkv.withMutablePointer { gp in
                    probs.withUnsafeBufferPointer { pb in
                        ds.withUnsafeMutableBufferPointer { dsb in
                            let dS = dsb.baseAddress!
                            for b in 0..<n {
                                for h in 0..<heads {
                                    let off = b * t * 3 * d + h * dh
                                    let q = qp + off, k = q + d, v = q + 2 * d
                                    let dq = gp + off, dk = dq + d, dv = dq + 2 * d
                                    let dO = dop + b * t * d + h * dh
                                    let p = pb.baseAddress! + (b * heads + h) * t * t
                                    // dP [T, T] = dO Vᵀ
                                    BLAS.gemm(transB: true, m: t, n: t, k: dh, a: dO, lda: d, b: v, ldb: 3 * d, c: dS, ldc: t)
                                    // dV [T, dh] = Pᵀ dO
                                    BLAS.gemm(transA: true, m: t, n: dh, k: t, a: p, lda: t, b: dO, ldb: d, c: dv, ldc: 3 * d)
                                    // dS = P ⊙ (dP − rowsum(dP ⊙ P))
                                    for r in 0..<t {
                                        var dot: Float = 0
                                        for c in 0..<t { dot += dS[r * t + c] * p[r * t + c] }
                                        for c in 0..<t { dS[r * t + c] = p[r * t + c] * (dS[r * t + c] - dot) }
                                    }
                                    // dQ = dS K · scale;  dK = dSᵀ Q · scale
                                    BLAS.gemm(m: t, n: dh, k: t, alpha: scale, a: dS, lda: t, b: k, ldb: 3 * d, c: dq, ldc: 3 * d)
                                    BLAS.gemm(transA: true, m: t, n: dh, k: t, alpha: scale, a: dS, lda: t, b: q, ldb: 3 * d, c: dk, ldc: 3 * d)
                                }
                            }
                        }
                    }
                }
            }
        }
        return try inProj.backward(dqkv)
    }
}

/// Numerically stable softmax of each row of a rows×cols matrix, in place.
@inlinable
public func softmaxRows(_ s: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
    for r in 0..<rows {
        let row = s + r * cols
        var mx = -Float.infinity
        for c in 0..<cols { mx = max(mx, row[c]) }
        var sum: Float = 0
        for c in 0..<cols { let e = expf(row[c] - mx); row[c] = e; sum += e }
        let inv = 1 / sum
        for c in 0..<cols { row[c] *= inv }
    }
}
