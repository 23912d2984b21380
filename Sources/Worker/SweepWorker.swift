import Compression
import Datasets
import Experiment
import Foundation
import NeuralCore
import Wire

/// Settings of a worker process.
public struct WorkerConfig: Sendable {
    public var connect: String
    public var workerID: String
    public var cacheDirectory: String
    public var curve: (keys: CurveKeyPair, serverKey: String)?
    /// Send Hello again when the coordinator has been silent this long.
    public var silenceMs: Int64 = 5000
    public var softwareVersion = apsweepVersion

    public init(connect: String, workerID: String, cacheDirectory: String) {
        self.connect = connect
        self.workerID = workerID
        self.cacheDirectory = cacheDirectory
    }
}

/// Why `SweepWorker.run` returned.
public enum WorkerExit: Equatable, Sendable {
    case shutdown(String)
    case rejected(String)
    case stopped
}

/// Connects to a coordinator, runs the tasks it is given with the Experiment module on local data,
/// heartbeats from this (the socket's) thread while a second thread trains, streams records, and
/// reconnects by itself when the coordinator goes away (see Proto/PROTOCOL.md §5).
public final class SweepWorker {
    let config: WorkerConfig
    let shards: [Shard]
    let context: ZMQContext
    let dealer: DealerEndpoint
    let log: (String) -> Void

    // Shared with the task thread.
    private let lock = NSLock()
    private var outbox: [Message] = []
    private var epoch: UInt32 = 0, step: UInt64 = 0
    private var cancelled = false
    private var finishedTask = false

    private var runningTask: String?
    private var runningAttempt: UInt32 = 0
    private var pendingAssign: Assign?
    private var lastResultMessages: [Message] = []
    private var heartbeatMs: Int64 = 1000
    private var maxChunk = 4 << 20
    private var welcomed = false
    private var lastHelloMs: Int64 = 0
    /// The task thread writes a byte here after each outbox change, waking the socket loop.
    private var wakePipe: [Int32] = [-1, -1]
    /// Tasks run here, one at a time, off the socket's thread.
    private let taskQueue = DispatchQueue(label: "apsweep-task", qos: .userInitiated)

    public init(config: WorkerConfig, shards: [Shard], log: @escaping (String) -> Void = { print($0) }) throws {
        self.config = config
        self.shards = shards
        self.log = log
        try FileManager.default.createDirectory(atPath: config.cacheDirectory, withIntermediateDirectories: true)
        context = try ZMQContext()
        dealer = try DealerEndpoint(context: context, connect: config.connect, identity: config.workerID, curve: config.curve)
        guard pipe(&wakePipe) == 0 else { throw WireError.encodingFailed("cannot create the wake-up pipe") }
        _ = fcntl(wakePipe[0], F_SETFL, O_NONBLOCK)
    }

