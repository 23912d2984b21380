import ArgumentParser
import Compression
import Datasets
import Experiment
import Foundation
import NeuralCore
import Records

/// AP2 and Gaussian AP3 over a VGG16-sized weight vector, side by side with NumPy.
struct BenchMetrics: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "metrics",
        abstract: "Seconds for AP2 + Gaussian AP3 over N Float32 weights (default 138 M, VGG16's size) on one thread, and NumPy's time in the same run.")
    @Option(help: "Number of weights.") var weights = 138_000_000
    @Option(help: "Python with numpy (default: python3; 'none' skips NumPy).") var python = "python3"

    func run() throws {
        let n = weights
        var rng = SeededGenerator(seed: 0)
        var a = Tensor(shape: [n]), b = Tensor(shape: [n])
        a.withMutablePointer { p in for i in 0..<n { p[i] = Float(rng.nextNormal()) } }
        b = a
        b.withMutablePointer { p in for i in stride(from: 0, to: n, by: 2) { p[i] = 0 } }
        let variant = try MetricVariant(parsing: "gaussian:sigma2=1")
        var best = Double.infinity, ap2 = 0.0, ap3 = 0.0
        for _ in 0..<3 {
            let t = Date()
            let stats = try PairAccumulator.statistics(original: a, pruned: b, projection: variant.projection)
            ap2 = stats.ap2
            ap3 = stats.klGaussian
            best = min(best, Date().timeIntervalSince(t))
        }
        print(String(format: "apsweep: AP2 %.6e, AP3 %.6e over %d weights: %.3f s (best of 3, 1 thread, Float64 sums)", ap2, ap3, n, best))
        guard python != "none" else { return }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, scriptsDirectory().appendingPathComponent("bench_metrics_numpy.py").path, String(n)]
        let pipe = Pipe()
        process.standardOutput = pipe
        var env = ProcessInfo.processInfo.environment
        env["OMP_NUM_THREADS"] = "1"; env["OPENBLAS_NUM_THREADS"] = "1"
        process.environment = env
        do { try process.run() } catch { print("NumPy: cannot run \(python): \(error)"); return }
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard let numpy = out.split(separator: "\n").last.flatMap({ Double($0) }) else { print("NumPy: no result (is numpy installed?)"); return }
        print(String(format: "NumPy:   %.3f s (float64 dot of the difference, 1 thread)   ratio NumPy/apsweep %.1f×", numpy, numpy / best))
    }
}

/// The paper's protocol for one configuration with and without cached features.
struct BenchFineTune: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "finetune",
        abstract: "Last-layer fine-tuning of a pruned model: cached features vs the whole network every epoch, same task, same numbers.")
    @Option(help: "Model.") var model: Architecture = .vggSmall
    @Option(help: "Fine-tuning epochs.") var epochs = 20
    @Option(help: "Training images used (the whole set when omitted).") var images: Int?
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.apply()
        let whole = try IDXDataset.fashionMNIST.load(train: true), test = try IDXDataset.fashionMNIST.load(train: false)
        let train = images.map { LabeledImages(whole, first: $0) } ?? whole
        let data = Shard(name: "fashion-mnist", train: train, test: test)
        let spec = ModelSpec(model)
        // A baseline from one short epoch: the benchmark measures fine-tuning, not accuracy.
        let base = try Runner.runBaseline(BaselineTask(model: spec, training: TrainingConfig(epochs: 1), seed: 1),
                                          data: Shard(name: "fashion-mnist", train: LabeledImages(whole, first: 2048), test: LabeledImages(test, first: 500)))
        var task = PruneTask(method: .lowest, sparsity: 0.5, seed: 1, fineTune: TrainingConfig(epochs: epochs))
        var times: [Double] = [], finals: [EpochRecord] = []
        for cached in [true, false] {
            task.cacheFeatures = cached
            let t = Date()
            let records = try Runner.runPrune(task, model: spec, baseline: base, data: data)
            times.append(Date().timeIntervalSince(t))
            finals.append(records.last!)
            print(String(format: "%@: %d epochs in %.2f s; final test accuracy %.2f%%, AP2 %.6g",
                         cached ? "cached features" : "whole network  ", epochs, times.last!, records.last!.testAccuracy, records.last!.totalMetrics!["ap2"]!))
        }
        print(String(format: "speed-up %.1f× (%@, %d train images, %d epochs); |Δ test accuracy| %.3f points",
                     times[1] / times[0], model.rawValue, train.count, epochs, abs(finals[0].testAccuracy - finals[1].testAccuracy)))
    }
}
