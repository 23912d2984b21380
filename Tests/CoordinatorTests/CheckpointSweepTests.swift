import Foundation
import Journal
import Scheduling
import XCTest

/// Sweeps that start from checkpoints a lab already has (`models[i].checkpoint(s)`), on the real
/// binary: the checkpoint is the baseline (or is trained first), prune tasks start from its
/// weights, a changed file on resume and a file of another network are refused by name, and
/// `apsweep eval` measures what the sweep measures.
final class CheckpointSweepTests: XCTestCase {
    var h: BinaryHarness!

    override func setUpWithError() throws {
        h = try BinaryHarness("checkpoints")
        try XCTSkipUnless(h.available, "apsweep is not built next to the tests")
    }
    override func tearDown() { h.cleanUp() }

    /// Trains a small LeNet-5 on the scratch data with apsweep itself (any safetensors with the
    /// model's keys would do; ModelTests covers PyTorch-written ones).
    func trainCheckpoint(_ name: String, seed: Int = 0, width: Double = 0.25) throws -> String {
        let out = try h.run(["train", "--dataset", "fashion-mnist", "--data", h.dir + "/data", "--model", "lenet5", "--width", "\(width)",
                             "--epochs", "1", "--batch", "64", "--seed", "\(seed)", "--threads", "1", "--out", h.dir + "/" + name])
        XCTAssertEqual(out.status, 0, out.stderr)
        return h.dir + "/" + name
    }

