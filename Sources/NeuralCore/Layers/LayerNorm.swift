/// Layer normalisation over the last dimension (`torch.nn.LayerNorm(D)`).
///
/// Shapes: x [..., D] → y [..., D]; weight, bias [D]. Each row is normalised with its own mean and
/// biased variance (sums in Float64), then scaled and shifted.
public final class LayerNorm: Layer {
    public var path = ""
    public let features: Int
    public let eps: Float
    public let weight: Parameter, bias: Parameter
    private var xhat: Tensor?
    private var invStd: [Float] = []

    public init(_ features: Int, eps: Float = 1e-5) {
        self.features = features
        self.eps = eps
        weight = Parameter(Tensor(shape: [features], repeating: 1))
        bias = Parameter(Tensor(shape: [features]))
    }

    public func namedParameters() -> [(String, Parameter)] { [("weight", weight), ("bias", bias)] }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        try expect(x.shape, "[..., \(features)]", x.rank >= 1 && x.shape.last == features)
        let d = features, rows = x.count / d
        var y = Tensor(shape: x.shape)
        var xh = Tensor(shape: x.shape)
        if invStd.count != rows { invStd = [Float](repeating: 0, count: rows) }
        x.withPointer { xp in
            y.withMutablePointer { yp in
                xh.withMutablePointer { hp in
                    weight.value.withPointer { gp in
                        bias.value.withPointer { bp in
                            for r in 0..<rows {
                                let row = xp + r * d
                                var s = 0.0
                                for j in 0..<d { s += Double(row[j]) }
                                let mu = s / Double(d)
                                var v = 0.0
                                for j in 0..<d { let t = Double(row[j]) - mu; v += t * t }
                                let inv = Float(1 / (v / Double(d) + Double(eps)).squareRoot())
                                invStd[r] = inv
                                let m = Float(mu)
                                for j in 0..<d {
                                    let h = (row[j] - m) * inv
                                    hp[r * d + j] = h
                                    yp[r * d + j] = gp[j] * h + bp[j]
                                }
                            }
                        }
                    }
                }
            }
        }
        xhat = mode == .train ? xh : nil
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let xh = xhat else { throw NeuralCoreError.backwardWithoutForward(layer: path) }
        try expect(dy.shape, describeShape(xh.shape), dy.shape == xh.shape)
        let d = features, rows = xh.count / d
        var dx = Tensor(shape: xh.shape)
        xh.withPointer { hp in
            dy.withPointer { dyp in
                dx.withMutablePointer { dxp in
                    weight.value.withPointer { gp in
                        weight.grad.withMutablePointer { dg in
                            bias.grad.withMutablePointer { db in
                                for r in 0..<rows {
                                    // g = dy·γ;  dx = inv/D · (D·g − Σg − x̂·Σ(g·x̂))
                                    var sg = 0.0, sgh = 0.0
                                    for j in 0..<d {
                                        let o = r * d + j
                                        dg[j] += dyp[o] * hp[o]
                                        db[j] += dyp[o]
                                        let g = Double(dyp[o] * gp[j])
                                        sg += g; sgh += g * Double(hp[o])
                                    }
                                    let k = invStd[r] / Float(d), a = Float(sg), b = Float(sgh)
                                    for j in 0..<d {
                                        let o = r * d + j
                                        dxp[o] = k * (Float(d) * dyp[o] * gp[j] - a - hp[o] * b)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return dx
    }
}
