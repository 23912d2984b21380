import Foundation

/// x·Φ(x) with the exact normal CDF, elementwise (`torch.nn.GELU()`, approximate = "none").
/// Shapes: y and dx have x's shape. d/dx = Φ(x) + x·φ(x). A training forward keeps Φ(x) for
/// backward (erf is most of the layer's cost: `GELU.erf`); both passes run over `Compute.threads`.
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
                // Plain loops of arithmetic and selects, which the compiler vectorises.
                if training {
                    for i in range {
                        let v = xp[i], c = 0.5 * (1 + GELU.erf(v * invSqrt2))
                        yp[i] = v * c
                        cp[i] = c
                    }
                } else {
                    for i in range {
                        let v = xp[i]
                        yp[i] = v * 0.5 * (1 + GELU.erf(v * invSqrt2))
                    }
                }
            }
        }
        input = training ? x : nil
        cdf = training ? phi : nil
        return y
    }

    /// erf(x) as x·P(x²)/Q(x²) on [−4, 4] (±1 beyond, as in Float32): a rational fit made for
    /// apsweep by Scripts/fit_erf.py, with no branch or libm call so that loops over it are
    /// vectorised (libm's `erff` took a quarter of a ViT step). Its largest error in Float32 is
    /// 3.5e-7, about six ulps of erf near ±1 (`erff` is within one).
    @inline(__always)
    static func erf(_ a: Float) -> Float {
        let x = a > 4 ? 4 : (a < -4 ? -4 : a)
        let t = x * x
        var p: Float = 1.9220285807364235e-08
        p = p * t - 1.9908745798602467e-06
        p = p * t + 0.00015561313193757087
        p = p * t + 0.004295669961720705
        p = p * t + 0.05244126543402672
        p = p * t + 0.21400175988674164
        p = p * t + 1.1283786296844482
        var q: Float = 0.00109871884342283
        q = q * t + 0.01555618830025196
        q = q * t + 0.1208234503865242
        q = q * t + 0.5229817628860474
        q = q * t + 1
        let e = x * p / q
        return e > 1 ? 1 : (e < -1 ? -1 : e)           // the fit is 1 + 1 ulp at ±4
    }

    /// eʸ for y ≤ 0, branch-free so that the loop over it is vectorised: y = k·ln 2 + r with
    /// |r| ≤ ln 2 / 2, eʸ = 2ᵏ · (Taylor series of eʳ to r⁶, truncation below 1.2e-7 relative).
    /// Below −87, and for NaN, it returns e⁻⁸⁷ (≈ 1.6e-38): it only ever multiplies a Gaussian
    /// tail, and a NaN must not reach the integer conversion (which would trap).
    @inline(__always)
    static func expNonPositive(_ a: Float) -> Float {
        let y = a >= -87 ? (a > 0 ? 0 : a) : -87
        let k = Float(Int32(y * 1.442695040888963 - 0.5))          // round(y / ln 2), y ≤ 0
        let r = (y - k * 0.693145751953125) - k * 1.428606765330187e-06   // ln 2 in two parts
        var e: Float = 1.0 / 720
        e = e * r + 1.0 / 120
        e = e * r + 1.0 / 24
        e = e * r + 1.0 / 6
        e = e * r + 0.5
        e = e * r + 1
        e = e * r + 1
        return e * Float(bitPattern: UInt32(bitPattern: (Int32(k) + 127) << 23))
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
                    dp[i] = gp[i] * (cp[i] + v * invSqrt2Pi * GELU.expNonPositive(-0.5 * v * v))
                }
            }
        }
        return dx
    }
}
