@testable import Coordinator
import Experiment
import XCTest

final class SweepFileTests: XCTestCase {
    let minimal = """
        models: [{architecture: lenet5}]
        trials: 2
        prune: {methods: [lowest, random], sparsities: [0.3, 0.6]}
        """

    func testPlanHasBaselinesAndPruneTasksWithStableUniqueIDs() throws {
        let sweep = try SweepFile.parse(minimal)
        let plan = try Plan(sweep)
        XCTAssertEqual(plan.entries.count, 2 + 2 * 2 * 2)
        XCTAssertEqual(Set(plan.entries.map(\.id)).count, plan.entries.count)
        let again = try Plan(try SweepFile.parse(minimal))
        XCTAssertEqual(plan.entries.map(\.id), again.entries.map(\.id), "ids are content hashes")
        for e in plan.entries where e.task.kind == .prune {
            XCTAssertEqual(plan.entries.first { $0.id == e.dependsOn }?.task.kind, .baseline)
            XCTAssertEqual(plan.entries.first { $0.id == e.dependsOn }?.task.seed, e.task.seed)
        }
        // A changed fine-tuning setting changes every prune task's id.
        let other = try Plan(try SweepFile.parse(minimal.replacingOccurrences(of: "sparsities: [0.3, 0.6]}", with: "sparsities: [0.3, 0.6], fine_tune: {epochs: 3}}")))
        XCTAssertEqual(Set(other.entries.filter { $0.dependsOn == nil }.map(\.id)), Set(plan.entries.filter { $0.dependsOn == nil }.map(\.id)))
        XCTAssert(Set(other.entries.filter { $0.dependsOn != nil }.map(\.id)).isDisjoint(with: plan.entries.map(\.id)))
    }

    func testModelsFromCheckpointsAreTrialsWithTheirOwnBaseline() throws {
        let text = """
            seeds: [11, 12]
            models:
              - {architecture: lenet5, checkpoints: [a.safetensors, /abs/b.safetensors, c.safetensors], baseline: {epochs: 2}}
              - {architecture: lenet5, input: [1, 28, 28], checkpoint: a.safetensors}
              - {architecture: lenet5}
            prune: {methods: [lowest], sparsities: [0.5]}
            """
        let dir = NSTemporaryDirectory() + "sweepfile-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try text.write(toFile: dir + "/s.yaml", atomically: true, encoding: .utf8)
        let sweep = try SweepFile.load(path: dir + "/s.yaml")
        let dirPath = URL(fileURLWithPath: dir).standardizedFileURL.path
        XCTAssertEqual(sweep.starts[0]?.checkpoints, [dirPath + "/a.safetensors", "/abs/b.safetensors", dirPath + "/c.safetensors"], "relative to the sweep file")
        XCTAssertEqual(sweep.starts[0]?.training.epochs, 2)
        XCTAssertEqual(sweep.starts[1]?.training.epochs, 0, "without its own baseline the checkpoint is the baseline")
        XCTAssertNil(sweep.starts[2])
        let files = sweep.starts.compactMap { $0 }.flatMap(\.checkpoints)
        let hashes = Dictionary(files.map { ($0, String(repeating: $0.hasSuffix("b.safetensors") ? "b" : "a", count: 63) + String($0.count % 10)) }, uniquingKeysWith: { a, _ in a })
        let plan = try Plan(sweep, checkpoints: hashes)
        let baselines = plan.entries.filter { $0.task.kind == .baseline }
        XCTAssertEqual(baselines.count, 3 + 1 + 2, "one trial per checkpoint file; the seeds for the rest")
        XCTAssertEqual(baselines.prefix(3).map(\.task.seed), [11, 12, 3], "the sweep's seeds in order, then 1, 2, 3 …")
        XCTAssertEqual(baselines.prefix(3).map(\.task.start), [hashes[dirPath + "/a.safetensors"], hashes["/abs/b.safetensors"], hashes[dirPath + "/c.safetensors"]])
        XCTAssertEqual(plan.planned.filter { $0.kind == .baseline }.map(\.requiredBlob), baselines.map(\.task.start), "workers fetch the start as a blob")
        XCTAssertNil(baselines[4].task.start)
        XCTAssertThrowsError(try Plan(sweep)) { XCTAssert("\($0)".contains("was not stored before planning"), "\($0)") }
        // Mistakes are named.
        XCTAssert(message("models: [{architecture: lenet5, checkpoint: a, checkpoints: [b]}]\nprune: {}").contains("give checkpoint or checkpoints, not both"))
        XCTAssert(message("models: [{architecture: lenet5, fine_tune: {lr: -1}}]\nprune: {}").contains("models[0].fine_tune.lr"))
        XCTAssert(message("models: [{architecture: lenet5, checkpoints: [a, a]}]\nprune: {}").contains("names a file twice"))
        XCTAssert(message("models: [{architecture: lenet5, checkpoints: []}]\nprune: {}").contains("give at least one file"))
        XCTAssert(message("models: [{architecture: lenet5, input: [1, 28, 28], input_shape: [1, 28, 28]}]\nprune: {}").contains("not both"))
    }

