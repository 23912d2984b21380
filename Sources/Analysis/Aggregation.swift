import Experiment
import Foundation
import Journal
import Messages
import Records
import Scheduling

/// Which tasks a report is about: those of the given architectures, pruning methods and scopes
/// (an empty set accepts all). Baselines are kept with their architecture whatever the methods
/// and scopes.
public struct TaskFilter: Sendable, Equatable {
    public var models: Set<String>, methods: Set<String>, scopes: Set<String>
    public init(models: Set<String> = [], methods: Set<String> = [], scopes: Set<String> = []) {
        self.models = models
        self.methods = methods
        self.scopes = scopes
    }
    public var isEmpty: Bool { models.isEmpty && methods.isEmpty && scopes.isEmpty }
    public func accepts(_ t: SweepTask) -> Bool {
        guard models.isEmpty || models.contains(t.model.name) else { return false }
        guard let p = t.prune else { return true }
        return (methods.isEmpty || methods.contains(p.method.rawValue)) && (scopes.isEmpty || scopes.contains(p.scope))
    }
    /// "model lenet5, method lowest" — what a report says it is about.
    public var description: String {
        [("model", models), ("method", methods), ("scope", scopes)].filter { !$0.1.isEmpty }
            .map { "\($0.0) \($0.1.sorted().joined(separator: "/"))" }.joined(separator: ", ")
    }
}

/// A sweep's records aggregated in one pass over the journal: per configuration and epoch the
/// mean, spread and count of every quantity over trials; per trial the series of the quantities
/// that are correlated (AP2, each AP3, PD); the baselines with their convergence; damaged records
/// and failed tasks by name. Memory grows with configurations × epochs × quantities plus
/// tasks × epochs × (AP variants + 3), never with the records' size on disk.
public struct Aggregation {
    /// (model, method, sparsity, scope) of prune tasks.
    public struct Configuration: Hashable, Comparable, Sendable {
        public var model: String, method: String, sparsity: Double, scope: String
        public static func < (a: Self, b: Self) -> Bool { (a.model, a.method, a.sparsity, a.scope) < (b.model, b.method, b.sparsity, b.scope) }
        public var label: String { "\(model) \(method) p=\(sparsity) \(scope)" }
    }

    /// Mean, standard deviation (n − 1) and count of one quantity at one epoch (Welford).
    public struct Moments: Sendable {
        public private(set) var count = 0
        public private(set) var mean = Double.nan
        var m2 = 0.0
        public var std: Double { count < 2 ? .nan : (m2 / Double(count - 1)).squareRoot() }
        mutating func add(_ x: Double) {
            guard x.isFinite else { return }
            count += 1
            if count == 1 { mean = x; m2 = 0; return }
            let d = x - mean
            mean += d / Double(count)
            m2 += d * (x - mean)
        }
    }

    /// Rows of equal width in one flat array (a row per epoch, a column per correlated quantity):
    /// 8 bytes a value instead of an array per record (~90 bytes a record at 2 million records).
    public struct Rows: RandomAccessCollection, Sendable {
        /// One row; `row[k]` is quantity k.
        public struct Row: Sendable {
            let base: ArraySlice<Double>
            public subscript(k: Int) -> Double { base[base.startIndex + k] }
            public var count: Int { base.count }
        }
        public private(set) var width = 0
        private var storage: [Double] = []
        public var startIndex: Int { 0 }
        public var endIndex: Int { width == 0 ? 0 : storage.count / width }
        public subscript(i: Int) -> Row { Row(base: storage[(i * width)..<((i + 1) * width)]) }

        /// Appends a row; a wider row than those before (a metric first seen) pads them with NaN.
        mutating func append(_ row: [Double]) {
            if row.count > width { widen(to: row.count) }
            storage += row
            if row.count < width { storage += repeatElement(.nan, count: width - row.count) }
        }

