import Foundation

/// x·Φ(x) with the exact normal CDF, elementwise (`torch.nn.GELU()`, approximate = "none").
/// Shapes: y and dx have x's shape. d/dx = Φ(x) + x·φ(x).
public final class GELU: Layer {
    public var path = ""
    private var input: Tensor?
    public init() {}

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        var y = x
        y.withMutablePointer { p in
            for i in 0..<x.count {
                let v = p[i]
                p[i] = v * 0.5 * (1 + erff(v * Float(0.5).squareRoot()))
            }
        }
        input = mode == .train ? x : nil
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let x = input else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
        try expect(dy.shape, describeShape(x.shape), dy.shape == x.shape)
        var dx = dy
        let invSqrt2Pi = 1 / Float(2 * Double.pi).squareRoot()
        x.withPointer { xp in
            dx.withMutablePointer { p in
                for i in 0..<x.count {
                    let v = xp[i]
                    let cdf = 0.5 * (1 + erff(v * Float(0.5).squareRoot()))
                    let pdf = invSqrt2Pi * expf(-0.5 * v * v)
                    p[i] *= cdf + v * pdf
                }
            }
        }
        return dx
    }
}