    /// Each family trains and fine-tunes with its own learning rate (the paper's protocol); what a
    /// model leaves out comes from the sweep, and a model without its own keeps the sweep's.
    func testAModelsOwnBaselineAndFineTuningOverrideOnlyTheKeysItGives() throws {
        let sweep = try SweepFile.parse("""
            models:
              - {architecture: lenet5, baseline: {lr: 0.1}, fine_tune: {lr: 0.02, epochs: 4}}
              - {architecture: vgg-small}
            baseline: {epochs: 7, lr: 0.05, momentum: 0.9}
            prune: {methods: [lowest], sparsities: [0.5], fine_tune: {epochs: 9, lr: 0.3}}
            trials: 1
            """)
        XCTAssertEqual(sweep.baseline(model: 0).lr, 0.1)
        XCTAssertEqual(sweep.baseline(model: 0).epochs, 7, "the sweep's epochs")
        XCTAssertEqual(sweep.baseline(model: 0).momentum, 0.9, "the sweep's momentum")
        XCTAssertEqual(sweep.fineTune(model: 0).lr, 0.02)
        XCTAssertEqual(sweep.fineTune(model: 0).epochs, 4)
        XCTAssertEqual(sweep.baseline(model: 1), sweep.baseline)
        XCTAssertEqual(sweep.fineTune(model: 1), sweep.prune.fineTune)
        let plan = try Plan(sweep)
        let tasks = plan.entries.map(\.task)
        XCTAssertEqual(tasks.filter { $0.kind == .baseline }.map { $0.training?.lr }, [0.1, 0.05])
        XCTAssertEqual(tasks.filter { $0.kind == .prune }.map { $0.prune?.fineTune.lr }, [0.02, 0.3])
        XCTAssertEqual(tasks.filter { $0.kind == .prune }.map { $0.prune?.fineTune.epochs }, [4, 9])
    }

    func message(_ text: String) -> String {
        do { _ = try SweepFile.parse(text); return "no error" } catch { return "\(error)" }
    }

    func testValidationNamesTheFieldAndWhatIsAllowed() {
        let cases: [(String, String)] = [
            ("models: [{architecture: lenet5}]\nprune: {methods: [smallest]}", "prune.methods[0]: 'smallest' is not a method; allowed: lowest"),
            ("models: [{architecture: lenet5}]\nprune: {sparsities: [1.5]}", "prune.sparsities[0]: 1.5 is outside [0.0, 1.0]"),
            ("models: []\nprune: {}", "models: give at least one"),
            ("models: [{architecture: lenet5}]\nprune: {}\nepochs: 3", "line 3: epochs: unknown key 'epochs'"),
            ("models: [{architecture: lenet5}]\nprune: {mode: some}", "prune.mode: 'some' is not a mode"),
            ("models: [{architecture: lenet5}]\nprune: {fine_tune: {lr: -1}}", "prune.fine_tune.lr: -1 is outside"),
            ("models: [{architecture: lenet6}]\nprune: {}", "models[0].architecture: unknown architecture 'lenet6'; allowed: "),
            ("models: [{architecture: lenet5}]\nprune: {metrics: [cauchy]}", "prune.metrics[0]: unknown metric"),
            ("data: {fingerprint: abc}\nmodels: [{architecture: lenet5}]\nprune: {}", "data.fingerprint: unknown key 'fingerprint' in data; allowed: dataset, fingerprints, path, shards"),
        ]
        for (yaml, expected) in cases { XCTAssert(message(yaml).contains(expected), "\(yaml)\n→ \(message(yaml))") }
        XCTAssert(message(": : :").contains("not valid YAML") || message(": : :").contains("mapping"))
        let sha = String(repeating: "ab", count: 32)
        XCTAssert(message("data: {shards: 2, fingerprints: [\(sha)]}\nmodels: [{architecture: lenet5}]\nprune: {}")
            .contains("data.fingerprints: 1 given for 2 shard(s)"))
        XCTAssert(message("data: {fingerprints: [abc]}\nmodels: [{architecture: lenet5}]\nprune: {}").contains("'abc' is not a SHA-256"))
        XCTAssertEqual(try SweepFile.parse("data: {fingerprints: [\(sha)]}\nmodels: [{architecture: lenet5}]\nprune: {}").data.fingerprints, [sha])
    }

