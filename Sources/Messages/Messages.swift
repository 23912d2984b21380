import Records

/// Swift value types for every message of Proto/apsweep.proto (field for field; see the .proto
/// for what each field means). `Envelope` carries exactly one `Message`. This module does no I/O:
/// the scheduler and the worker's session logic speak these values; `Wire` encodes them.

/// The protocol version this build speaks.
public let protocolVersion: UInt32 = 1

public struct Envelope: Sendable, Equatable {
    public var version: UInt32
    public var sequence: UInt64
    /// The sending worker process's incarnation (0 from coordinators and clients).
    public var incarnation: UInt64
    public var message: Message
    public init(_ message: Message, sequence: UInt64 = 0, version: UInt32 = protocolVersion, incarnation: UInt64 = 0) {
        self.message = message
        self.sequence = sequence
        self.version = version
        self.incarnation = incarnation
    }
}

public enum Message: Sendable, Equatable {
    case hello(Hello), ready(Ready), heartbeat(Heartbeat), progress(Progress), result(TaskResult), failure(Failure)
    case blobRequest(BlobRequest)
    case welcome(Welcome), reject(Reject), assign(Assign), heartbeatAck(HeartbeatAck), cancel(Cancel), shutdown(Shutdown)
    case statusRequest(StatusRequest), statusReply(StatusReply)
    case blobChunk(BlobChunk)

    public var isHello: Bool { if case .hello = self { return true }; return false }

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
    public var incarnation: UInt64 = 0
    public init() {}
}

public struct Ready: Sendable, Equatable {
    public var slots: UInt32 = 1
    public init(slots: UInt32 = 1) { self.slots = slots }
}

public struct Heartbeat: Sendable, Equatable {
    public var taskID = "", epoch: UInt32 = 0, step: UInt64 = 0, attempt: UInt32 = 0
    public init(taskID: String = "", epoch: UInt32 = 0, step: UInt64 = 0, attempt: UInt32 = 0) {
        self.taskID = taskID; self.epoch = epoch; self.step = step; self.attempt = attempt
    }
}

public struct Progress: Sendable, Equatable {
    public var taskID = "", attempt: UInt32 = 0, records: [EpochRecord] = []
    public init(taskID: String = "", attempt: UInt32 = 0, records: [EpochRecord] = []) {
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
    public var taskID = "", attempt: UInt32 = 0, records: [EpochRecord] = [], checkpointHash = ""
    public var baseline: BaselineSummary?
    public var wallSeconds = 0.0
    public init() {}
}

public struct Failure: Sendable, Equatable {
    public var taskID = "", attempt: UInt32 = 0, reason = "", retryable = false, unusableBlob = ""
    public init(taskID: String = "", attempt: UInt32 = 0, reason: String = "", retryable: Bool = false, unusableBlob: String = "") {
        self.taskID = taskID; self.attempt = attempt; self.reason = reason; self.retryable = retryable; self.unusableBlob = unusableBlob
    }
}

public struct BlobRequest: Sendable, Equatable {
    public var hash = "", offset: UInt64 = 0, maxBytes: UInt32 = 0
    public init(hash: String = "", offset: UInt64 = 0, maxBytes: UInt32 = 0) { self.hash = hash; self.offset = offset; self.maxBytes = maxBytes }
}

public struct Welcome: Sendable, Equatable {
    public var coordinatorID = "", sweepID = "", heartbeatIntervalMs: UInt32 = 0, livenessMs: UInt32 = 0, maxChunkBytes: UInt32 = 0
    public var maxBlobBytes: UInt64 = 0, leaseMs: UInt32 = 0
    public init() {}
}

/// Why a message was refused (the .proto's `RejectCode`; raw values are the wire numbers).
public enum RejectCode: UInt32, Sendable, CaseIterable {
    case unspecified = 0, helloRequired, versionUnsupported, malformed, badHello, notLeaseHolder, invalidResult, limitExceeded,
         unknownBlob, wrongDirection

    /// The name as in the .proto.
    public var name: String {
        switch self {
        case .unspecified: return "REJECT_UNSPECIFIED"
        case .helloRequired: return "HELLO_REQUIRED"
        case .versionUnsupported: return "VERSION_UNSUPPORTED"
        case .malformed: return "MALFORMED"
        case .badHello: return "BAD_HELLO"
        case .notLeaseHolder: return "NOT_LEASE_HOLDER"
        case .invalidResult: return "INVALID_RESULT"
        case .limitExceeded: return "LIMIT_EXCEEDED"
        case .unknownBlob: return "UNKNOWN_BLOB"
        case .wrongDirection: return "WRONG_DIRECTION"
        }
    }

