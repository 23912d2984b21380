/// One model, one loss and one optimizer: the steps every training loop in apsweep takes.
public final class Trainer {
    public let model: Model
    public let loss: SoftmaxCrossEntropy
    public let optimizer: Optimizer

    public init(model: Model, loss: SoftmaxCrossEntropy = SoftmaxCrossEntropy(), optimizer: Optimizer) {
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
    }

    /// Forward in train mode, backward, one optimizer step. Returns the batch's mean loss and the
    /// number of correct predictions (made before the step).
    @discardableResult
    public func step(_ x: Tensor, labels: [Int]) throws -> (loss: Double, correct: Int) {
        model.zeroGrad()
        let logits = try model.forward(x, mode: .train)
        let (l, grad, correct) = try loss.evaluate(logits: logits, labels: labels)
        try model.backward(grad)
        optimizer.step()
        return (l, correct)
    }

    /// Loss and correct count of one batch in eval mode (no caches kept, nothing updated).
    public func evaluate(_ x: Tensor, labels: [Int]) throws -> (loss: Double, correct: Int) {
        let logits = try model.forward(x, mode: .eval)
        let (l, _, correct) = try loss.evaluate(logits: logits, labels: labels)
        return (l, correct)
    }
}
