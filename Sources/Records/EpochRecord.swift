/// Metrics of one layer (or of the whole network, key "total"): name → value, in the order the
/// metric code produced them.
public struct MetricValues: Sendable, Equatable {
    public var key: String
    public var values: [(String, Double)]

    public init(key: String, values: [(String, Double)]) {
        self.key = key
        self.values = values
    }

    public subscript(_ name: String) -> Double? { values.first { $0.0 == name }?.1 }

    public static func == (a: MetricValues, b: MetricValues) -> Bool {
        a.key == b.key && a.values.count == b.values.count
            && zip(a.values, b.values).allSatisfy { $0.0 == $1.0 && ($0.1 == $1.1 || ($0.1.isNaN && $1.1.isNaN)) }
    }
}

/// One epoch of a task — the one record type from the training loop through the wire, the
/// journal, the CSV and the analysis. Epoch 0 of a prune task is right after pruning, before any
/// fine-tuning; a baseline's epochs are 1…E.
///
/// The scalar fields are listed once, in `EpochRecord.fields`: the wire mapping, the journal's
/// encoding, results.csv, validation and the analysis all iterate that table, so a new per-epoch
/// number is added here, in Proto/apsweep.proto (same name) and where it is computed.
public struct EpochRecord: Sendable, Equatable {
    public var epoch: Int
    /// Percent. For training epochs the running accuracy over the epoch (train mode); for epoch 0
    /// of a prune task, evaluated over the training set in eval mode.
    public var trainAccuracy = 0.0
    public var trainLoss = 0.0
    public var testAccuracy = 0.0
    public var testLoss = 0.0
    /// |baseline − this| in percentage points (prune tasks; 0 for baselines).
    public var pdTrain = 0.0
    public var pdTest = 0.0
    /// this − baseline, mean cross-entropy (prune tasks).
    public var lossDiffTrain = 0.0
    public var lossDiffTest = 0.0
    public var learningRate = 0.0
    public var seconds = 0.0
    /// Per prunable layer, in the model's order (the classifier last).
    public var layerMetrics: [MetricValues] = []
    /// The whole network (prune tasks).
    public var totalMetrics: MetricValues?

    public init(epoch: Int) { self.epoch = epoch }

    public init(epoch: Int, trainAccuracy: Double, trainLoss: Double, testAccuracy: Double, testLoss: Double, pdTrain: Double,
                pdTest: Double, lossDiffTrain: Double, lossDiffTest: Double, learningRate: Double, seconds: Double,
                layerMetrics: [MetricValues], totalMetrics: MetricValues?) {
        self.epoch = epoch
        self.trainAccuracy = trainAccuracy; self.trainLoss = trainLoss; self.testAccuracy = testAccuracy; self.testLoss = testLoss
        self.pdTrain = pdTrain; self.pdTest = pdTest; self.lossDiffTrain = lossDiffTrain; self.lossDiffTest = lossDiffTest
        self.learningRate = learningRate; self.seconds = seconds
        self.layerMetrics = layerMetrics; self.totalMetrics = totalMetrics
    }

    /// What a scalar field may hold (checked by `validate`).
    public enum Range: Sendable {
        /// A percentage in [0, 100].
        case percent
        /// Finite and ≥ 0.
        case nonNegative
        /// Any finite number.
        case finite
    }

    /// A scalar field: its name (the .proto field, the CSV column, the analysis quantity), where it
    /// lives, and what it may hold.
    public struct Field: @unchecked Sendable {
        public let name: String
        public let keyPath: WritableKeyPath<EpochRecord, Double>
        public let range: Range
    }

    /// Every scalar field, in wire and journal order. Append new fields at the end: the journal's
    /// encoding stores them in this order and reads older records with the missing ones as NaN.
    public static let fields: [Field] = [
        Field(name: "train_accuracy", keyPath: \.trainAccuracy, range: .percent),
        Field(name: "train_loss", keyPath: \.trainLoss, range: .nonNegative),
        Field(name: "test_accuracy", keyPath: \.testAccuracy, range: .percent),
        Field(name: "test_loss", keyPath: \.testLoss, range: .nonNegative),
        Field(name: "pd_train", keyPath: \.pdTrain, range: .percent),
        Field(name: "pd_test", keyPath: \.pdTest, range: .percent),
        Field(name: "loss_diff_train", keyPath: \.lossDiffTrain, range: .finite),
        Field(name: "loss_diff_test", keyPath: \.lossDiffTest, range: .finite),
        Field(name: "learning_rate", keyPath: \.learningRate, range: .nonNegative),
        Field(name: "seconds", keyPath: \.seconds, range: .nonNegative),
    ]

