import Foundation

/// Softmax cross-entropy with optional label smoothing (`torch.nn.CrossEntropyLoss`, mean over
/// the batch).
///
/// Shapes: logits [N, K], labels N class indices in 0..<K. With smoothing ε the target is
/// (1 − ε)·onehot + ε/K, so loss_i = −(1 − ε)·log p_{i,y} − (ε/K)·Σ_k log p_{i,k}.
/// The gradient is (p − target)/N. The loss is summed in Float64.
public struct SoftmaxCrossEntropy {
    public let labelSmoothing: Float

    public init(labelSmoothing: Float = 0) {
        precondition(labelSmoothing >= 0 && labelSmoothing < 1, "label smoothing must be in [0, 1)")
        self.labelSmoothing = labelSmoothing
    }

    /// The mean loss, the gradient d(loss)/d(logits), and how many rows were classified correctly
    /// (argmax equals the label; ties go to the lowest index).
    public func evaluate(logits: Tensor, labels: [Int]) throws -> (loss: Double, gradient: Tensor, correct: Int) {
        guard logits.rank == 2, logits.shape[0] == labels.count else {
            throw NeuralCoreError.shapeMismatch(layer: "loss", expected: "[\(labels.count), K] logits for \(labels.count) labels", actual: logits.shape)
        }
        let (n, k) = (logits.shape[0], logits.shape[1])
        if let bad = labels.first(where: { $0 < 0 || $0 >= k }) {
            throw NeuralCoreError.invalidConfiguration("label \(bad) outside 0..<\(k) classes")
        }
        let eps = labelSmoothing
        var total = 0.0, correct = 0
        var grad = Tensor(shape: logits.shape)
        logits.withPointer { lp in
            grad.withMutablePointer { gp in
                for i in 0..<n {
                    let row = lp + i * k, g = gp + i * k
                    var mx = -Float.infinity, arg = 0
                    for j in 0..<k where row[j] > mx { mx = row[j]; arg = j }
                    if arg == labels[i] { correct += 1 }
                    var sum = 0.0
                    for j in 0..<k { sum += exp(Double(row[j] - mx)) }
                    let logZ = Double(mx) + log(sum)
                    var lossI = -(1 - Double(eps)) * (Double(row[labels[i]]) - logZ)
                    if eps > 0 {
                        var s = 0.0
                        for j in 0..<k { s += Double(row[j]) - logZ }
                        lossI -= Double(eps) / Double(k) * s
                    }
                    total += lossI
                    for j in 0..<k {
                        let p = exp(Double(row[j]) - logZ)
                        let target = (j == labels[i] ? 1 - Double(eps) : 0) + Double(eps) / Double(k)
                        g[j] = Float((p - target) / Double(n))
                    }
                }
            }
        }
        return (total / Double(n), grad, correct)
    }
}
