/// y = x Wᵀ + b over the last dimension (`torch.nn.Linear`).
///
/// Shapes: x [..., in] → y [..., out]; weight [out, in]; bias [out]. Leading dimensions are
/// flattened into one batch dimension B for the GEMMs.
public final class Linear: Layer {
    public var path = ""
    public let inFeatures: Int, outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?
    /// When false, `backward` skips d(input) (first layer of a model) and returns an empty tensor.
    public var computesInputGradient = true
    private var input: Tensor?

    /// Initialised as PyTorch does: U(-1/√in, 1/√in) for weight and bias.
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, rng: inout SeededGenerator) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        let bound = 1 / Float(inFeatures).squareRoot()
        weight = Parameter(uniformTensor([outFeatures, inFeatures], bound: bound, rng: &rng))
        self.bias = bias ? Parameter(uniformTensor([outFeatures], bound: bound, rng: &rng)) : nil
    }

    public func namedParameters() -> [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        // x [B, in] → y [B, out]
        try expect(x.shape, "[..., \(inFeatures)]", x.rank >= 2 && x.shape.last == inFeatures)
        let rows = x.count / inFeatures
        var y = Tensor(shape: Array(x.shape.dropLast()) + [outFeatures])
        x.withPointer { xp in
            weight.value.withPointer { wp in
                y.withMutablePointer { yp in
                    if let bias {
                        bias.value.withPointer { bp in
                            for r in 0..<rows { (yp + r * outFeatures).update(from: bp, count: outFeatures) }
                        }
                    }
                    BLAS.gemm(transB: true, m: rows, n: outFeatures, k: inFeatures,
                              a: xp, lda: inFeatures, b: wp, ldb: inFeatures,
                              beta: bias == nil ? 0 : 1, c: yp, ldc: outFeatures)
                }
            }
        }
        input = mode == .train ? x : nil
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let x = input else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
        let rows = x.count / inFeatures
        try expect(dy.shape, describeShape(Array(x.shape.dropLast()) + [outFeatures]), dy.count == rows * outFeatures)
        // dW [out, in] += dyᵀ [out, B] · x [B, in]
        dy.withPointer { dyp in
            x.withPointer { xp in
                weight.grad.withMutablePointer { gp in
                    BLAS.gemm(transA: true, m: outFeatures, n: inFeatures, k: rows,
                              a: dyp, lda: outFeatures, b: xp, ldb: inFeatures, beta: 1, c: gp, ldc: inFeatures)
                }
            }
            // db [out] += Σ_B dy
            bias?.grad.withMutablePointer { gb in
                for r in 0..<rows {
                    let row = dyp + r * outFeatures
                    for o in 0..<outFeatures { gb[o] += row[o] }
                }
            }
        }
        guard computesInputGradient else { return Tensor(shape: [0]) }
        // dx [B, in] = dy [B, out] · W [out, in]
        var dx = Tensor(shape: x.shape)
        dy.withPointer { dyp in
            weight.value.withPointer { wp in
                dx.withMutablePointer { dxp in
                    BLAS.gemm(m: rows, n: inFeatures, k: outFeatures,
                              a: dyp, lda: outFeatures, b: wp, ldb: inFeatures, c: dxp, ldc: inFeatures)
                }
            }
        }
        return dx
    }
}

/// A tensor of `shape` with elements drawn from U(-bound, bound).
public func uniformTensor(_ shape: [Int], bound: Float, rng: inout SeededGenerator) -> Tensor {
    Tensor(shape: shape, unsafeUninitialized: { p in
        for i in 0..<shape.reduce(1, *) { p[i] = (rng.nextUniformFloat() * 2 - 1) * bound }
    })
}
