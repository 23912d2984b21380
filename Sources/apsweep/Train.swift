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
    @Option(help: "Data set: \(IDXDataset.allCases.map(\.rawValue).joined(separator: ", ")).")
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
    @Option(help: "Output checkpoint (.safetensors); a .json of the run is written next to it.")
    var out: String = "base.safetensors"
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard IDXDataset(rawValue: dataset) != nil else {
            throw ValidationError("--dataset \(dataset) is not known; use one of \(IDXDataset.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let lr, !(lr > 0) { throw ValidationError("--lr must be positive") }
    }

    func run() throws {
        try compute.apply()
        let source = IDXDataset(rawValue: dataset)!
        let loadStart = Date()
        let trainSet: LabeledImages, testSet: LabeledImages
        do {
            trainSet = try source.load(directory: data, train: true)
            testSet = try source.load(directory: data, train: false)
        } catch {
            throw CLIError("cannot load \(dataset): \(error)")
        }
        let loadSeconds = Date().timeIntervalSince(loadStart)
        let spec = ModelSpec(model, width: width, inputShape: trainSet.imageShape, classes: trainSet.classes)
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
            let batches = Batches(trainSet, batchSize: batch, shuffleSeed: seed, epoch: epoch)
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
            let (testLoss, testAcc) = try evaluate(trainer, testSet)
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
            "dataset": dataset, "input_shape": trainSet.imageShape, "classes": trainSet.classes,
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

    private func evaluate(_ trainer: Trainer, _ set: LabeledImages) throws -> (Double, Double) {
        var loss = 0.0, correct = 0
        for (x, y) in Batches(set, batchSize: 500, shuffleSeed: nil) {
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