    /// Whether a worker receiving this Reject must exit (PROTOCOL.md §4): only when no later
    /// message could be accepted.
    public var endsTheWorker: Bool { self == .versionUnsupported || self == .badHello }
}

public struct Reject: Sendable, Equatable {
    public var reason = "", supportedVersion: UInt32 = protocolVersion, code: RejectCode = .unspecified, taskID = ""
    public init(_ code: RejectCode = .unspecified, _ reason: String = "", taskID: String = "", supportedVersion: UInt32 = protocolVersion) {
        self.code = code; self.reason = reason; self.taskID = taskID; self.supportedVersion = supportedVersion
    }
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

/// Why the coordinator tells a worker to exit (the .proto's `ShutdownCode`).
public enum ShutdownCode: UInt32, Sendable {
    case unspecified = 0, sweepComplete, coordinatorStopping, drained
}

public struct Shutdown: Sendable, Equatable {
    public var reason = "", code: ShutdownCode = .unspecified
    public init(reason: String = "", code: ShutdownCode = .unspecified) { self.reason = reason; self.code = code }
}

public struct BlobChunk: Sendable, Equatable {
    public var hash = "", offset: UInt64 = 0, totalSize: UInt64 = 0, data: [UInt8] = [], last = false
    public init(hash: String = "", offset: UInt64 = 0, totalSize: UInt64 = 0, data: [UInt8] = [], last: Bool = false) {
        self.hash = hash; self.offset = offset; self.totalSize = totalSize; self.data = data; self.last = last
    }

    /// A blob as the chunks that upload it, at most `maxChunk` bytes each, the last one marked
    /// (an empty blob is one empty, last chunk).
    public static func chunks(of bytes: [UInt8], hash: String, maxChunk: Int) -> [BlobChunk] {
        let chunk = max(1, maxChunk)
        var out: [BlobChunk] = [], offset = 0
        repeat {
            let end = min(bytes.count, offset + chunk)
            out.append(BlobChunk(hash: hash, offset: UInt64(offset), totalSize: UInt64(bytes.count), data: Array(bytes[offset..<end]), last: end == bytes.count))
            offset = end
        } while offset < bytes.count
        return out
    }
}

public struct StatusRequest: Sendable, Equatable {
    public var includeCorrelations = false, maxFailures: UInt32 = 0, maxWorkers: UInt32 = 0
    public init(includeCorrelations: Bool = false, maxFailures: UInt32 = 0, maxWorkers: UInt32 = 0) {
        self.includeCorrelations = includeCorrelations; self.maxFailures = maxFailures; self.maxWorkers = maxWorkers
    }
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

/// The autoscaler's pool as status shows it.
public struct PoolStatus: Sendable, Equatable {
    public var launcher = "", wanted: UInt32 = 0, submitted: UInt32 = 0, pending: UInt32 = 0, running: UInt32 = 0, draining: UInt32 = 0
    public var pendingReasons: [String] = [], lastDecision = ""
    public init() {}
}

public struct StatusReply: Sendable, Equatable {
    public var sweepID = "", counts: TaskCounts?, workers: [WorkerStatus] = [], recentFailures: [FailureInfo] = []
    public var correlations: [CorrelationInfo] = [], etaSeconds = 0.0, uptimeMs: UInt64 = 0, lateResultsDropped: UInt64 = 0
    /// Named counters, sorted by name.
    public var counters: [(name: String, value: UInt64)] = []
    public var correlationsAgeMs: UInt64 = 0, workersTotal: UInt32 = 0, journal = ""
    /// Stored records that failed their checksum at the last correlation pass.
    public var damagedRecords: UInt32 = 0
    /// The autoscaler's pool (nil without one).
    public var pool: PoolStatus?
    public init() {}

    public static func == (a: StatusReply, b: StatusReply) -> Bool {
        a.sweepID == b.sweepID && a.counts == b.counts && a.workers == b.workers && a.recentFailures == b.recentFailures
            && a.correlations == b.correlations && a.etaSeconds == b.etaSeconds && a.uptimeMs == b.uptimeMs
            && a.lateResultsDropped == b.lateResultsDropped && a.counters.map(\.name) == b.counters.map(\.name)
            && a.counters.map(\.value) == b.counters.map(\.value) && a.correlationsAgeMs == b.correlationsAgeMs
            && a.workersTotal == b.workersTotal && a.journal == b.journal && a.damagedRecords == b.damagedRecords && a.pool == b.pool
    }

    /// The counter of this name (0 when absent).
    public func counter(_ name: String) -> UInt64 { counters.first { $0.name == name }?.value ?? 0 }
}
