import ArgumentParser
import Datasets
import Experiment
import Foundation
import NeuralCore

/// `apsweep eval CKPT`: the accuracy and mean cross-entropy of a checkpoint on a data set's
/// split, measured as a sweep measures its baselines (eval mode, no label smoothing) — the
/// numbers the performance difference is built on.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accuracy and mean cross-entropy loss of a checkpoint on a data set's test (or train) split.")

    enum Split: String, ExpressibleByArgument, CaseIterable { case test, train }

    @Argument(help: "The checkpoint (.safetensors; apsweep's own, or PyTorch's state_dict with --model).") var checkpoint: String
    @Option(help: "Architecture, for checkpoints without apsweep metadata (e.g. written by PyTorch).") var model: Architecture?
    @Option(help: "Width multiplier (with --model).") var width: Double = 1
    @Option(help: "Model input CxHxW (with --model; default: the data's image shape).") var input: String?
    @Option(help: "Classes (with --model; default: the data set's).") var classes: Int?
    @Option(help: "Data set: fashion-mnist, mnist, cifar10, cifar100, or an .apshard file.") var dataset = "fashion-mnist"
    @Option(help: "Directory holding the data set's files (default: where Debian's package puts them).") var data: String?
    @Option(help: "Which split: test or train.") var split: Split = .test
    @Flag(help: "Print JSON instead of a line.") var json = false
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if let input { _ = try parseShape(input) }
        if let classes, classes < 2 { throw ValidationError("--classes must be at least 2") }
        if model == nil && (input != nil || classes != nil) { throw ValidationError("--input and --classes describe the model: give --model too") }
    }

    func run() throws {
        try compute.apply()
        let source: DataSource
        do { source = try DataSource.parse(dataset, directory: data) } catch { throw ValidationError("--dataset: \(error)") }
        let shard: Shard
        do { shard = try source.load() } catch { throw CLIError("cannot load \(dataset): \(error)") }
        let images = split == .test ? shard.test : shard.train
        let spec: ModelSpec
        let net: Model
        do {
            let (entries, metadata) = try Safetensors.read(path: checkpoint)
            if let model {
                spec = ModelSpec(model, width: width, inputShape: try input.map(parseShape) ?? images.imageShape, classes: classes ?? images.classes)
            } else if let text = metadata["apsweep.spec"], let s = try? JSONDecoder().decode(ModelSpec.self, from: Data(text.utf8)) {
                spec = s
            } else {
                throw CLIError("\(checkpoint) carries no apsweep model description (written by PyTorch?): give --model (and --width, --input, --classes if they differ from the data's)")
            }
            net = try Checkpoint.model(entries.mapValues(\.tensor), spec: spec, path: checkpoint)
        } catch let e as CLIError { throw e } catch {
            throw CLIError("\(error)")
        }
        let (loss, accuracy): (Double, Double)
        do { (loss, accuracy) = try Runner.evaluate(net, images, labelSmoothing: 0) } catch { throw CLIError("\(error)") }
        let correct = Int((accuracy / 100 * Double(images.count)).rounded())
        if json {
            let object: [String: Any] = ["checkpoint": checkpoint, "model": spec.name, "width": spec.width, "input_shape": spec.inputShape,
                                         "classes": spec.classes, "dataset": source.name, "split": split.rawValue, "images": images.count,
                                         "correct": correct, "accuracy": accuracy, "loss": loss]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "%@ (%@, %d parameters) on %@ %@: accuracy %.2f%% (%d of %d), mean cross-entropy %.4f",
                         checkpoint, spec.name, net.parameterCount, source.name, split.rawValue, accuracy, correct, images.count, loss))
        }
    }
}
