import ArgumentParser
import Datasets
import Foundation
import Experiment
import NeuralCore

extension Architecture: ExpressibleByArgument {}

extension TrainingConfig.OptimizerKind: ExpressibleByArgument {}
extension TrainingConfig.ScheduleKind: ExpressibleByArgument {}

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
    @Option(help: "Optimizer: sgd or adamw.") var optimizer: TrainingConfig.OptimizerKind = .sgd
    @Option(help: "Learning rate (default 0.05 for SGD, 0.001 for AdamW).") var lr: Float?
    @Option(help: "SGD momentum.") var momentum: Float = 0.9
    @Flag(help: "Nesterov momentum (SGD).") var nesterov = false
    @Option(help: "Weight decay (L2 for SGD, decoupled for AdamW).") var weightDecay: Float = 5e-4
    @Option(help: "Learning-rate schedule over the epochs: constant, step, cosine.") var schedule: TrainingConfig.ScheduleKind = .cosine
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
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1 image, got \(limit)") }
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
        let config = TrainingConfig(epochs: epochs, batch: batch, optimizer: optimizer,
                                    lr: Double(lr ?? (optimizer == .sgd ? 0.05 : 1e-3)), momentum: Double(momentum), nesterov: nesterov,
                                    weightDecay: Double(weightDecay), schedule: schedule,
                                    labelSmoothing: Double(labelSmoothing), augmentPadding: augmentation?.cropPadding ?? 0)
        do { try config.validate("train") } catch { throw ValidationError("\(error)") }
        let parameterCount = try spec.build(seed: seed).parameterCount
        print("apsweep train: \(model.rawValue) (\(parameterCount) parameters) on \(source.name): \(trainSet.count) train, \(testSet.count) test images, loaded in \(String(format: "%.2f", loadSeconds)) s; \(BLAS.summary)")
        let progress = ProgressLine(enabled: stdoutIsTerminal)
        let started = Date()
        let result = try Runner.runBaseline(BaselineTask(model: spec, training: config, seed: seed), data: Shard(name: shard.name, train: limit.map { LabeledImages(trainSet, first: $0) } ?? trainSet, test: testSet),
                                            onStep: { epoch, step, steps, loss, acc, rate in
            progress.update(String(format: "epoch %d/%d step %d/%d loss %.4f acc %.2f%% %.0f img/s", epoch, epochs, step, steps, loss, acc, rate))
        }) { r in
            progress.finish()
            print(String(format: "epoch %d/%d  lr %.4g  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  %.1f s",
                         r.epoch, epochs, r.learningRate, r.trainLoss, r.trainAccuracy, r.testLoss, r.testAccuracy, r.seconds))
        }
        try Checkpoint.write(result, spec: spec, to: out)
        let run: [String: Any] = [
            "apsweep_version": APSweep.version,
            "model": model.rawValue, "width": width, "parameters": parameterCount,
            "dataset": source.name, "dataset_fingerprint": shard.fingerprint, "shard": [shard.index, shard.count],
            "input_shape": inputShape, "classes": trainSet.classes,
            "augmentation": augmentation.map { "crop \($0.cropPadding) + flip" } ?? "none",
            "optimizer": optimizer.rawValue, "lr": config.lr, "momentum": config.momentum, "nesterov": nesterov,
            "weight_decay": config.weightDecay, "schedule": schedule.rawValue, "batch": batch, "epochs": epochs,
            "seed": seed, "threads": BLAS.threads, "blas_core": BLAS.coreName,
            "data_load_seconds": loadSeconds, "train_seconds": Date().timeIntervalSince(started),
            "final": ["train_accuracy": result.trainAccuracy, "test_accuracy": result.testAccuracy,
                      "train_loss": result.trainLoss, "test_loss": result.testLoss],
            "history": result.history.map { ["epoch": $0.epoch, "lr": $0.learningRate, "train_loss": $0.trainLoss,
                                              "train_accuracy": $0.trainAccuracy, "test_loss": $0.testLoss,
                                              "test_accuracy": $0.testAccuracy, "seconds": $0.seconds] },
        ]
        let jsonPath = (out as NSString).deletingPathExtension + ".json"
        try JSONSerialization.data(withJSONObject: run, options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: jsonPath))
        print("wrote \(out) and \(jsonPath)")
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

extension LabeledImages {
    /// The first `n` images (for quick checks with --limit).
    init(_ all: LabeledImages, first n: Int) {
        let k = Swift.min(n, all.count), per = all.imageShape.reduce(1, *)
        self.init(partOf: all, pixels: Array(all.pixels[0..<(k * per)]), labels: Array(all.labels[0..<k]))
    }
}