    /// Every mapping of the sweep file refuses keys it does not know, naming the key, its path,
    /// the allowed ones and the line of the user's file (typos inside nested mappings used to be
    /// ignored silently).
    func testTyposInNestedMappingsAreRefusedWithTheirLine() {
        let typos: [(String, String)] = [
            ("models: [{architecture: lenet5}]\nbaseline: {epoch: 50}\nprune: {}", "line 2: baseline.epoch: unknown key 'epoch' in baseline; allowed: augment_padding, batch, epochs"),
            ("models: [{architecture: lenet5}]\nprune:\n  fine_tune:\n    learning_rate: 0.1\n", "line 4: prune.fine_tune.learning_rate: unknown key 'learning_rate' in prune.fine_tune"),
            ("models:\n  - architecture: lenet5\n    widht: 0.25\nprune: {}", "line 3: models[0].widht: unknown key 'widht' in models[0]; allowed: architecture, baseline, checkpoint, checkpoints, classes"),
            ("data: {dataset: fashion_mnist}\nmodels: [{architecture: lenet5}]\nprune: {}", "line 1: data.dataset: unknown data set 'fashion_mnist'; allowed: fashion-mnist, mnist"),
            ("models: [{architecture: lenet5}]\nbaseline:\n  epochs: ten\nprune: {}", "line 3: baseline.epochs: 'ten' is not a number"),
        ]
        for (yaml, expected) in typos { XCTAssert(message(yaml).contains(expected), "\(yaml)\n→ \(message(yaml))") }
    }

    /// `epochs: 1e9` and `epochs: 1000000000` get the same answer: the stated maximum.
    func testHugeCountsGetTheSameAnswerHoweverWritten() {
        let a = message("models: [{architecture: lenet5}]\nbaseline: {epochs: 1e9}\nprune: {}")
        let b = message("models: [{architecture: lenet5}]\nbaseline: {epochs: 1000000000}\nprune: {}")
        XCTAssert(a.contains("is more than the maximum \(SweepFile.maxEpochs)"), a)
        XCTAssert(b.contains("is more than the maximum \(SweepFile.maxEpochs)"), b)
        XCTAssertEqual(try SweepFile.parse("models: [{architecture: lenet5}]\nbaseline: {epochs: 2e1}\nprune: {}").baseline.epochs, 20,
                       "an integral float is the integer it writes")
        XCTAssert(message("models: [{architecture: lenet5}]\nbaseline: {epochs: 2.5}\nprune: {}").contains("must be a whole number"))
        XCTAssert(message("models: [{architecture: lenet5}]\ntrials: 0\nprune: {}").contains("trials: 0 is less than the minimum 1"))
    }

    func testExamplesParse() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for name in ["quickstart", "paper"] {
            let sweep = try SweepFile.load(path: root.appendingPathComponent("Examples/\(name).yaml").path)
            XCTAssertFalse(try Plan(sweep).entries.isEmpty)
        }
        XCTAssertEqual(try Plan(try SweepFile.load(path: root.appendingPathComponent("Examples/quickstart.yaml").path)).entries.count, 26)
        XCTAssertEqual(try Plan(try SweepFile.load(path: root.appendingPathComponent("Examples/paper.yaml").path)).entries.count, 3 + 36)
        XCTAssertNoThrow(try TaskFileKeys.check(String(contentsOf: root.appendingPathComponent("Examples/task-prune.yaml"), encoding: .utf8)))
    }

    /// A task file for `run-task` is held to the same standard: typos are named with their line.
    func testTaskFileTyposAreRefusedWithTheirLine() {
        let typos: [(String, String)] = [
            ("kind: prune\ncheckpoint: a.safetensors\nprune: {method: lowest, sparsity: 0.5, sparsty: 0.3}", "line 3: prune.sparsty: unknown key 'sparsty' in prune"),
            ("kind: prune\nprune:\n  method: lowest\n  fine_tune: {epoch: 3}\n", "line 4: prune.fine_tune.epoch: unknown key 'epoch' in prune.fine_tune"),
            ("kind: baseline\nmodel: {architecture: lenet5, widht: 2}\n", "line 2: model.widht: unknown key 'widht' in model"),
            ("kind: baseline\ndatadir: /tmp\n", "line 2: datadir: unknown key 'datadir'; allowed: checkpoint, data, data_dir"),
            ("kind: baseline\ntraining: {epochs: -1}\n", "training.epochs"),
        ]
        for (yaml, expected) in typos {
            var text = ""
            do { try TaskFileKeys.check(yaml) } catch { text = "\(error)" }
            XCTAssert(text.contains(expected), "\(yaml)\n→ \(text)")
        }
    }
}
