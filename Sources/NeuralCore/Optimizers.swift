/// Optimizers with PyTorch's update rules, applied to every parameter whose `requiresGrad` is true.
public protocol Optimizer: AnyObject {
    /// The learning rate of the next `step()`; schedules set it once per epoch.
    var learningRate: Float { get set }
    /// Applies one update from the gradients currently in the parameters.
    func step()
}

/// SGD with momentum, dampening 0, optional Nesterov, and L2 weight decay added to the gradient
/// (`torch.optim.SGD`): g ← ∇ + λw; b ← μb + g (b = g on the first step);
/// g ← g + μb (Nesterov) or b; w ← w − lr·g.
public final class SGD: Optimizer {
    public var learningRate: Float
    public let momentum: Float, weightDecay: Float, nesterov: Bool
    private let parameters: [Parameter]
    private var buffers: [[Float]?]
    private var stepsTaken: [Int]

    public init(_ parameters: [Parameter], learningRate: Float, momentum: Float = 0, weightDecay: Float = 0, nesterov: Bool = false) {
        precondition(!nesterov || momentum > 0, "Nesterov momentum requires momentum > 0")
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        buffers = Array(repeating: nil, count: parameters.count)
        stepsTaken = Array(repeating: 0, count: parameters.count)
    }

    public func step() {
        let (lr, mu, wd) = (learningRate, momentum, weightDecay)
        for (index, p) in parameters.enumerated() where p.requiresGrad {
            let n = p.value.count
            if mu != 0 && buffers[index] == nil { buffers[index] = [Float](repeating: 0, count: n) }
            let first = stepsTaken[index] == 0
            let nesterov = self.nesterov
            let g = p.grad.withPointer { $0 }, w = p.value.withMutablePointer { $0 }
            let b = mu == 0 ? nil : buffers[index]!.withUnsafeMutableBufferPointer { $0.baseAddress! }
            withExtendedLifetime((p, buffers[index])) {
                // Elementwise: large tensors are split over the threads.
                parallelChunks(n, threads: Compute.threads, minimumChunk: 1 << 15) { range in
                    guard let b else {
                        for i in range { w[i] -= lr * (g[i] + wd * w[i]) }
                        return
                    }
                    for i in range {
                        let d = g[i] + wd * w[i]
                        b[i] = first ? d : mu * b[i] + d
                        w[i] -= lr * (nesterov ? d + mu * b[i] : b[i])
                    }
                }
            }
            stepsTaken[index] += 1
        }
    }

    /// The momentum buffer of parameter `index`, or nil before its first step (for tests and masks).
    public func momentumBuffer(_ index: Int) -> [Float]? { buffers[index] }
    /// Overwrites elements of a momentum buffer (masked fine-tuning keeps pruned entries at zero).
    public func updateMomentum(_ index: Int, _ body: (inout [Float]) -> Void) {
        if buffers[index] != nil { body(&buffers[index]!) }
    }
}

/// AdamW with decoupled weight decay (`torch.optim.AdamW`, amsgrad off):
/// w ← w(1 − lr·λ); m ← β1·m + (1 − β1)g; v ← β2·v + (1 − β2)g²;
/// w ← w − lr·m̂/(√v̂ + ε) with bias corrections m̂ = m/(1 − β1ᵗ), v̂ = v/(1 − β2ᵗ).
public final class AdamW: Optimizer {
    public var learningRate: Float
    public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    private let parameters: [Parameter]
    private var m: [[Float]], v: [[Float]]
    private var t = 0

    public init(_ parameters: [Parameter], learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                eps: Float = 1e-8, weightDecay: Float = 0.01) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        m = parameters.map { [Float](repeating: 0, count: $0.value.count) }
        v = m
    }

    public func step() {
        t += 1
        let (lr, b1, b2, e, wd) = (learningRate, beta1, beta2, eps, weightDecay)
        let c1 = 1 - pow(Double(b1), Double(t)), c2 = 1 - pow(Double(b2), Double(t))
        let stepSize = Float(Double(lr) / c1), rootC2 = Float(c2.squareRoot())
        for (index, p) in parameters.enumerated() where p.requiresGrad {
            let n = p.value.count
            p.grad.withPointer { g in
                p.value.withMutablePointer { w in
                    m[index].withUnsafeMutableBufferPointer { mb in
                        v[index].withUnsafeMutableBufferPointer { vb in
                            let mp = mb.baseAddress!, vp = vb.baseAddress!
                            for i in 0..<n {
                                w[i] *= 1 - lr * wd
                                mp[i] = b1 * mp[i] + (1 - b1) * g[i]
                                vp[i] = b2 * vp[i] + (1 - b2) * g[i] * g[i]
                                w[i] -= stepSize * mp[i] / (vp[i].squareRoot() / rootC2 + e)
                            }
                        }
                    }
                }
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// How the learning rate changes from epoch to epoch (PyTorch's schedulers stepped once per epoch).
public enum LearningRateSchedule: Sendable, Equatable {
    /// The base rate throughout.
    case constant
    /// base · γ^⌊epoch / every⌋ (`StepLR`).
    case step(every: Int, gamma: Float)
    /// η_min + (base − η_min)(1 + cos(π·epoch / epochs))/2 (`CosineAnnealingLR` with T_max = epochs).
    case cosine(minimum: Float)

    /// The rate for 0-based `epoch` of `epochs`.
    public func rate(base: Float, epoch: Int, epochs: Int) -> Float {
        switch self {
        case .constant:
            return base
        case let .step(every, gamma):
            return base * Float(pow(Double(gamma), Double(epoch / max(1, every))))
        case let .cosine(minimum):
            let frac = Double(epoch) / Double(max(1, epochs))
            return minimum + (base - minimum) * Float((1 + cos(Double.pi * frac)) / 2)
        }
    }
}
