/// The pieces of a Vision Transformer with torchvision's `vit_b_16` names.

/// Patch embedding with class token and position embedding.
///
/// Shapes: x [N, C, H, W] → conv_proj (kernel = stride = patch) [N, D, H/p, W/p] → tokens
/// [N, T, D] with T = (H/p)(W/p) → prepend class_token [1, 1, D] → add encoder.pos_embedding
/// [1, T + 1, D] → y [N, T + 1, D].
public final class PatchEmbedding: Layer {
    public var path = ""
    public let conv: Conv2d
    public let classToken: Parameter, positions: Parameter
    public let patch: Int, dim: Int, tokens: Int
    private var gridShape: [Int]?

    public init(channels: Int, imageSize: Int, patch: Int, dim: Int, rng: inout SeededGenerator) {
        precondition(imageSize % patch == 0, "image size \(imageSize) must be a multiple of the patch size \(patch)")
        self.patch = patch
        self.dim = dim
        tokens = (imageSize / patch) * (imageSize / patch)
        conv = Conv2d(channels, dim, kernel: patch, stride: patch, rng: &rng)
        classToken = Parameter(Tensor(shape: [1, 1, dim]))
        var pos = Tensor(shape: [1, tokens + 1, dim])
        for i in 0..<pos.count { pos.scalars[i] = Float(rng.nextNormal() * 0.02) }
        positions = Parameter(pos)
    }

    public func namedParameters() -> [(String, Parameter)] {
        [("conv_proj.weight", conv.weight), ("conv_proj.bias", conv.bias!),
         ("class_token", classToken), ("encoder.pos_embedding", positions)]
    }
    public func namedChildren() -> [(String, Layer)] { [("conv_proj", conv)] }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        let grid = try conv.forward(x, mode: mode)               // [N, D, g, g]
        let (n, d) = (grid.shape[0], dim)
        let t = grid.shape[2] * grid.shape[3]
        try expect(x.shape, "an image giving \(tokens) patches", t == tokens)
        var y = Tensor(shape: [n, t + 1, d])
        grid.withPointer { gp in
            positions.value.withPointer { pp in
                classToken.value.withPointer { cp in
                    y.withMutablePointer { yp in
                        for b in 0..<n {
                            let out = yp + b * (t + 1) * d
                            for j in 0..<d { out[j] = cp[j] + pp[j] }
                            for i in 0..<t {
                                for j in 0..<d { out[(i + 1) * d + j] = gp[(b * d + j) * t + i] + pp[(i + 1) * d + j] }
                            }
                        }
                    }
                }
            }
        }
        gridShape = grid.shape
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let gshape = gridShape else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
        let (n, d, t) = (gshape[0], dim, tokens)
        try expect(dy.shape, describeShape([n, t + 1, d]), dy.shape == [n, t + 1, d])
        var dgrid = Tensor(shape: gshape)
        dy.withPointer { dyp in
            dgrid.withMutablePointer { gp in
                positions.grad.withMutablePointer { pg in
                    classToken.grad.withMutablePointer { cg in
                        for b in 0..<n {
                            let row = dyp + b * (t + 1) * d
                            for j in 0..<d { cg[j] += row[j] }
                            for i in 0..<(t + 1) { for j in 0..<d { pg[i * d + j] += row[i * d + j] } }
                            for i in 0..<t { for j in 0..<d { gp[(b * d + j) * t + i] = row[(i + 1) * d + j] } }
                        }
                    }
                }
            }
        }
        return try conv.backward(dgrid)
    }
}

/// A pre-norm transformer encoder block (torchvision `EncoderBlock`):
/// h = x + Dropout(Attention(ln_1(x))); y = h + MLP(ln_2(h)), MLP = Linear(D, M), GELU, Dropout,
/// Linear(M, D), Dropout. Shapes: x [N, T, D] → y [N, T, D].
public final class EncoderBlock: Layer {
    public var path = ""
    public let ln1: LayerNorm, attention: MultiheadSelfAttention, attentionDropout: Dropout
    public let ln2: LayerNorm, mlp: Sequential

    public init(dim: Int, heads: Int, mlpDim: Int, dropout: Float = 0, rng: inout SeededGenerator) {
        ln1 = LayerNorm(dim, eps: 1e-6)
        attention = MultiheadSelfAttention(dim: dim, heads: heads, rng: &rng)
        attentionDropout = Dropout(dropout, seed: rng.next())
        ln2 = LayerNorm(dim, eps: 1e-6)
        mlp = Sequential([Linear(dim, mlpDim, rng: &rng), GELU(), Dropout(dropout, seed: rng.next()),
                          Linear(mlpDim, dim, rng: &rng), Dropout(dropout, seed: rng.next())])
    }

    public func namedChildren() -> [(String, Layer)] {
        [("ln_1", ln1), ("self_attention", attention), ("ln_2", ln2), ("mlp", mlp)]
    }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try expect(x.shape, "[N, T, \(ln1.features)]", x.rank == 3 && x.shape[2] == ln1.features)
        var h = try attentionDropout.forward(attention.forward(ln1.forward(x, mode: mode), mode: mode), mode: mode)
        add(&h, x)
        var y = try mlp.forward(ln2.forward(h, mode: mode), mode: mode)
        add(&y, h)
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        var dh = try ln2.backward(mlp.backward(dy))
        add(&dh, dy)
        var dx = try ln1.backward(attention.backward(attentionDropout.backward(dh)))
        add(&dx, dh)
        return dx
    }
}

/// The class token of each sequence: x [N, T, D] → y [N, D] (torchvision's `x[:, 0]`).
public final class ClassTokenSelect: Layer {
    public var path = ""
    private var inputShape: [Int]?
    public init() {}

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try expect(x.shape, "[N, T, D]", x.rank == 3 && x.shape[1] >= 1)
        let (n, t, d) = (x.shape[0], x.shape[1], x.shape[2])
        inputShape = x.shape
        return Tensor(shape: [n, d], unsafeUninitialized: { yp in
            x.withPointer { xp in for b in 0..<n { (yp + b * d).update(from: xp + b * t * d, count: d) } }
        })
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let shape = inputShape else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
        let (n, t, d) = (shape[0], shape[1], shape[2])
        try expect(dy.shape, describeShape([n, d]), dy.shape == [n, d])
        var dx = Tensor(shape: shape)
        dx.withMutablePointer { dxp in
            dy.withPointer { dyp in for b in 0..<n { (dxp + b * t * d).update(from: dyp + b * d, count: d) } }
        }
        return dx
    }
}

/// a += b elementwise (same element count).
@inlinable
func add(_ a: inout Tensor, _ b: Tensor) {
    precondition(a.count == b.count)
    a.withMutablePointer { ap in b.withPointer { bp in for i in 0..<b.count { ap[i] += bp[i] } } }
}