    public static func == (a: EpochRecord, b: EpochRecord) -> Bool {
        a.epoch == b.epoch && a.layerMetrics == b.layerMetrics && a.totalMetrics == b.totalMetrics
            && fields.allSatisfy { f in a[keyPath: f.keyPath] == b[keyPath: f.keyPath] || (a[keyPath: f.keyPath].isNaN && b[keyPath: f.keyPath].isNaN) }
    }
}

/// A record that cannot be stored, and why (names the epoch and the value).
public struct RecordError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension EpochRecord {
    /// Whether a metric of this name is a Monte Carlo estimate (it may come out slightly below 0).
    static func isEstimate(_ name: String) -> Bool { name.hasPrefix("js[") || name.contains("student-t") }

    /// Checks every value against its stated range: accuracies and PD in [0, 100], losses ≥ 0,
    /// every metric finite and — except Monte Carlo estimates — ≥ 0. Throws naming the first bad one.
    public func validate() throws {
        func bad(_ name: String, _ v: Double, _ rule: String) -> RecordError {
            RecordError("epoch \(epoch): \(name) is \(v) (\(rule))")
        }
        for f in Self.fields {
            let v = self[keyPath: f.keyPath]
            switch f.range {
            case .percent: guard v.isFinite, v >= 0, v <= 100 else { throw bad(f.name, v, "must be a percentage in [0, 100]") }
            case .nonNegative: guard v.isFinite, v >= 0 else { throw bad(f.name, v, "must be finite and ≥ 0") }
            case .finite: guard v.isFinite else { throw bad(f.name, v, "must be finite") }
            }
        }
        func check(_ layer: MetricValues) throws {
            let values = layer.values
            // A handful of metrics per layer: a scan is cheaper than hashing every name (a set
            // keeps a long list, e.g. from a hostile peer, linear).
            var seen = values.count > 32 ? Set<String>() : nil
            for i in values.indices {
                let (name, v) = values[i]
                guard v.isFinite else { throw bad("\(layer.key).\(name)", v, "must be finite") }
                if v < 0 && !Self.isEstimate(name) { throw bad("\(layer.key).\(name)", v, "a divergence must be ≥ 0") }
                let twice = seen != nil ? !seen!.insert(name).inserted : values[..<i].contains { $0.0 == name }
                if twice { throw RecordError("epoch \(epoch): \(layer.key) has \(name) twice") }
            }
        }
        for layer in layerMetrics { try check(layer) }
        if let totalMetrics { try check(totalMetrics) }
    }

    /// Checks that `records` are exactly the epochs in `expected`, each once, and each valid.
    public static func validate(_ records: [EpochRecord], expected: ClosedRange<Int>?) throws {
        guard let expected else {
            guard records.isEmpty else { throw RecordError("\(records.count) records for a task that produces none") }
            return
        }
        guard records.count <= expected.count else {
            throw RecordError("\(records.count) records for a task that produces \(expected.count) (epochs \(expected.lowerBound)…\(expected.upperBound))")
        }
        var seen = Set<Int>()
        for r in records {
            guard expected.contains(r.epoch) else { throw RecordError("epoch \(r.epoch) is outside \(expected.lowerBound)…\(expected.upperBound)") }
            guard seen.insert(r.epoch).inserted else { throw RecordError("epoch \(r.epoch) appears twice") }
            try r.validate()
        }
        guard records.count == expected.count else {
            let missing = expected.filter { !seen.contains($0) }
            throw RecordError("\(records.count) of \(expected.count) records: epochs \(missing.prefix(5).map(String.init).joined(separator: ", "))\(missing.count > 5 ? ", …" : "") are missing")
        }
    }
}