    deinit {
        close(wakePipe[0])
        close(wakePipe[1])
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakePipe[1], &byte, 1)
    }

    private func drainWake() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(wakePipe[0], &buffer, 64) > 0 {}
    }

    func hello() -> Hello {
        var h = Hello()
        h.workerID = config.workerID
        h.host = ProcessInfo.processInfo.hostName
        h.cores = UInt32(ProcessInfo.processInfo.activeProcessorCount)
        h.softwareVersion = config.softwareVersion
        h.data = shards.map { DataHolding(dataset: $0.name, shardIndex: UInt32($0.index), shardCount: UInt32($0.count),
                                          fingerprint: $0.fingerprint, trainImages: UInt64($0.train.count)) }
        h.cachedBlobs = (try? FileManager.default.contentsOfDirectory(atPath: config.cacheDirectory).filter { $0.count == 64 }) ?? []
        h.blasThreads = UInt32(BLAS.threads)
        h.runningTaskID = runningTask ?? ""
        return h
    }

    /// Runs until the coordinator says Shutdown or Reject, or `stop()` returns true (SIGTERM):
    /// then a running task is reported as a retryable Failure so it is re-queued at once.
    public func run(stop: () -> Bool) throws -> WorkerExit {
        defer {
            dealer.socket.close()
            context.close()
        }
        try dealer.send(.hello(hello()))
        lastHelloMs = nowMillis()
        var lastHeard = nowMillis(), lastHeartbeat: Int64 = 0
        while true {
            if stop() {
                // Leaving: no more tasks (Ready with 0 slots), then hand the running one back.
                try? dealer.send(.ready(Ready(slots: 0)))
                if let task = runningTask {
                    try? dealer.send(.failure(Failure(taskID: task, attempt: runningAttempt, reason: "worker \(config.workerID) stopping (SIGTERM/SIGINT)", retryable: true)))
                }
                usleep(200_000)   // let them leave (LINGER is 0)
                return .stopped
            }
            if let envelope = try? dealer.receive(timeoutMs: 50, wake: wakePipe[0]) {
                lastHeard = nowMillis()
                if let exit = try handle(envelope.message) { return exit }
            }
            let now = nowMillis()
            if now - lastHeard > config.silenceMs {
                // The coordinator is gone or restarting: libzmq reconnects with backoff; say Hello
                // again so that a new coordinator learns who we are (heartbeats would only queue up).
                if now - lastHelloMs > config.silenceMs {
                    log("coordinator silent for \(now - lastHeard) ms; saying Hello again")
                    welcomed = false
                    try dealer.send(.hello(hello()))
                    lastHelloMs = now
                }
            } else if welcomed && now - lastHeartbeat >= heartbeatMs {
                lock.lock(); let (e, s) = (epoch, step); lock.unlock()
                try dealer.send(.heartbeat(Heartbeat(taskID: runningTask ?? "", epoch: e, step: s)))
                lastHeartbeat = now
            }
            drainWake()
            try flushOutbox()
        }
    }

    /// Handles one message; returns an exit reason when the worker must stop.
    func handle(_ message: Message) throws -> WorkerExit? {
        switch message {
        case let .welcome(w):
            heartbeatMs = Int64(max(100, w.heartbeatIntervalMs))
            maxChunk = Int(max(64 << 10, w.maxChunkBytes))
            let first = !welcomed
            welcomed = true
            if first && !lastResultMessages.isEmpty {
                // A result sent while the coordinator was away may be lost: send it again (a
                // coordinator that already has it drops and counts the duplicate).
                for m in lastResultMessages { try dealer.send(m) }
            }
            if runningTask == nil { try dealer.send(.ready(Ready(slots: 1))) }
        case let .assign(a):
            guard runningTask == nil else {
                // The coordinator's view of our slot was stale (a reconnect raced an Assign):
                // BUSY hands the task straight back without counting an attempt.
                try dealer.send(.failure(Failure(taskID: a.taskID, attempt: a.attempt, reason: "BUSY: worker busy with \(runningTask!)", retryable: true)))
                return nil
            }
            runningTask = a.taskID
            runningAttempt = a.attempt
            pendingAssign = a
            try fetchOrStart()
        case let .blobChunk(chunk):
            try receiveBlob(chunk)
        case .heartbeatAck:
            break
        case let .cancel(c):
            if c.taskID == runningTask {
                lock.lock(); cancelled = true; lock.unlock()
                log("task \(c.taskID.prefix(12)) cancelled: \(c.reason)")
            }
        case let .shutdown(s):
            return .shutdown(s.reason)
        case let .reject(r):
            if r.reason.hasPrefix("HELLO_REQUIRED") {
                // Messages queued while the coordinator was away each draw this reply: one Hello
                // per second is enough.
                welcomed = false
                if nowMillis() - lastHelloMs > 1000 {
                    try dealer.send(.hello(hello()))
                    lastHelloMs = nowMillis()
                }
            } else {
                return .rejected(r.reason)
            }
        default:
            break
        }
        return nil
    }

    // MARK: blobs

    func cachePath(_ hash: String) -> String { (config.cacheDirectory as NSString).appendingPathComponent(hash) }

    func fetchOrStart() throws {
        guard let a = pendingAssign else { return }
        if let missing = a.requiredBlobs.first(where: { !FileManager.default.fileExists(atPath: cachePath($0)) }) {
            let part = cachePath(missing) + ".part"
            // Resume a partial download where it stopped.
            let have = ((try? FileManager.default.attributesOfItem(atPath: part))?[.size] as? NSNumber)?.uint64Value ?? 0
            try dealer.send(.blobRequest(BlobRequest(hash: missing, offset: have, maxBytes: UInt32(maxChunk))))
            return
        }
        pendingAssign = nil
        startTask(a)
    }

    func receiveBlob(_ chunk: BlobChunk) throws {
        guard let a = pendingAssign, a.requiredBlobs.contains(chunk.hash) else { return }
        if chunk.totalSize == 0 {
            return try failTask(a, "the coordinator does not have checkpoint \(chunk.hash.prefix(12))", retryable: true)
        }
        let part = cachePath(chunk.hash) + ".part"
        if chunk.offset == 0 { FileManager.default.createFile(atPath: part, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: part) else { return try failTask(a, "cannot write \(part)", retryable: true) }
        try handle.seek(toOffset: chunk.offset)
        handle.write(Data(chunk.data))
        try handle.close()
        if chunk.last {
            let data = FileManager.default.contents(atPath: part) ?? Data()
            var h = SHA256Hasher()
            h.update(Array(data))
            guard h.hexDigest() == chunk.hash else {
                try? FileManager.default.removeItem(atPath: part)
                return try failTask(a, "checkpoint \(chunk.hash.prefix(12)) arrived corrupted", retryable: true)
            }
            try? FileManager.default.removeItem(atPath: cachePath(chunk.hash))
            try FileManager.default.moveItem(atPath: part, toPath: cachePath(chunk.hash))
        }
        try fetchOrStart()
    }

    func failTask(_ a: Assign, _ reason: String, retryable: Bool) throws {
        pendingAssign = nil
        runningTask = nil
        try dealer.send(.failure(Failure(taskID: a.taskID, attempt: a.attempt, reason: reason, retryable: retryable)))
        try dealer.send(.ready(Ready(slots: 1)))
    }

    // MARK: the task thread

    struct Cancelled: Error {}

    func startTask(_ a: Assign) {
        lock.lock(); epoch = 0; step = 0; cancelled = false; finishedTask = false; lock.unlock()
        taskQueue.async { [self] in
            let messages = self.execute(a)
            self.lock.lock()
            self.outbox.append(contentsOf: messages)
            self.finishedTask = true
            self.lock.unlock()
            self.wake()
        }
    }

    /// Runs the task to its final messages (uploads and Result, or Failure).
    func execute(_ a: Assign) -> [Message] {
        let started = Date()
        func failure(_ why: String, retryable: Bool) -> [Message] {
            [.failure(Failure(taskID: a.taskID, attempt: a.attempt, reason: why, retryable: retryable))]
        }
        guard a.specFormat == SweepTask.specFormat, let task = try? SweepTask.decode(a.spec) else {
            return failure("cannot read the task spec (format \(a.specFormat))", retryable: false)
        }
        if task.kind == .noop {
            usleep(UInt32(max(0, task.sleepMs ?? 0)) * 1000)
            var r = TaskResult()
            r.taskID = a.taskID; r.attempt = a.attempt; r.wallSeconds = Date().timeIntervalSince(started)
            return [.result(r)]
        }
        guard let data = shards.first(where: { $0.name == task.dataset && $0.index == task.shardIndex && $0.count == task.shardCount }) else {
            return failure("this worker does not hold \(task.dataset) shard \(task.shardIndex)/\(task.shardCount)", retryable: true)
        }
        var progress: [WireEpochRecord] = []
        let onRecord: (EpochRecord) throws -> Void = { [self] r in
            let w = WireRecords.wire(r)
            progress.append(w)
            self.lock.lock()
            self.epoch = UInt32(r.epoch)
            let stop = self.cancelled
            self.outbox.append(.progress(Progress(taskID: a.taskID, attempt: a.attempt, records: [w])))
            self.lock.unlock()
            self.wake()
            if stop { throw Cancelled() }
        }
        do {
            switch task.kind {
            case .baseline:
                let result = try Runner.runBaseline(BaselineTask(model: task.model, training: task.training ?? TrainingConfig(), seed: task.seed), data: data,
                                                    onStep: { [self] _, s, _, _, _, _ in self.lock.lock(); self.step = UInt64(s); self.lock.unlock() },
                                                    onEpoch: onRecord)
                let tmp = cachePath("upload-\(a.taskID).safetensors")
                try Checkpoint.write(result, spec: task.model, to: tmp)
                let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: tmp)))
                var h = SHA256Hasher()
                h.update(bytes)
                let hash = h.hexDigest()
                try? FileManager.default.removeItem(atPath: cachePath(hash))
                try FileManager.default.moveItem(atPath: tmp, toPath: cachePath(hash))
                var messages: [Message] = []
                var offset = 0
                repeat {
                    let end = min(bytes.count, offset + maxChunk)
                    messages.append(.blobChunk(BlobChunk(hash: hash, offset: UInt64(offset), totalSize: UInt64(bytes.count),
                                                         data: Array(bytes[offset..<end]), last: end == bytes.count)))
                    offset = end
                } while offset < bytes.count
                var r = TaskResult()
                r.taskID = a.taskID; r.attempt = a.attempt; r.records = progress; r.checkpointHash = hash
                r.baseline = BaselineSummary(trainAccuracy: result.trainAccuracy, testAccuracy: result.testAccuracy,
                                             trainLoss: result.trainLoss, testLoss: result.testLoss)
                r.wallSeconds = Date().timeIntervalSince(started)
                return messages + [.result(r)]
            case .noop:
                return []
            case .prune:
                guard let hash = a.requiredBlobs.first else { return failure("prune task without its baseline checkpoint", retryable: false) }
                guard let prune = task.prune else { return failure("prune task without prune settings", retryable: false) }
                let (spec, base) = try Checkpoint.read(path: cachePath(hash))
                _ = try Runner.runPrune(prune, model: spec, baseline: base, data: data, onRecord: onRecord)
                var r = TaskResult()
                r.taskID = a.taskID; r.attempt = a.attempt; r.records = progress
                r.wallSeconds = Date().timeIntervalSince(started)
                return [.result(r)]
            }
        } catch is Cancelled {
            return []
        } catch {
            return failure("\(error)", retryable: false)
        }
    }

    func flushOutbox() throws {
        lock.lock()
        let messages = outbox
        outbox.removeAll()
        let done = finishedTask
        if done { finishedTask = false }
        lock.unlock()
        for m in messages { try dealer.send(m) }
        if done {
            let finals = messages.filter { if case .progress = $0 { return false }; return true }
            if !finals.isEmpty { lastResultMessages = finals }
            if let task = runningTask { log("task \(task.prefix(12)) finished") }
            runningTask = nil
            try dealer.send(.ready(Ready(slots: 1)))
        }
    }
}

func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

/// EpochRecord ↔ the wire's record.
public enum WireRecords {
    public static func wire(_ r: EpochRecord) -> WireEpochRecord {
        var w = WireEpochRecord()
        w.epoch = UInt32(r.epoch)
        w.trainAccuracy = r.trainAccuracy; w.trainLoss = r.trainLoss; w.testAccuracy = r.testAccuracy; w.testLoss = r.testLoss
        w.pdTrain = r.pdTrain; w.pdTest = r.pdTest; w.lossDiffTrain = r.lossDiffTrain; w.lossDiffTest = r.lossDiffTest
        w.learningRate = r.learningRate; w.seconds = r.seconds
        w.layers = r.layerMetrics.map { LayerMetricValues(layer: $0.key, values: $0.values.map { MetricValue($0.0, $0.1) }) }
        w.total = r.totalMetrics.map { LayerMetricValues(layer: $0.key, values: $0.values.map { MetricValue($0.0, $0.1) }) }
        return w
    }
}
