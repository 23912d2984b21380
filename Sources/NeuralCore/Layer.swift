import CPUCheck
import Foundation

/// Whether a forward pass trains (batch statistics, dropout on, caches for backward) or evaluates.
public enum Mode: Sendable { case train, eval }

/// A trainable tensor and the gradient `backward` accumulates into it.
public final class Parameter {
    /// The current weights.
    public var value: Tensor
    /// d(loss)/d(value), summed over every backward since the last `zeroGrad()`.
    public var grad: Tensor
    /// When false, optimizers leave the parameter alone (frozen layers in fine-tuning).
    public var requiresGrad = true

    public init(_ value: Tensor) {
        self.value = value
        self.grad = Tensor(shape: value.shape)
    }

    public func zeroGrad() { grad.zero() }
}

/// The element type a buffer has in a PyTorch state dict.
public enum BufferType: Sendable { case float32, int64 }

/// A non-trainable tensor that is part of a model's state (batch-norm running statistics).
public final class Buffer {
    public var value: Tensor
    /// How PyTorch stores it: `num_batches_tracked` is int64 there; apsweep keeps it as Float.
    public let type: BufferType
    public init(_ value: Tensor, type: BufferType = .float32) {
        self.value = value
        self.type = type
    }
}

/// A layer: forward and backward side by side, parameters and buffers under PyTorch's names.
///
/// `forward` in `.train` mode caches what `backward` needs; `backward` takes d(loss)/d(output),
/// adds the parameter gradients into each `Parameter.grad` and returns d(loss)/d(input).
public protocol Layer: AnyObject {
    /// Where the layer sits in its model, in PyTorch's dotted form ("features.3"); used in errors.
    var path: String { get set }
    func forward(_ x: Tensor, mode: Mode) throws -> Tensor
    func backward(_ dy: Tensor) throws -> Tensor
    /// Trainable tensors, named relative to this layer ("weight", "conv1.weight").
    func namedParameters() -> [(String, Parameter)]
    /// State that is not trained by gradients ("running_mean"), named relative to this layer.
    func namedBuffers() -> [(String, Buffer)]
    /// The layers this one is made of, named relative to it, for walking a model.
    func namedChildren() -> [(String, Layer)]
}

extension Layer {
    public func namedParameters() -> [(String, Parameter)] {
        namedChildren().flatMap { name, child in child.namedParameters().map { (join(name, $0.0), $0.1) } }
    }
    public func namedBuffers() -> [(String, Buffer)] {
        namedChildren().flatMap { name, child in child.namedBuffers().map { (join(name, $0.0), $0.1) } }
    }
    public func namedChildren() -> [(String, Layer)] { [] }

    /// Sets `path` on this layer and on every descendant.
    public func assignPaths(_ prefix: String) {
        path = prefix
        for (name, child) in namedChildren() { child.assignPaths(join(prefix, name)) }
    }

    /// Throws a shape error naming this layer unless `shape` satisfies `ok`.
    func expect(_ shape: [Int], _ expected: @autoclosure () -> String, _ ok: Bool) throws {
        if !ok { throw NeuralCoreError.shapeMismatch(layer: path, expected: expected(), actual: shape) }
    }
}

/// Joins two dotted names, skipping empty parts.
@inlinable
public func join(_ a: String, _ b: String) -> String {
    if a.isEmpty { return b }
    if b.isEmpty { return a }
    return a + "." + b
}

/// Layers applied one after another; children are named "0", "1", … as in `torch.nn.Sequential`,
/// unless names are given.
public final class Sequential: Layer {
    public var path = ""
    public private(set) var layers: [(String, Layer)]

    public init(_ layers: [Layer]) {
        self.layers = layers.enumerated().map { (String($0.offset), $0.element) }
    }
    public init(named layers: [(String, Layer)]) { self.layers = layers }

    public func namedChildren() -> [(String, Layer)] { layers }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        var h = x
        for (_, layer) in layers { h = try layer.forward(h, mode: mode) }
        return h
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        var g = dy
        for (_, layer) in layers.reversed() { g = try layer.backward(g) }
        return g
    }
}

/// Splits `count` items into contiguous chunks run on up to `threads` threads at once.
@inlinable
public func parallelChunks(_ count: Int, threads: Int, minimumChunk: Int = 1,
                           _ body: (Range<Int>) -> Void) {
    let chunks = max(1, min(threads, count / max(1, minimumChunk)))
    if chunks <= 1 { body(0..<count); return }
    Compute.parallel(chunks) { c in
        let lo = count * c / chunks, hi = count * (c + 1) / chunks
        if lo < hi { body(lo..<hi) }
    }
}

/// Threads apsweep's own loops (im2col, pooling, normalisation) may use; BLAS has its own count.
public enum Compute {
    nonisolated(unsafe) public static var threads = 1

    /// The x86-64 level apsweep's own loops were compiled for ("x86-64-v3" unless the build set
    /// APSWEEP_CPU; "" on other architectures). The process has checked the CPU for it at start.
    public static var compiledFor: String { String(cString: apsweep_cpu_level()) }

    /// Runs `body(0 ..< iterations)`, each index once and up to `threads` at a time (at least 2
    /// when there are 2 iterations or more), on threads that stay awake between the loops of a
    /// step (see `ComputePool`). Returns when every iteration has finished.
    public static func parallel(_ iterations: Int, _ body: (Int) -> Void) {
        ComputePool.shared.run(iterations, threads: max(2, min(threads, iterations)), body)
    }
}