    func writeSweep(_ models: String, fineTuneEpochs: Int = 1) throws -> String {
        let path = h.dir + "/sweep.yaml"
        try """
            name: from-checkpoints
            data: {dataset: fashion-mnist}
            models: \(models)
            prune: {methods: [lowest], sparsities: [0.5], fine_tune: {epochs: \(fineTuneEpochs), batch: 64}, metrics: [gaussian:sigma2=1]}
            max_attempts: 1
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Rows of results.csv as dictionaries.
    func results(_ run: String = "run") throws -> [[String: String]] {
        let lines = try String(contentsOfFile: "\(h.dir)/\(run)/results.csv", encoding: .utf8).split(separator: "\n").map(String.init)
        let header = lines[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        return lines.dropFirst().map { line in
            Dictionary(uniqueKeysWithValues: zip(header, line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)))
        }
    }

    func testASweepFromACheckpointPrunesItsWeights() throws {
        let ck = try trainCheckpoint("ck.safetensors")
        // Relative to the sweep file; the second model trains all layers from it first.
        let file = try writeSweep("[{architecture: lenet5, width: 0.25, checkpoint: ck.safetensors}, {architecture: lenet5, width: 0.25, checkpoint: ck.safetensors, baseline: {epochs: 1, batch: 64}}]")
        let out = try h.run(h.sweepArguments(file), timeout: 240)
        XCTAssertEqual(out.status, 0, out.stderr + out.stdout)
        var hash = ""
        try h.read { j in
            let tasks = try j.tasks()
            XCTAssertEqual(tasks.count, 4)
            XCTAssert(tasks.allSatisfy { $0.row.state == .done })
            hash = try XCTUnwrap(try j.meta("checkpoint:" + ck))
            XCTAssertEqual(tasks.filter { $0.task.requiredBlob == hash }.count, 2, "both baselines start from the file's blob")
        }
        XCTAssert(FileManager.default.fileExists(atPath: "\(h.dir)/run/blobs/\(hash)"))
        let rows = try results()
        XCTAssertEqual(rows.filter { $0["kind"] == "baseline" }.count, 1, "the checkpoint as baseline has no training epochs; the trained one has 1")
        // AP2 at epoch 0 of the prune task on the untouched checkpoint = AP2 between the file and
        // its pruned copy, computed directly.
        XCTAssertEqual(try h.run(["prune", "--checkpoint", ck, "--method", "lowest", "--sparsity", "0.5", "--out", h.dir + "/pruned.safetensors"]).status, 0)
        let metrics = try h.run(["metrics", ck, h.dir + "/pruned.safetensors", "--json"])
        let layers = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(metrics.stdout.utf8)) as? [[String: Any]])
        let direct = try XCTUnwrap(layers.first { $0["layer"] as? String == "total" }?["ap2"] as? Double)
        XCTAssertGreaterThan(direct, 0)
        let epoch0 = rows.filter { $0["kind"] == "prune" && $0["epoch"] == "0" }
        XCTAssertEqual(epoch0.count, 2)
        let fromFile = try XCTUnwrap(epoch0.compactMap { Double($0["ap2"] ?? "") }.first { abs($0 - direct) <= 1e-9 * direct },
                                     "epoch-0 AP2s \(epoch0.map { $0["ap2"] ?? "" }) vs \(direct)")
        XCTAssertEqual(fromFile, direct, accuracy: 1e-9 * direct)
        XCTAssert(epoch0.contains { abs((Double($0["ap2"] ?? "") ?? 0) - direct) > 1e-6 * direct }, "the trained baseline's weights moved")
        // The baseline accuracy the PD is built on is what `apsweep eval` measures.
        let eval = try h.run(["eval", ck, "--data", h.dir + "/data", "--json"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let accuracy = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])?["accuracy"] as? Double)
        let row = try XCTUnwrap(epoch0.first { abs((Double($0["ap2"] ?? "") ?? 0) - direct) <= 1e-9 * direct })
        let pd = try XCTUnwrap(Double(row["pd_test"] ?? "")), pruned = try XCTUnwrap(Double(row["test_accuracy"] ?? ""))
        XCTAssertEqual(pruned + pd, accuracy, accuracy: 1e-6, "PD = baseline accuracy − pruned accuracy, the baseline measured as eval does")
    }

    func testAChangedCheckpointOnResumeIsRefusedByName() throws {
        let ck = try trainCheckpoint("ck.safetensors")
        let file = try writeSweep("[{architecture: lenet5, width: 0.25, checkpoints: [ck.safetensors]}]", fineTuneEpochs: 30)
        // Stopped mid-sweep, then the file is replaced by another training.
        let first = try h.start(h.sweepArguments(file))
        try h.waitUntil(120, "the sweep to start") { (self.h.journal().map { j in defer { j.close() }; return (try? j.events(kind: "leased").count) ?? 0 } ?? 0) >= 1 }
        kill(first.processIdentifier, SIGINT)
        try h.wait(first, timeout: 60)
        _ = try trainCheckpoint("ck.safetensors", seed: 7)
        let again = try h.run(h.sweepArguments(file), timeout: 60)
        XCTAssertNotEqual(again.status, 0)
        XCTAssert(again.stderr.contains("models[0].checkpoints[0]: \(ck) changed since this journal was planned"), again.stderr)
        try h.read { j in XCTAssertEqual(try j.events(kind: "plan").count, 1, "nothing new was planned") }
    }

    func testACheckpointOfAnotherNetworkIsRefusedBeforeAnythingIsJournaled() throws {
        _ = try trainCheckpoint("wide.safetensors", width: 0.5)
        let file = try writeSweep("[{architecture: lenet5, width: 0.25, checkpoint: wide.safetensors}]")
        let out = try h.run(h.sweepArguments(file), timeout: 60)
        XCTAssertNotEqual(out.status, 0)
        XCTAssert(out.stderr.contains("models[0].checkpoint: \(h.dir)/wide.safetensors does not fit lenet5"), out.stderr)
        XCTAssert(out.stderr.contains("features.0.weight: model [2, 1, 5, 5], file [3, 1, 5, 5]"), out.stderr)
        try h.read { j in XCTAssertEqual(try j.tasks().count, 0) }
        let missing = try writeSweep("[{architecture: lenet5, width: 0.25, checkpoint: gone.safetensors}]")
        let gone = try h.run(h.sweepArguments(missing, run: "run2"), timeout: 60)
        XCTAssertNotEqual(gone.status, 0)
        XCTAssert(gone.stderr.contains("models[0].checkpoint: cannot read \(h.dir)/gone.safetensors"), gone.stderr)
    }

    func testEvalRefusesDataTheModelCannotTake() throws {
        let ck = try trainCheckpoint("ck.safetensors")
        let wrong = try h.run(["eval", ck, "--data", h.dir + "/data", "--model", "lenet5", "--classes", "5", "--width", "0.25"])
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssert(wrong.stderr.contains("classifier.4.weight: model [5, 21], file [10, 21]"), wrong.stderr)
        let few = try h.run(["eval", ck, "--data", h.dir + "/data"])
        XCTAssertEqual(few.status, 0, few.stderr)
        XCTAssert(few.stdout.contains("on fashion-mnist test: accuracy"), few.stdout)
        XCTAssert(few.stdout.contains("of 128)"), few.stdout)
    }
}

/// A sweep on an image folder (`data: {dataset: folder:16, path: images}`), end to end on the
/// real binary, with the fixture images of DatasetsTests.
final class ImageFolderSweepTests: XCTestCase {
    var h: BinaryHarness!

    override func setUpWithError() throws {
        h = try BinaryHarness("imagefolder")
        try XCTSkipUnless(h.available, "apsweep is not built next to the tests")
    }
    override func tearDown() { h.cleanUp() }

    func testASweepRunsOnAnImageFolderGivenInTheSweepFile() throws {
        let images = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("DatasetsTests/Fixtures/images").path
        for (c, cls) in ["a", "b", "c"].enumerated() {
            try FileManager.default.createDirectory(atPath: "\(h.dir)/imgs/\(cls)", withIntermediateDirectories: true)
            for (i, f) in ["rgb.png", "photo.jpg", "gray.png", "rgba.png", "gray.jpg", "photo.jpg"].enumerated() {
                try FileManager.default.copyItem(atPath: "\(images)/\(f)", toPath: "\(h.dir)/imgs/\(cls)/\(c)-\(i)-\(f)")
            }
        }
        try """
            name: folder-sweep
            data: {dataset: "folder:16", path: imgs}
            models: [{architecture: lenet5, width: 0.25, input_shape: [3, 16, 16], classes: 3}]
            trials: 1
            baseline: {epochs: 1, batch: 8}
            prune: {methods: [lowest], sparsities: [0.5], fine_tune: {epochs: 1, batch: 8}}
            """.write(toFile: h.dir + "/sweep.yaml", atomically: true, encoding: .utf8)
        let out = try h.run(["sweep", h.dir + "/sweep.yaml", "--workers", "1", "--threads", "1", "--dir", h.dir + "/run"], timeout: 120)
        XCTAssertEqual(out.status, 0, out.stderr + out.stdout)
        try h.read { j in XCTAssert(try j.tasks().allSatisfy { $0.row.state == .done }) }
        // A model that does not fit the folder's classes is refused by name, not crashed on.
        try String(contentsOfFile: h.dir + "/sweep.yaml", encoding: .utf8).replacingOccurrences(of: "classes: 3", with: "classes: 2")
            .write(toFile: h.dir + "/bad.yaml", atomically: true, encoding: .utf8)
        let bad = try h.run(["sweep", h.dir + "/bad.yaml", "--workers", "1", "--threads", "1", "--dir", h.dir + "/run2", "--max-attempts", "1"], timeout: 120)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssert(bad.stdout.contains("lenet5 has 2 outputs; the data has 3 classes"), bad.stdout + bad.stderr)
    }
}
