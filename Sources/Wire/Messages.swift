/// Swift value types for every message of Proto/apsweep.proto (field for field; see the .proto
/// for what each field means). `Envelope` carries exactly one `Message`.

/// The protocol version this build speaks.
public let protocolVersion: UInt32 = 1

public struct Envelope: Sendable, Equatable {
    public var version: UInt32
    public var sequence: UInt64
    public var message: Message
    public init(_ message: Message, sequence: UInt64 = 0, version: UInt32 = protocolVersion) {
        self.message = message
        self.sequence = sequence
        self.version = version
    }
}

public enum Message: Sendable, Equatable {
    case hello(Hello), ready(Ready), heartbeat(Heartbeat), progress(Progress), result(TaskResult), failure(Failure)
    case blobRequest(BlobRequest)
    case welcome(Welcome), reject(Reject), assign(Assign), heartbeatAck(HeartbeatAck), cancel(Cancel), shutdown(Shutdown)
    case statusRequest(StatusRequest), statusReply(StatusReply)
    case blobChunk(BlobChunk)

    /// The message's name as in the .proto, for logs and errors.
    public var name: String {
        switch self {
        case .hello: return "Hello"
        case .ready: return "Ready"
        case .heartbeat: return "Heartbeat"
        case .progress: return "Progress"
        case .result: return "Result"
        case .failure: return "Failure"
        case .blobRequest: return "BlobRequest"
        case .welcome: return "Welcome"
        case .reject: return "Reject"
        case .assign: return "Assign"
        case .heartbeatAck: return "HeartbeatAck"
        case .cancel: return "Cancel"
        case .shutdown: return "Shutdown"
        case .statusRequest: return "StatusRequest"
        case .statusReply: return "StatusReply"
        case .blobChunk: return "BlobChunk"
        }
    }
}

public struct DataHolding: Sendable, Equatable {
    public var dataset = "", shardIndex: UInt32 = 0, shardCount: UInt32 = 1, fingerprint = "", trainImages: UInt64 = 0
    public init(dataset: String = "", shardIndex: UInt32 = 0, shardCount: UInt32 = 1, fingerprint: String = "", trainImages: UInt64 = 0) {
        self.dataset = dataset; self.shardIndex = shardIndex; self.shardCount = shardCount
        self.fingerprint = fingerprint; self.trainImages = trainImages
    }
}

public struct Hello: Sendable, Equatable {
    public var workerID = "", host = "", cores: UInt32 = 0, softwareVersion = ""
    public var data: [DataHolding] = [], cachedBlobs: [String] = [], blasThreads: UInt32 = 0, runningTaskID = ""
    public init() {}
}

public struct Ready: Sendable, Equatable {
    public var slots: UInt32 = 1
    public init(slots: UInt32 = 1) { self.slots = slots }
}

public struct Heartbeat: Sendable, Equatable {
    public var taskID = "", epoch: UInt32 = 0, step: UInt64 = 0
    public init(taskID: String = "", epoch: UInt32 = 0, step: UInt64 = 0) { self.taskID = taskID; self.epoch = epoch; self.step = step }
}

public struct MetricValue: Sendable, Equatable {
    public var name: String, value: Double
    public init(_ name: String, _ value: Double) { self.name = name; self.value = value }
}

public struct LayerMetricValues: Sendable, Equatable {
    public var layer = "", values: [MetricValue] = []
    public init(layer: String = "", values: [MetricValue] = []) { self.layer = layer; self.values = values }
}

public struct WireEpochRecord: Sendable, Equatable {
    public var epoch: UInt32 = 0
    public var trainAccuracy = 0.0, trainLoss = 0.0, testAccuracy = 0.0, testLoss = 0.0
    public var pdTrain = 0.0, pdTest = 0.0, lossDiffTrain = 0.0, lossDiffTest = 0.0, learningRate = 0.0, seconds = 0.0
    public var layers: [LayerMetricValues] = []
    public var total: LayerMetricValues?
    public init() {}
}

public struct Progress: Sendable, Equatable {
    public var taskID = "", attempt: UInt32 = 0, records: [WireEpochRecord] = []
    public init(taskID: String = "", attempt: UInt32 = 0, records: [WireEpochRecord] = []) {
        self.taskID = taskID; self.attempt = attempt; self.records = records
    }
}

public struct BaselineSummary: Sendable, Equatable {
    public var trainAccuracy = 0.0, testAccuracy = 0.0, trainLoss = 0.0, testLoss = 0.0
    public init(trainAccuracy: Double = 0, testAccuracy: Double = 0, trainLoss: Double = 0, testLoss: Double = 0) {
        self.trainAccuracy = trainAccuracy; self.testAccuracy = testAccuracy; self.trainLoss = trainLoss; self.testLoss = testLoss
    }
}

