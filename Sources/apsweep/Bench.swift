import ArgumentParser
import Foundation
import NeuralCore

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print figures and ratios (never part of the tests).",
        subcommands: [BenchTrain.self, BenchMetrics.self, BenchFineTune.self, BenchWire.self, BenchSweep.self, BenchScale.self])
}

/// Training throughput of apsweep's core, side by side with PyTorch's CPU build in the same run.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training images/s of zoo architectures (default LeNet-5 and vgg-small, Fashion-MNIST-shaped), with PyTorch's ratio when torch is available.")

    @Option(parsing: .upToNextOption, help: "Models to measure.") var models: [Architecture] = [.lenet5, .vggSmall]
    @Option(parsing: .upToNextOption, help: "Thread counts to measure.") var threads: [Int] = [1, 2]
    @Option(help: "Batch size.") var batch = 128
    @Option(help: "Input CxHxW (3x32x32 for CIFAR-shaped batches).") var input = "1x28x28"
    @Option(help: "Seconds to measure each configuration (after warm-up).") var seconds = 4.0
    @Option(help: "Python with torch for the side-by-side run (default: $APSWEEP_TORCH_PYTHON, .venv-torch/bin/python, /opt/torchvenv/bin/python). 'none' skips PyTorch.")
    var torchPython: String?

    func validate() throws { _ = try parseShape(input) }

    /// The model measured: the zoo's defaults at this input (ViT: dim 64, 4 layers, 4 heads, the
    /// patch 7, 8 or 4 that divides the image).
    func spec(_ arch: Architecture) throws -> ModelSpec {
        let shape = try parseShape(input)
        return ModelSpec(arch, inputShape: shape, patch: shape[1] % 7 == 0 ? 7 : (shape[1] % 8 == 0 ? 8 : 4))
    }

    func run() throws {
        try BLAS.load()
        Allocator.keepFreedMemory()
        print("apsweep bench train: batch \(batch), input \(describeShape(try parseShape(input))), 10 classes, SGD momentum 0.9; \(BLAS.summary.replacingOccurrences(of: ", \(BLAS.threads) threads", with: "").replacingOccurrences(of: ", 1 thread", with: ""))")
        let python = resolveTorchPython()
        if python == nil { print("PyTorch: not found (set --torch-python or run Scripts/torch-venv); printing apsweep's figures only") }
        print(zip(["model", "threads", "apsweep img/s", "pytorch img/s", "ratio"], [10, 9, 16, 16, 6])
            .map { $0.0.padding(toLength: $0.1, withPad: " ", startingAt: 0) }.joined(separator: "  "))
        for model in models {
            for t in threads {
                BLAS.threads = t
                Compute.threads = t
                let ours = try measure(model)
                var theirs: Double?
                if let python { theirs = torchImagesPerSecond(python: python, model: model, threads: t) }
                let ratio = theirs.map { String(format: "%.2f×", ours / $0) } ?? "–"
                let cells = [model.rawValue, String(t), String(format: "%.0f", ours), theirs.map { String(format: "%.0f", $0) } ?? "–", ratio]
                print(zip(cells, [10, 9, 16, 16, 6]).map { $0.0.padding(toLength: $0.1, withPad: " ", startingAt: 0) }.joined(separator: "  "))
            }
        }
    }

    private func measure(_ arch: Architecture) throws -> Double {
        let spec = try self.spec(arch)
        let model = try spec.build(seed: 1)
        let trainer = Trainer(model: model, optimizer: SGD(model.parameters, learningRate: 0.01, momentum: 0.9))
        var rng = SeededGenerator(seed: 2)
        let x = Tensor(shape: [batch] + spec.inputShape, unsafeUninitialized: { p in
            for i in 0..<(batch * spec.inputShape.reduce(1, *)) { p[i] = Float(rng.nextNormal()) }
        })
        let labels = (0..<batch).map { _ in Int(rng.next() % 10) }
        for _ in 0..<3 { try trainer.step(x, labels: labels) }
        var steps = 0
        let start = Date()
        while Date().timeIntervalSince(start) < seconds || steps < 3 {
            try trainer.step(x, labels: labels)
            steps += 1
        }
        return Double(steps * batch) / Date().timeIntervalSince(start)
    }

    private func resolveTorchPython() -> String? {
        if torchPython == "none" { return nil }
        var candidates: [String] = []
        if let p = torchPython { candidates.append(p) }
        if let env = ProcessInfo.processInfo.environment["APSWEEP_TORCH_PYTHON"] { candidates.append(env) }
        candidates += [".venv-torch/bin/python", "/opt/torchvenv/bin/python"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs Scripts/bench_torch.py for one configuration and reads its images/s.
    private func torchImagesPerSecond(python: String, model: Architecture, threads: Int) -> Double? {
        let script = scriptsDirectory().appendingPathComponent("bench_torch.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        guard let spec = try? self.spec(model) else { return nil }
        process.arguments = [script, "--model", model.rawValue, "--threads", String(threads),
                             "--batch", String(batch), "--seconds", String(seconds), "--input", input, "--patch", String(spec.patch)]
        let pipe = Pipe()
        process.standardOutput = pipe
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").last.flatMap { Double($0.trimmingCharacters(in: .whitespaces)) }
    }
}

/// Scripts/ of the source tree: found from the working directory or from the executable's path.
func scriptsDirectory() -> URL {
    let fm = FileManager.default
    if fm.fileExists(atPath: "Scripts/bench_torch.py") { return URL(fileURLWithPath: "Scripts") }
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<5 {
        let candidate = dir.appendingPathComponent("Scripts")
        if fm.fileExists(atPath: candidate.appendingPathComponent("bench_torch.py").path) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return URL(fileURLWithPath: "Scripts")
}
