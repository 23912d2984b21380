import Compression
@testable import Experiment
import Foundation
import NeuralCore
import XCTest

/// Task ids are SHA-256 of a task's canonical JSON, so the hand-written writer must produce the
/// very bytes Foundation's JSONEncoder (sorted keys) produces — for every field of every task
/// type, for awkward strings and numbers alike. A field added to a task type but not to the
/// writer fails here.
final class CanonicalJSONTests: XCTestCase {
    func testBytesEqualJSONEncoderOverRandomTasks() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 11 }
        func pick<T>(_ xs: [T]) -> T { xs[Int(next() % UInt64(xs.count))] }
        let doubles: [Double] = [0, -0.0, 1, 20, 0.05, 5e-4, 1e-5, 2.5e-7, 1e16, 1e20, 0.1 + 0.2, 123456789012345678, 0.95, -3.25, .leastNonzeroMagnitude, 1 / 3]
        let floats: [Float] = [0, 0.1, 0.5, 1e-8, 3, 0.3]
        let strings = ["", "plain", "a/b", "quote\"d", "back\\slash", "tab\t", "nl\n", "cr\r", "\u{1}\u{8}\u{c}\u{1f}", "é😀", "\u{7f}\u{2028}",
                       "gaussian:sigma2=1", "gaussian-diag:file=/data/vars.safetensors", "layers:features.0.weight,classifier.4.weight"]
        func training() -> TrainingConfig {
            TrainingConfig(epochs: Int(next() % 200), batch: Int(next() % 512) + 1, optimizer: pick(TrainingConfig.OptimizerKind.allCases), lr: pick(doubles),
                           momentum: pick(doubles), nesterov: next() % 2 == 0, weightDecay: pick(doubles), schedule: pick(TrainingConfig.ScheduleKind.allCases),
                           stepEvery: Int(next() % 10), stepGamma: pick(doubles), labelSmoothing: pick(doubles), augmentPadding: Int(next() % 5))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        for i in 0..<3000 {
            let model = ModelSpec(pick(Architecture.allCases), width: pick(doubles), inputShape: (0..<Int(next() % 4)).map { _ in Int(next() % 300) },
                                  classes: Int(next() % 1000), patch: Int(next() % 16), dim: Int(next() % 512), depth: Int(next() % 12),
                                  heads: Int(next() % 8), mlpDim: next() % 2 == 0 ? nil : Int(next() % 2048), dropout: pick(floats))
            let prune = next() % 3 == 0 ? nil : PruneTask(method: pick(PruningMethod.allCases), sparsity: pick(doubles), scope: pick(strings), seed: next(),
                                                         fineTune: training(), mode: pick(FineTuneMode.allCases), trainBias: next() % 2 == 0,
                                                         cacheFeatures: next() % 2 == 0, metrics: (0..<Int(next() % 4)).map { _ in pick(strings) })
            var task = SweepTask(kind: pick([.baseline, .prune, .noop]), model: model, dataset: pick(strings), shardIndex: Int(next() % 8),
                                 shardCount: Int(next() % 8) + 1, seed: i % 7 == 0 ? UInt64.max : next(), training: next() % 2 == 0 ? training() : nil,
                                 prune: prune, baseline: next() % 2 == 0 ? nil : pick(strings))
            if next() % 5 == 0 { task.sleepMs = Int(next() % 100_000) }
            if next() % 4 == 0 { task.start = String(format: "%016llx", next()) + "\u{e9}\"\\" }
            let expected = Array(try encoder.encode(task))
            let got = try task.canonicalJSON()
            if got != expected {
                XCTFail("task \(i):\n  JSONEncoder: \(String(decoding: expected, as: UTF8.self))\n  canonical:   \(String(decoding: got, as: UTF8.self))")
                return
            }
            XCTAssertEqual(try SweepTask.decode(got), task, "task \(i) reads back")
        }
    }
}