public struct TaskResult: Sendable, Equatable {
    public var taskID = "", attempt: UInt32 = 0, records: [WireEpochRecord] = [], checkpointHash = ""
    public var baseline: BaselineSummary?
    public var wallSeconds = 0.0
    public init() {}
}

public struct Failure: Sendable, Equatable {
    public var taskID = "", attempt: UInt32 = 0, reason = "", retryable = false
    public init(taskID: String = "", attempt: UInt32 = 0, reason: String = "", retryable: Bool = false) {
        self.taskID = taskID; self.attempt = attempt; self.reason = reason; self.retryable = retryable
    }
}

public struct BlobRequest: Sendable, Equatable {
    public var hash = "", offset: UInt64 = 0, maxBytes: UInt32 = 0
    public init(hash: String = "", offset: UInt64 = 0, maxBytes: UInt32 = 0) { self.hash = hash; self.offset = offset; self.maxBytes = maxBytes }
}

public struct Welcome: Sendable, Equatable {
    public var coordinatorID = "", sweepID = "", heartbeatIntervalMs: UInt32 = 0, livenessMs: UInt32 = 0, maxChunkBytes: UInt32 = 0
    public init() {}
}

public struct Reject: Sendable, Equatable {
    public var reason = "", supportedVersion: UInt32 = protocolVersion
    public init(reason: String = "", supportedVersion: UInt32 = protocolVersion) { self.reason = reason; self.supportedVersion = supportedVersion }
}

public struct Assign: Sendable, Equatable {
    public var taskID = "", attempt: UInt32 = 0, leaseDeadlineUnixMs: UInt64 = 0, specFormat = "", spec: [UInt8] = [], requiredBlobs: [String] = []
    public init() {}
}

public struct HeartbeatAck: Sendable, Equatable {
    public var coordinatorUnixMs: UInt64 = 0, leaseDeadlineUnixMs: UInt64 = 0
    public init(coordinatorUnixMs: UInt64 = 0, leaseDeadlineUnixMs: UInt64 = 0) {
        self.coordinatorUnixMs = coordinatorUnixMs; self.leaseDeadlineUnixMs = leaseDeadlineUnixMs
    }
}

public struct Cancel: Sendable, Equatable {
    public var taskID = "", reason = ""
    public init(taskID: String = "", reason: String = "") { self.taskID = taskID; self.reason = reason }
}

public struct Shutdown: Sendable, Equatable {
    public var reason = ""
    public init(reason: String = "") { self.reason = reason }
}

public struct BlobChunk: Sendable, Equatable {
    public var hash = "", offset: UInt64 = 0, totalSize: UInt64 = 0, data: [UInt8] = [], last = false
    public init(hash: String = "", offset: UInt64 = 0, totalSize: UInt64 = 0, data: [UInt8] = [], last: Bool = false) {
        self.hash = hash; self.offset = offset; self.totalSize = totalSize; self.data = data; self.last = last
    }
}

public struct StatusRequest: Sendable, Equatable {
    public var includeCorrelations = false, maxFailures: UInt32 = 0
    public init(includeCorrelations: Bool = false, maxFailures: UInt32 = 0) { self.includeCorrelations = includeCorrelations; self.maxFailures = maxFailures }
}

public struct TaskCounts: Sendable, Equatable {
    public var total: UInt32 = 0, done: UInt32 = 0, running: UInt32 = 0, queued: UInt32 = 0, stale: UInt32 = 0, failed: UInt32 = 0, blocked: UInt32 = 0
    public init() {}
}

public struct WorkerStatus: Sendable, Equatable {
    public var workerID = "", host = "", cores: UInt32 = 0, currentTask = "", epoch: UInt32 = 0, heartbeatAgeMs: UInt64 = 0, tasksDone: UInt32 = 0, state = ""
    public init() {}
}

public struct FailureInfo: Sendable, Equatable {
    public var taskID = "", workerID = "", reason = "", atUnixMs: UInt64 = 0, attempt: UInt32 = 0
    public init() {}
}

public struct CorrelationInfo: Sendable, Equatable {
    public var metric = "", target = "", method = "", scope = "", value = 0.0, ciLow = 0.0, ciHigh = 0.0, points: UInt32 = 0
    public init() {}
}

public struct StatusReply: Sendable, Equatable {
    public var sweepID = "", counts: TaskCounts?, workers: [WorkerStatus] = [], recentFailures: [FailureInfo] = []
    public var correlations: [CorrelationInfo] = [], etaSeconds = 0.0, uptimeMs: UInt64 = 0, lateResultsDropped: UInt64 = 0
    public init() {}
}