        mutating func widen(to w: Int) {
            guard w > width else { return }
            if !storage.isEmpty {
                let n = storage.count / width
                var wider = [Double](repeating: .nan, count: n * w)
                for i in 0..<n { for k in 0..<width { wider[i * w + k] = storage[i * width + k] } }
                storage = wider
            }
            width = w
        }
    }

    /// One trial (task) of a configuration: its epochs and, per epoch, the correlated quantities.
    public struct Trial: Sendable {
        public var seed: UInt64
        public var task: String
        public var epochs: [Int] = []
        /// values[e][k]: epoch `epochs[e]`, quantity `correlated[k]`.
        public var values = Rows()
        /// The row of each epoch (−1: none), indexed by epoch.
        var rowOfEpoch: [Int] = []
        func row(_ epoch: Int) -> Int { epoch >= 0 && epoch < rowOfEpoch.count ? rowOfEpoch[epoch] : -1 }
        func value(_ k: Int, epoch: Int) -> Double? {
            let i = row(epoch)
            guard i >= 0 else { return nil }
            let v = values[i][k]
            return v.isFinite ? v : nil
        }
    }

    public struct Baseline: Sendable {
        public var model: String, seed: UInt64, train: Double, test: Double
        /// Test accuracy of its last two epochs (nil when it trained fewer than two): a baseline
        /// whose last epochs still differ by points was not trained to convergence.
        public var lastTwoTest: (Double, Double)?
    }

    public private(set) var configurations: [Configuration] = []
    /// Every quantity with moments: PD and accuracies, then the AP metrics of the whole network,
    /// then the last layer's own (`last.<metric>`).
    public private(set) var quantities: [String] = []
    /// AP2 and every AP3 variant (whole network): what is correlated with PD.
    public private(set) var apMetrics: [String] = []
    /// The quantities kept per trial: `targets` followed by `apMetrics`.
    public private(set) var correlated: [String] = []
    /// |PD| on the test and training sets, and the signed test PD (baseline − pruned accuracy).
    public static let targets = ["pd_test", "pd_train", "pd_test_signed"]
    var moments: [[[Moments]]] = []   // [config][epoch slot][quantity]
    var epochSlots: [[Int]] = []      // [config] → epochs seen, sorted
    public private(set) var trials: [[Trial]] = []
    public private(set) var baselines: [Baseline] = []
    public private(set) var tasksDone = 0, tasksTotal = 0
    public private(set) var damaged: [SweepJournal.DamagedRecord] = []
    public private(set) var failed: [(label: String, id: String, error: String)] = []
    /// Per configuration: the main AP3 of each layer at each trial's last epoch (heat map).
    public private(set) var layerFinal: [[String: Moments]] = []
    public private(set) var layerNames: [String] = []
    public let resamples: Int
    public let seed: UInt64
    /// 1: every task was read; k: every k-th prune task.
    public let sampleEvery: Int

    /// The pass was given up because `shouldStop` said so.
    public struct Cancelled: Error {}

