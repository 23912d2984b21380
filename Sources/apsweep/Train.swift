import ArgumentParser
import Datasets
import Foundation
import NeuralCore

extension Architecture: ExpressibleByArgument {}

enum OptimizerChoice: String, ExpressibleByArgument, CaseIterable { case sgd, adamw }
enum ScheduleChoice: String, ExpressibleByArgument, CaseIterable { case constant, step, cosine }

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model on an image data set and write its weights as safetensors (PyTorch keys).")

    @Option(help: "Architecture: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")).")
    var model: Architecture = .lenet5
    @Option(help: "Data set: fashion-mnist, mnist, cifar10, cifar100, or an .apshard file.")
    var dataset: String = "fashion-mnist"
    @Option(help: "Directory holding the data set's files (default: where Debian's package puts them).")
    var data: String?
    @Option(help: "Epochs to train.") var epochs = 10
    @Option(help: "Mini-batch size.") var batch = 128
    @Option(help: "Optimizer: sgd or adamw.") var optimizer: OptimizerChoice = .sgd
    @Option(help: "Learning rate (default 0.05 for SGD, 0.001 for AdamW).") var lr: Float?
    @Option(help: "SGD momentum.") var momentum: Float = 0.9
    @Flag(help: "Nesterov momentum (SGD).") var nesterov = false
    @Option(help: "Weight decay (L2 for SGD, decoupled for AdamW).") var weightDecay: Float = 5e-4
    @Option(help: "Learning-rate schedule over the epochs: constant, step, cosine.") var schedule: ScheduleChoice = .cosine
    @Option(help: "Label smoothing in [0, 1).") var labelSmoothing: Float = 0
    @Option(help: "Width multiplier for the architecture.") var width: Double = 1
    @Option(help: "Seed for initialisation and shuffling.") var seed: UInt64 = 0
    @Option(help: "Stop after this many training images per epoch (for quick checks).") var limit: Int?
    @Option(help: "Model input as CxHxW (e.g. 3x32x32); images are padded/cropped and channels repeated to fit. Default: the data's shape.")
    var input: String?
    @Option(help: "Augmentation: random crop with this much padding plus horizontal flips (0 = off; default 4 for CIFAR, 0 otherwise).")
    var augment: Int?
    @Option(help: "Output checkpoint (.safetensors); a .json of the run is written next to it.")
    var out: String = "base.safetensors"
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        do { _ = try DataSource.parse(dataset, directory: data) } catch { throw ValidationError("--dataset: \(error)") }
        if let input { _ = try parseShape(input) }
        if let lr, !(lr > 0) { throw ValidationError("--lr must be positive") }
    }

    func run() throws {
        try compute.apply()
        let source = try DataSource.parse(dataset, directory: data)
        let loadStart = Date()
        let shard: Shard
        do { shard = try source.load() } catch { throw CLIError("cannot load \(dataset): \(error)") }
        let (trainSet, testSet) = (shard.train, shard.test)
        let loadSeconds = Date().timeIntervalSince(loadStart)
        let inputShape = try input.map(parseShape) ?? trainSet.imageShape
        let augmentation: Augmentation? = {
            let pad = augment ?? (source.name.hasPrefix("cifar") ? 4 : 0)
            return pad > 0 ? Augmentation(cropPadding: pad, horizontalFlip: true) : nil
        }()
        let spec = ModelSpec(model, width: width, inputShape: inputShape, classes: trainSet.classes)
        let net = try spec.build(seed: seed)
        let baseLR = lr ?? (optimizer == .sgd ? 0.05 : 1e-3)
        let opt: Optimizer = optimizer == .sgd
            ? SGD(net.parameters, learningRate: baseLR, momentum: momentum, weightDecay: weightDecay, nesterov: nesterov)
            : AdamW(net.parameters, learningRate: baseLR, weightDecay: weightDecay)
        let sched: LearningRateSchedule = switch schedule {
        case .constant: .constant
        case .step: .step(every: max(1, epochs / 3), gamma: 0.1)
        case .cosine: .cosine(minimum: 0)
        }
        let trainer = Trainer(model: net, loss: SoftmaxCrossEntropy(labelSmoothing: labelSmoothing), optimizer: opt)
        print("apsweep train: \(model.rawValue) (\(net.parameterCount) parameters) on \(dataset): \(trainSet.count) train, \(testSet.count) test images, loaded in \(String(format: "%.2f", loadSeconds)) s; \(BLAS.summary)")
        var epochRecords: [[String: Any]] = []
        let progress = ProgressLine(enabled: stdoutIsTerminal)
        for epoch in 0..<epochs {
            opt.learningRate = sched.rate(base: baseLR, epoch: epoch, epochs: epochs)
            let started = Date()
            var seen = 0, correct = 0, lossSum = 0.0
            let batches = Batches(trainSet, batchSize: batch, shuffleSeed: seed, epoch: epoch, augmentation: augmentation, outputShape: inputShape)
            for (step, (x, y)) in batches.enumerated() {
                if let limit, seen >= limit { break }
                let (l, c) = try trainer.step(x, labels: y)
                seen += y.count; correct += c; lossSum += l * Double(y.count)
                let elapsed = Date().timeIntervalSince(started)
                progress.update(String(format: "epoch %d/%d step %d/%d loss %.4f acc %.2f%% %.0f img/s",
                                       epoch + 1, epochs, step + 1, batches.count, lossSum / Double(seen),
                                       100 * Double(correct) / Double(seen), Double(seen) / max(elapsed, 1e-9)))
            }
            let trainSeconds = Date().timeIntervalSince(started)
            let (testLoss, testAcc) = try evaluate(trainer, testSet, inputShape)
            progress.finish()
            let trainAcc = 100 * Double(correct) / Double(seen)
            print(String(format: "epoch %d/%d  lr %.4g  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  %.1f s (%.0f img/s)",
                         epoch + 1, epochs, opt.learningRate, lossSum / Double(seen), trainAcc, testLoss, testAcc,
                         trainSeconds, Double(seen) / trainSeconds))
            epochRecords.append(["epoch": epoch + 1, "lr": Double(opt.learningRate), "train_loss": lossSum / Double(seen),
                                 "train_accuracy": trainAcc, "test_loss": testLoss, "test_accuracy": testAcc,
                                 "train_seconds": trainSeconds])
        }
        try Safetensors.write(net, to: out, metadata: ["apsweep.model": model.rawValue, "apsweep.width": String(width)])
        let run: [String: Any] = [
            "apsweep_version": APSweep.version,
            "model": model.rawValue, "width": width, "parameters": net.parameterCount,
            "dataset": source.name, "dataset_fingerprint": shard.fingerprint, "shard": [shard.index, shard.count],
            "input_shape": inputShape, "augmentation": augmentation.map { "crop \($0.cropPadding) + flip" } ?? "none", "classes": trainSet.classes,
            "optimizer": optimizer.rawValue, "lr": Double(baseLR), "momentum": Double(momentum), "nesterov": nesterov,
            "weight_decay": Double(weightDecay), "schedule": schedule.rawValue, "batch": batch, "epochs": epochs,
            "seed": seed, "threads": BLAS.threads, "blas_core": BLAS.coreName,
            "data_load_seconds": loadSeconds, "history": epochRecords,
        ]
        let jsonPath = (out as NSString).deletingPathExtension + ".json"
        try JSONSerialization.data(withJSONObject: run, options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: jsonPath))
        print("wrote \(out) and \(jsonPath)")
    }

    private func evaluate(_ trainer: Trainer, _ set: LabeledImages, _ shape: [Int]) throws -> (Double, Double) {
        var loss = 0.0, correct = 0
        for (x, y) in Batches(set, batchSize: 500, shuffleSeed: nil, outputShape: shape) {
            let (l, c) = try trainer.evaluate(x, labels: y)
            loss += l * Double(y.count); correct += c
        }
        return (loss / Double(set.count), 100 * Double(correct) / Double(set.count))
    }
}

/// One line redrawn in place on a terminal, at most ten times a second; silent otherwise.
final class ProgressLine {
    let enabled: Bool
    private var last = Date.distantPast
    init(enabled: Bool) { self.enabled = enabled }

    func update(_ text: String) {
        guard enabled, Date().timeIntervalSince(last) > 0.1 else { return }
        last = Date()
        FileHandle.standardOutput.write(("\r\u{1B}[2K" + text).data(using: .utf8)!)
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardOutput.write("\r\u{1B}[2K".data(using: .utf8)!)
    }
}

/// Parses "3x32x32" into [3, 32, 32].
func parseShape(_ text: String) throws -> [Int] {
    let parts = text.split(separator: "x").compactMap { Int($0) }
    guard parts.count == 3, parts.allSatisfy({ $0 > 0 }) else {
        throw ValidationError("shape '\(text)' must be CxHxW with positive numbers, e.g. 3x32x32")
    }
    return parts
}
