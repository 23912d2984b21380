import Foundation

/// x·Φ(x) with the exact normal CDF, elementwise (`torch.nn.GELU()`, approximate = "none").
/// Shapes: y and dx have x's shape. d/dx = Φ(x) + x·φ(x). A training forward keeps Φ(x) for
/// backward (erf is most of the layer's cost); both passes run over `Compute.threads`.
public final class GELU: Layer {
    public var path = ""
    private var input: Tensor?
    private var cdf: Tensor?
    public init() {}

    /// Elements per thread below which splitting costs more than it saves.
    static let minimumChunk = 16_384

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        let training = mode == .train
        var y = Tensor(shape: x.shape, unsafeUninitialized: { _ in })
        var phi = training ? Tensor(shape: x.shape, unsafeUninitialized: { _ in }) : Tensor(shape: [0])
        let xp = x.withPointer { $0 }, yp = y.withMutablePointer { $0 }, cp = phi.withMutablePointer { $0 }
        let invSqrt2 = Float(0.5).squareRoot()
        withExtendedLifetime((x, y, phi)) {
            parallelChunks(x.count, threads: Compute.threads, minimumChunk: Self.minimumChunk) { range in
                for i in range {
                    let v = xp[i]
                    let c = 0.5 * (1 + erff(v * invSqrt2))
                    yp[i] = v * c
                    if training { cp[i] = c }
                }
            }
        }
        input = training ? x : nil
        cdf = training ? phi : nil
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let x = input, let phi = cdf else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
        try expect(dy.shape, describeShape(x.shape), dy.shape == x.shape)
        var dx = Tensor(shape: x.shape, unsafeUninitialized: { _ in })
        let invSqrt2Pi = 1 / Float(2 * Double.pi).squareRoot()
        let xp = x.withPointer { $0 }, cp = phi.withPointer { $0 }, gp = dy.withPointer { $0 }, dp = dx.withMutablePointer { $0 }
        withExtendedLifetime((x, phi, dy, dx)) {
            parallelChunks(x.count, threads: Compute.threads, minimumChunk: Self.minimumChunk) { range in
                for i in range {
                    let v = xp[i]
                    dp[i] = gp[i] * (cp[i] + v * invSqrt2Pi * expf(-0.5 * v * v))
                }
            }
        }
        return dx
    }
}