    /// Reads every record of the journal once (finished or running tasks alike). `shouldStop`
    /// is asked every few thousand records; when it says yes the pass throws `Cancelled`.
    /// `sampleEvery` k > 1 reads only every k-th prune task (and every baseline): a bounded
    /// view for live status on a huge journal; reports read everything.
    /// `only`, when given, keeps only the tasks it accepts (one family's, one method's or one
    /// scope's tables out of a sweep over several; counts of tasks done and total are of those
    /// too). `ap3`, when given (`ap3[gaussian-diag:estimate=row]`), is the AP3 variant the claims
    /// and the heat map use instead of the first Gaussian one.
    public init(journal: SweepJournal, resamples: Int = 1000, seed: UInt64 = 7, shouldStop: (() -> Bool)? = nil, sampleEvery: Int = 1,
                only: TaskFilter? = nil, ap3 chosen: String? = nil) throws {
        self.resamples = resamples
        self.chosenAP3 = chosen
        self.only = only.flatMap { $0.isEmpty ? nil : $0 }
        self.seed = seed
        self.sampleEvery = max(1, sampleEvery)
        // In a sample: every baseline and every k-th prune task (counted in plan order). Tasks
        // are streamed; what is kept is a few facts of each read task (at 100,000 tasks the
        // whole task list was 80 MB of the pass).
        var pruneSeen = 0, sampleMarks: [Bool] = []
        var kept: [Int: KeptTask] = [:]             // the tasks read, by position
        var baselineByID: [String: BaselineSummary] = [:]   // what prune tasks name
        var configOf: [Int: Configuration] = [:]
        // Read but not kept (filtered out, or a spec that does not decode): their records are
        // still checked, so damage is named whichever tasks the tables use.
        var others: [Int: (id: String, epochs: ClosedRange<Int>?)] = [:]
        var taskCount = 0
        try journal.forEachTask(withSpec: sampleEvery <= 1 ? nil : { _, kind in
            var keep = true
            if kind == .prune {
                keep = pruneSeen % sampleEvery == 0
                pruneSeen += 1
            }
            sampleMarks.append(keep)
            return keep
        }) { i, task, row in
            taskCount += 1
            if task.kind == .baseline, let b = row.baseline { baselineByID[task.id] = b }
            let inSample = sampleEvery <= 1 || sampleMarks[i]
            let decoded = only == nil && !inSample ? nil : try? SweepTask.decode(task.spec)
            if let only, !(decoded.map(only.accepts) ?? false) {
                if inSample { others[i] = (task.id, task.epochs) }
                return
            }
            tasksTotal += 1
            if row.state == .done { tasksDone += 1 }
            if row.state == .failed { failed.append((task.label, task.id, row.lastError ?? "")) }
            guard inSample, let spec = decoded else {
                if inSample { others[i] = (task.id, task.epochs) }
                return
            }
            var k = KeptTask(id: task.id, epochs: task.epochs, facts: TaskFacts(kind: spec.kind, seed: spec.seed, model: spec.model.name),
                             baseline: row.baseline, baselineOfPrune: nil)
            if spec.kind == .prune, let p = spec.prune {
                configOf[i] = Configuration(model: spec.model.name, method: p.method.rawValue, sparsity: p.sparsity, scope: p.scope)
                k.baselineOfPrune = task.dependsOn.flatMap { baselineByID[$0] }
            }
            kept[i] = k
        }
        let sampled: [Int]? = sampleEvery <= 1 ? nil : sampleMarks.indices.filter { sampleMarks[$0] }
        // Configurations in sorted order; each one's trials by (seed, task id).
        configurations = Set(configOf.values).sorted()
        let rank = Dictionary(uniqueKeysWithValues: configurations.enumerated().map { ($1, $0) })
        var members = [[(seed: UInt64, id: String, task: Int)]](repeating: [], count: configurations.count)
        for (i, c) in configOf.sorted(by: { $0.key < $1.key }) { members[rank[c]!].append((kept[i]!.facts.seed, kept[i]!.id, i)) }
        var slotOf = [(config: Int, trial: Int)?](repeating: nil, count: taskCount)
        trials = members.enumerated().map { c, list in
            list.sorted { ($0.seed, $0.id) < ($1.seed, $1.id) }.enumerated().map { k, m in
                slotOf[m.task] = (c, k)
                return Trial(seed: m.seed, task: m.id)
            }
        }
        moments = Array(repeating: [], count: configurations.count)
        epochSlots = Array(repeating: [], count: configurations.count)
        layerFinal = Array(repeating: [:], count: configurations.count)
        var quantityIndex: [String: Int] = [:]
        var apIndex: [String: Int] = [:]
        for q in ["pd_test", "pd_train", "pd_test_signed", "pd_train_signed", "test_accuracy", "train_accuracy", "test_loss", "train_loss"] {
            quantityIndex[q] = quantities.count
            quantities.append(q)
        }
        var baselineTests: [Int: [(Int, Double)]] = [:]
        // The last record of the task being read: its per-layer AP3 feeds the heat map.
        var last: (task: Int, record: EpochRecord)?
        var mainAP3: String?
        func finishTask() {
            guard let (i, r) = last, let (c, _) = slotOf[i], let ap3 = mainAP3 else { return }
            for l in r.layerMetrics {
                if !layerNames.contains(l.key) { layerNames.append(l.key) }
                if let v = l[ap3] { layerFinal[c][l.key, default: Moments()].add(v) }
            }
        }
        var read = 0
        try journal.forEachRecord(tasks: sampled, { i, r in
            read += 1
            if read & 4095 == 0, let shouldStop, shouldStop() { throw Cancelled() }
            // Nothing is sized from a stored number: an epoch the task cannot have (a hostile or
            // damaged journal) is named, not used.
            guard let id = kept[i]?.id ?? others[i]?.id else { return }
            let epochs = kept[i]?.epochs ?? others[i]?.epochs
            guard let range = epochs, range.contains(r.epoch) else {
                let planned = epochs.map { "\($0.lowerBound)…\($0.upperBound)" } ?? "none"
                damaged.append(SweepJournal.DamagedRecord(task: i, taskID: id, epoch: r.epoch,
                                                          reason: "epoch \(r.epoch) is outside the task's epochs (\(planned))"))
                return
            }
            guard let task = kept[i] else { return }
            if task.facts.kind == .baseline {
                baselineTests[i, default: []].append((r.epoch, r.testAccuracy))
                return
            }
            guard let (c, k) = slotOf[i] else { return }
            if let l = last, l.task != i { finishTask() }
            last = (i, r)
            let base = task.baselineOfPrune
            var q: [(String, Double)] = [("pd_test", r.pdTest), ("pd_train", r.pdTrain),
                                         ("pd_test_signed", base.map { $0.testAccuracy - r.testAccuracy } ?? .nan),
                                         ("pd_train_signed", base.map { $0.trainAccuracy - r.trainAccuracy } ?? .nan),
                                         ("test_accuracy", r.testAccuracy), ("train_accuracy", r.trainAccuracy),
                                         ("test_loss", r.testLoss), ("train_loss", r.trainLoss)]
            // The trial's series: the targets, then the AP metrics in the order first seen (a
            // trial's rows written before a metric appeared are padded with NaN).
            var row = [Double](repeating: .nan, count: Aggregation.targets.count + apMetrics.count)
            row[0] = r.pdTest; row[1] = r.pdTrain; row[2] = q[2].1
            for (name, v) in r.totalMetrics?.values ?? [] where !Self.isStandardError(name) {
                q.append((name, v))
                if name == "ap2" || name.hasPrefix("ap3[") {
                    if apIndex[name] == nil {
                        apIndex[name] = apMetrics.count
                        apMetrics.append(name)
                        row.append(.nan)
                        mainAP3 = Aggregation.mainAP3(of: apMetrics, chosen: chosen)
                    }
                    let slot = Aggregation.targets.count + apIndex[name]!
                    if row[slot].isNaN { row[slot] = v }
                }
            }
            if r.layerMetrics.count > 1, let lastLayer = r.layerMetrics.last {
                for (name, v) in lastLayer.values where !Self.isStandardError(name) { q.append(("last." + name, v)) }
            }
            for (name, _) in q where quantityIndex[name] == nil {
                quantityIndex[name] = quantities.count
                quantities.append(name)
            }
            // Moments per configuration × epoch × quantity.
            let s: Int
            if let found = epochSlots[c].firstIndex(of: r.epoch) { s = found } else {
                epochSlots[c].append(r.epoch)
                moments[c].append([])
                s = epochSlots[c].count - 1
            }
            if moments[c][s].count < quantities.count { moments[c][s] += Array(repeating: Moments(), count: quantities.count - moments[c][s].count) }
            for (name, v) in q { moments[c][s][quantityIndex[name]!].add(v) }
            trials[c][k].epochs.append(r.epoch)
            trials[c][k].values.append(row)
        }, damaged: { damaged.append($0) })
        finishTask()
        correlated = Aggregation.targets + apMetrics
        for c in trials.indices {
            for k in trials[c].indices {
                let epochs = trials[c][k].epochs
                var index = [Int](repeating: -1, count: (epochs.max() ?? -1) + 1)
                for (i, e) in epochs.enumerated() where e >= 0 { index[e] = i }
                trials[c][k].rowOfEpoch = index
                trials[c][k].values.widen(to: correlated.count)
            }
        }
        for c in configurations.indices {
            let order = epochSlots[c].indices.sorted { epochSlots[c][$0] < epochSlots[c][$1] }
            epochSlots[c] = order.map { epochSlots[c][$0] }
            moments[c] = order.map { moments[c][$0] }
        }
        for (i, t) in kept.sorted(by: { $0.key < $1.key }) where t.facts.kind == .baseline {
            guard let b = t.baseline else { continue }
            let spec = t.facts
            let tests = (baselineTests[i] ?? []).sorted { $0.0 < $1.0 }.map(\.1)
            baselines.append(Baseline(model: spec.model, seed: spec.seed, train: b.trainAccuracy, test: b.testAccuracy,
                                      lastTwoTest: tests.count >= 2 ? (tests[tests.count - 2], tests[tests.count - 1]) : nil))
        }
    }

