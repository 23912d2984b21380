import Analysis
import ArgumentParser
import Foundation
import NeuralCore

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print figures and ratios (never part of the tests).",
        subcommands: [BenchTrain.self, BenchMetrics.self, BenchFineTune.self, BenchWire.self, BenchSweep.self, BenchScale.self])
}

/// Training throughput of apsweep's core, side by side with PyTorch's CPU build in the same run.
///
/// The two alternate in short paired rounds (apsweep then PyTorch, then the other way round) and
/// the ratio is the median of the rounds' ratios: on a shared VM the speed of both drifts by ±20 %
/// over a minute, and a ratio of two measurements taken a minute apart drifted with it.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training images/s of zoo architectures (default LeNet-5 and vgg-small, Fashion-MNIST-shaped), with PyTorch's ratio when torch is available.")

    @Option(parsing: .upToNextOption, help: "Models to measure.") var models: [Architecture] = [.lenet5, .vggSmall]
    @Option(parsing: .upToNextOption, help: "Thread counts to measure.") var threads: [Int] = [1, 2]
    @Option(help: "Batch size.") var batch = 128
    @Option(help: "Input CxHxW (3x32x32 for CIFAR-shaped batches).") var input = "1x28x28"
    @Option(help: "Seconds each side is measured per configuration (after warm-up), split over the rounds.") var seconds = 6.0
    @Option(help: "Paired rounds per configuration (each at least 3 steps per side).") var rounds = 6
    @Option(help: "Python with torch for the side-by-side run (default: $APSWEEP_TORCH_PYTHON, .venv-torch/bin/python, /opt/torchvenv/bin/python). 'none' skips PyTorch.")
    var torchPython: String?

    func validate() throws {
        _ = try parseShape(input)
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
    }

    /// The model measured: the zoo's defaults at this input (ViT: dim 64, 4 layers, 4 heads, the
    /// patch 7, 8 or 4 that divides the image).
    func spec(_ arch: Architecture) throws -> ModelSpec {
        let shape = try parseShape(input)
        return ModelSpec(arch, inputShape: shape, patch: shape[1] % 7 == 0 ? 7 : (shape[1] % 8 == 0 ? 8 : 4))
    }

    func run() throws {
        try BLAS.load()
        Allocator.keepFreedMemory()
        signal(SIGPIPE, SIG_IGN)   // a twin that dies is reported, not fatal
        print("apsweep bench train: batch \(batch), input \(describeShape(try parseShape(input))), 10 classes, SGD momentum 0.9; \(BLAS.summary.replacingOccurrences(of: ", \(BLAS.threads) threads", with: "").replacingOccurrences(of: ", 1 thread", with: "")); compiled for \(Compute.compiledFor.isEmpty ? "this architecture" : Compute.compiledFor)")
        let python = resolveTorchPython()
        if python == nil { print("PyTorch: not found (set --torch-python or run Scripts/torch-venv); printing apsweep's figures only") }
        else { print("\(rounds) paired rounds of \(String(format: "%.2g", seconds / Double(rounds))) s per side; img/s and ratio are medians over the rounds, range = lowest–highest round ratio") }
        let widths = [10, 9, 16, 16, 7, 12]
        func line(_ cells: [String]) -> String {
            zip(cells, widths).map { $0.0.padding(toLength: $0.1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }
        print(line(["model", "threads", "apsweep img/s", "pytorch img/s", "ratio", "range"]))
        for model in models {
            for t in threads {
                BLAS.threads = t
                Compute.threads = t
                let twin = python.flatMap { TorchTwin(python: $0, arguments: torchArguments(model, threads: t)) }
                let ours = try OwnRun(spec(model), batch: batch)
                let segment = seconds / Double(rounds)
                var own: [Double] = [], theirs: [Double] = [], ratios: [Double] = []
                for r in 0..<rounds {
                    var a = 0.0, b: Double?
                    if r % 2 == 0 {
                        a = try ours.imagesPerSecond(segment)
                        b = twin?.imagesPerSecond(segment)
                    } else {
                        b = twin?.imagesPerSecond(segment)
                        a = try ours.imagesPerSecond(segment)
                    }
                    own.append(a)
                    if let b {
                        theirs.append(b)
                        ratios.append(a / b)
                    }
                }
                twin?.close()
                let complete = python != nil && ratios.count == rounds
                if python != nil && !complete { print("PyTorch: \(model.rawValue) at \(t) thread\(t == 1 ? "" : "s") failed (run Scripts/bench_torch.py --model \(model.rawValue) by hand to see why)") }
                print(line([model.rawValue, String(t), String(format: "%.0f", median(own)),
                            complete ? String(format: "%.0f", median(theirs)) : "–",
                            complete ? String(format: "%.2f×", median(ratios)) : "–",
                            complete ? String(format: "%.2f–%.2f", ratios.min()!, ratios.max()!) : "–"]))
            }
        }
    }

    private func median(_ values: [Double]) -> Double { quantile(values.sorted(), 0.5) }

    private func resolveTorchPython() -> String? {
        if torchPython == "none" { return nil }
        var candidates: [String] = []
        if let p = torchPython { candidates.append(p) }
        if let env = ProcessInfo.processInfo.environment["APSWEEP_TORCH_PYTHON"] { candidates.append(env) }
        candidates += [".venv-torch/bin/python", "/opt/torchvenv/bin/python"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Scripts/bench_torch.py's arguments for one configuration, in its serving mode.
    private func torchArguments(_ model: Architecture, threads: Int) -> [String] {
        let patch = (try? spec(model).patch) ?? 7
        return [scriptsDirectory().appendingPathComponent("bench_torch.py").path, "--serve", "--model", model.rawValue,
                "--threads", String(threads), "--batch", String(batch), "--input", input, "--patch", String(patch)]
    }
}

/// One zoo model training on a fixed random batch, built and warmed up once, measured in rounds.
private final class OwnRun {
    let trainer: Trainer, x: Tensor, labels: [Int], batch: Int

    init(_ spec: ModelSpec, batch: Int) throws {
        let model = try spec.build(seed: 1)
        trainer = Trainer(model: model, optimizer: SGD(model.parameters, learningRate: 0.01, momentum: 0.9))
        var rng = SeededGenerator(seed: 2)
        let size = batch * spec.inputShape.reduce(1, *)
        x = Tensor(shape: [batch] + spec.inputShape, unsafeUninitialized: { p in
            for i in 0..<size { p[i] = Float(rng.nextNormal()) }
        })
        labels = (0..<batch).map { _ in Int(rng.next() % 10) }
        self.batch = batch
        for _ in 0..<3 { try trainer.step(x, labels: labels) }
    }

    /// Training images/s over at least `seconds` and at least 3 steps.
    func imagesPerSecond(_ seconds: Double) throws -> Double {
        var steps = 0
        let start = Date()
        while Date().timeIntervalSince(start) < seconds || steps < 3 {
            try trainer.step(x, labels: labels)
            steps += 1
        }
        return Double(steps * batch) / Date().timeIntervalSince(start)
    }
}

/// Scripts/bench_torch.py in its serving mode: the PyTorch twin built and warmed up once, then
/// measured round by round over a pipe. Every failure (no torch, a model it lacks, a crash) makes
/// it nil rather than an error, since PyTorch is only the comparison.
private final class TorchTwin {
    private let process = Process()
    private let toChild = Pipe(), fromChild = Pipe()
    private var pending = Data()

    init?(python: String, arguments: [String]) {
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = arguments
        process.standardInput = toChild
        process.standardOutput = fromChild
        do { try process.run() } catch { return nil }
        guard readLine() == "ready" else {
            close()
            return nil
        }
    }

    func imagesPerSecond(_ seconds: Double) -> Double? {
        guard process.isRunning else { return nil }
        guard (try? toChild.fileHandleForWriting.write(contentsOf: Data("measure \(seconds)\n".utf8))) != nil else { return nil }
        return readLine().flatMap { Double($0) }
    }

    func close() {
        try? toChild.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    /// The child's next line of output, nil at its end.
    private func readLine() -> String? {
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                pending = Data(pending[(newline + 1)...])
                return line.trimmingCharacters(in: .whitespaces)
            }
            let more = fromChild.fileHandleForReading.availableData
            if more.isEmpty { return nil }
            pending.append(more)
        }
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
