/// max(x, 0), elementwise (`torch.nn.ReLU`). Shapes: y and dx have x's shape.
/// The gradient at exactly 0 is 0, as in PyTorch.
public final class ReLU: Layer {
    public var path = ""
    /// The last training-mode output (internal: tests read the activation pattern).
    var output: Tensor?
    public init() {}

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        let n = x.count
        let y = Tensor(shape: x.shape, unsafeUninitialized: { out in
            x.withPointer { p in
                // 16 lanes at a time (a branch per element mispredicts on random signs), split
                // over threads in blocks of whole vectors.
                let zero = SIMD16<Float>(repeating: 0)
                parallelChunks(n / 16, threads: Compute.threads, minimumChunk: 4096) { blocks in
                    for b in blocks {
                        let v = UnsafeRawPointer(p + 16 * b).loadUnaligned(as: SIMD16<Float>.self)
                        UnsafeMutableRawPointer(out + 16 * b).storeBytes(of: zero.replacing(with: v, where: v .> zero), as: SIMD16<Float>.self)
                    }
                }
                for i in (n / 16 * 16)..<n { out[i] = p[i] > 0 ? p[i] : 0 }   // NaN maps to 0
            }
        })
        output = mode == .train ? y : nil
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let y = output else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
        try expect(dy.shape, describeShape(y.shape), dy.shape == y.shape)
        let n = y.count
        return Tensor(shape: dy.shape, unsafeUninitialized: { out in
            y.withPointer { yp in
                dy.withPointer { g in
                    let zero = SIMD16<Float>(repeating: 0)
                    parallelChunks(n / 16, threads: Compute.threads, minimumChunk: 4096) { blocks in
                        for b in blocks {
                            let v = UnsafeRawPointer(yp + 16 * b).loadUnaligned(as: SIMD16<Float>.self)
                            let d = UnsafeRawPointer(g + 16 * b).loadUnaligned(as: SIMD16<Float>.self)
                            UnsafeMutableRawPointer(out + 16 * b).storeBytes(of: zero.replacing(with: d, where: v .> zero), as: SIMD16<Float>.self)
                        }
                    }
                    for i in (n / 16 * 16)..<n { out[i] = yp[i] > 0 ? g[i] : 0 }
                }
            }
        })
    }
}