    /// The little of a task's spec a pass keeps.
    struct TaskFacts {
        let kind: SweepTask.Kind
        let seed: UInt64
        let model: String
    }

    /// What a pass keeps of a task it reads.
    struct KeptTask {
        let id: String
        let epochs: ClosedRange<Int>?
        let facts: TaskFacts
        /// A baseline's accuracies and losses.
        let baseline: BaselineSummary?
        /// A prune task's baseline's (for the signed PD).
        var baselineOfPrune: BaselineSummary?
    }

    /// Whether a metric is a Monte Carlo estimate's standard error (`js_se[…]`), not a metric.
    static func isStandardError(_ name: String) -> Bool {
        guard let bracket = name.firstIndex(of: "[") else { return name.hasSuffix("_se") }
        return name[..<bracket].hasSuffix("_se")
    }

    /// Per-epoch moments of `quantity` over the trials of configuration `c`.
    public func moments(_ c: Configuration, _ quantity: String) -> [(epoch: Int, Moments)] {
        guard let ci = configurations.firstIndex(of: c), let q = quantities.firstIndex(of: quantity) else { return [] }
        return epochSlots[ci].indices.map { s in (epochSlots[ci][s], q < moments[ci][s].count ? moments[ci][s][q] : Moments()) }
    }

    /// The mean of `quantity` in configuration `c` at `epoch`, when finite.
    public func mean(_ c: Configuration, _ quantity: String, epoch: Int) -> Double? {
        moments(c, quantity).first { $0.epoch == epoch }.map(\.1.mean).flatMap { $0.isFinite ? $0 : nil }
    }

    /// The last epoch every trial of every configuration has reached (nil when none).
    public var finalEpoch: Int? {
        let lasts = trials.flatMap { $0.compactMap { $0.epochs.max() } }
        return lasts.min()
    }

    /// The AP3 variant asked for at init, when recorded.
    let chosenAP3: String?
    /// The tasks this aggregation is about (nil: all).
    public let only: TaskFilter?
    /// The main AP3 variant: the one asked for, else the first `ap3[gaussian…]`, else the first AP3.
    public var ap3: String? { Aggregation.mainAP3(of: apMetrics, chosen: chosenAP3) }

    static func mainAP3(of metrics: [String], chosen: String?) -> String? {
        if let chosen, metrics.contains(chosen) { return chosen }
        return metrics.first { $0.hasPrefix("ap3[gaussian") } ?? metrics.first { $0.hasPrefix("ap3[") }
    }

    /// Index of a correlated quantity.
    func k(_ name: String) -> Int? { correlated.firstIndex(of: name) }
}
