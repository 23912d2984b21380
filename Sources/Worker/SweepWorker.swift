import BlobStore
import Datasets
import Experiment
import Foundation
import Messages
import NeuralCore
import Records
import Wire
import WorkerProtocol

/// Settings of a worker process.
public struct WorkerConfig: Sendable {
    public var connect: String
    public var workerID: String
    public var cacheDirectory: String
    public var curve: (keys: CurveKeyPair, serverKey: String)?
    /// Say Hello again when the coordinator has been silent this long.
    public var silenceMs: Int64 = 5000
    public var softwareVersion = apsweepVersion
    /// Exit when this file descriptor reaches end of file: the read end of a pipe whose write
    /// end the parent holds (`apsweep sweep`'s local workers die with their parent, SIGKILL too).
    public var parentPipe: Int32?

    public init(connect: String, workerID: String, cacheDirectory: String) {
        self.connect = connect
        self.workerID = workerID
        self.cacheDirectory = cacheDirectory
    }
}

/// A worker process: the protocol logic of `WorkerSession` over a DEALER socket, a task thread
/// that trains while this (the socket's) thread heartbeats, and a verified checkpoint cache.
/// Reconnects by itself when the coordinator goes away (Proto/PROTOCOL.md §6).
public final class SweepWorker {
    let config: WorkerConfig
    let shards: [Shard]
    let context: ZMQContext
    let dealer: DealerEndpoint
    let cache: BlobStore
    /// The classifier's inputs of the last baseline fine-tuned from, for its next prune task.
    let features = FeatureStore()
    let session: WorkerSession
    let log: (String) -> Void

    // Shared with the task thread.
    private let lock = NSLock()
    private var inbox: [WorkerSession.Input] = []
    private var cancelled = false
    private var step: UInt64 = 0
    /// The task thread writes a byte here after each inbox change, waking the socket loop.
    private var wakePipe: [Int32] = [-1, -1]
    /// Tasks run here, one at a time, off the socket's thread.
    private let taskQueue = DispatchQueue(label: "apsweep-task", qos: .userInitiated)

    public init(config: WorkerConfig, shards: [Shard], log: @escaping (String) -> Void = { print($0) }) throws {
        self.config = config
        self.shards = shards
        self.log = log
        cache = try BlobStore(directory: config.cacheDirectory)
        context = try ZMQContext()
        dealer = try DealerEndpoint(context: context, connect: config.connect, identity: config.workerID, curve: config.curve)
        guard pipe(&wakePipe) == 0 else { throw WireError.encodingFailed("cannot create the wake-up pipe") }
        _ = fcntl(wakePipe[0], F_SETFL, O_NONBLOCK)
        let data = shards.map { DataHolding(dataset: $0.name, shardIndex: UInt32($0.index), shardCount: UInt32($0.count),
                                            fingerprint: $0.fingerprint, trainImages: UInt64($0.train.count)) }
        // The process's incarnation: its start time, so that a later process has a larger one.
        let incarnation = UInt64(max(0, nowMillis())) &* 1000 &+ UInt64.random(in: 0..<1000)
        dealer.incarnation = incarnation
        session = WorkerSession(identity: .init(workerID: config.workerID, host: ProcessInfo.processInfo.hostName,
                                                cores: UInt32(ProcessInfo.processInfo.activeProcessorCount), softwareVersion: config.softwareVersion,
                                                data: data, blasThreads: UInt32(BLAS.threads), incarnation: incarnation),
                                now: nowMillis(), silenceMs: config.silenceMs)
    }

    deinit {
        close(wakePipe[0])
        close(wakePipe[1])
    }

    private func post(_ input: WorkerSession.Input) {
        lock.lock(); inbox.append(input); lock.unlock()
        var byte: UInt8 = 1
        _ = write(wakePipe[1], &byte, 1)
    }

    /// Runs until the coordinator says Shutdown or a Reject that ends workers, `stop()` returns
    /// true (SIGTERM: the running task is handed back), or the parent's pipe closes.
    public func run(stop: () -> Bool) throws -> WorkerExit {
        defer {
            dealer.socket.close()
            context.close()
        }
        if let exit = perform(session.start(now: nowMillis())) { return exit }
        while true {
            if stop() || parentGone() {
                _ = perform(session.handle(.stop, now: nowMillis()))
                usleep(200_000)   // let the last messages leave (LINGER is 0)
                return .stopped
            }
            var fds = [wakePipe[0]]
            if let p = config.parentPipe { fds.append(p) }
            let readable = (try? ZMQSocket.poll([dealer.socket], fds: fds, timeoutMs: 50)) ?? (sockets: [false], fds: fds.map { _ in false })
            if readable.sockets[0] {
                while let envelope = try? dealer.receive(timeoutMs: 0) {
                    if let exit = perform(session.handle(.received(envelope.message), now: nowMillis())) { return exit }
                }
            }
            var buffer = [UInt8](repeating: 0, count: 64)
            while read(wakePipe[0], &buffer, 64) > 0 {}
            lock.lock()
            let inputs = inbox
            inbox.removeAll()
            session.setStep(step)
            lock.unlock()
            for input in inputs {
                if let exit = perform(session.handle(input, now: nowMillis())) { return exit }
            }
            if let exit = perform(session.handle(.tick, now: nowMillis())) { return exit }
        }
    }

    /// Whether the parent that started this worker is gone (its end of our pipe closed).
    func parentGone() -> Bool {
        guard let p = config.parentPipe else { return false }
        var fds = pollfd(fd: p, events: Int16(POLLIN), revents: 0)
        guard poll(&fds, 1, 0) > 0 else { return false }
        var byte: UInt8 = 0
        return read(p, &byte, 1) <= 0
    }

    /// Carries out the session's outputs; returns an exit reason when the worker must stop.
    func perform(_ outputs: [WorkerSession.Output]) -> WorkerExit? {
        var pending = outputs[...]
        while let o = pending.popFirst() {
            switch o {
            case let .send(m):
                do {
                    if try !dealer.send(m) { log("the queue to the coordinator is full; \(m.name) dropped") }
                } catch { log("cannot send \(m.name): \(error)") }
            case let .checkCache(hash):
                // Re-hashed before use: a flipped bit in a cached checkpoint is found, not used.
                let ok = cache.verify(hash)
                if !ok && cache.contains(hash + ".corrupt") { log("cached checkpoint \(hash.prefix(12)) was corrupt; fetching it again") }
                pending += session.handle(.cacheChecked(hash: hash, ok: ok), now: nowMillis())
            case let .writeChunk(c):
                var complete = false, problem: String?
                do { complete = try cache.append(c.data, hash: c.hash, source: "coordinator", offset: c.offset, last: c.last) } catch {
                    problem = "\(error)"
                }
                pending += session.handle(.chunkWritten(hash: c.hash, nextOffset: c.offset + UInt64(c.data.count), complete: complete, error: problem), now: nowMillis())
            case let .startTask(a):
                start(a)
            case let .cancelTask(id):
                lock.lock(); cancelled = true; lock.unlock()
                log("task \(id.prefix(12)) cancelled")
            case let .log(line):
                log(line)
            case let .exit(reason):
                if case .stopped = reason { return nil }   // `run` lingers and returns
                usleep(100_000)
                return reason
            }
        }
        return nil
    }

    // MARK: the task thread

    func start(_ a: Assign) {
        lock.lock(); cancelled = false; step = 0; lock.unlock()
        taskQueue.async { [self] in
            let messages = self.execute(a)
            self.post(.finished(taskID: a.taskID, attempt: a.attempt, messages: messages))
        }
    }

    /// Runs the task to its final messages (checkpoint chunks and Result, or Failure); empty when cancelled.
    func execute(_ a: Assign) -> [Message] {
        let started = Date()
        func failure(_ why: String, retryable: Bool, blob: String = "") -> [Message] {
            [.failure(Failure(taskID: a.taskID, attempt: a.attempt, reason: why, retryable: retryable, unusableBlob: blob))]
        }
        guard a.specFormat == SweepTask.specFormat, let task = try? SweepTask.decode(a.spec) else {
            return failure("cannot read the task spec (format \(a.specFormat))", retryable: false)
        }
        var data: Shard?
        if task.kind != .noop {
            data = shards.first { $0.name == task.dataset && $0.index == task.shardIndex && $0.count == task.shardCount }
            if data == nil { return failure("this worker does not hold \(task.dataset) shard \(task.shardIndex)/\(task.shardCount)", retryable: true) }
        }
        let checkpoint = a.requiredBlobs.first.map { cache.path($0) }
        var records: [EpochRecord] = []
        do {
            let outcome = try TaskRunner.run(task, data: data, checkpoint: checkpoint, features: features,
                                             onStep: { [self] _, s, _, _, _, _ in
                                                 self.lock.lock(); self.step = UInt64(s); self.lock.unlock()
                                             },
                                             onRecord: { [self] r in
                                                 records.append(r)
                                                 self.post(.progress(taskID: a.taskID, attempt: a.attempt, record: r))
                                                 self.lock.lock(); let stop = self.cancelled; self.lock.unlock()
                                                 if stop { throw TaskError.cancelled }
                                             })
            var result = TaskResult()
            result.taskID = a.taskID
            result.attempt = a.attempt
            result.records = records
            result.wallSeconds = Date().timeIntervalSince(started)
            guard case let .baseline(b) = outcome else { return [.result(result)] }
            // A baseline's checkpoint goes into the cache, then to the coordinator in chunks.
            let bytes = [UInt8](try Checkpoint.encode(b, spec: task.model))
            let hash = try cache.store(bytes)
            let messages = BlobChunk.chunks(of: bytes, hash: hash, maxChunk: session.maxChunk).map(Message.blobChunk)
            result.checkpointHash = hash
            result.baseline = BaselineSummary(trainAccuracy: b.trainAccuracy, testAccuracy: b.testAccuracy, trainLoss: b.trainLoss, testLoss: b.testLoss)
            return messages + [.result(result)]
        } catch TaskError.cancelled {
            return []
        } catch let TaskError.unusableCheckpoint(path, reason) {
            return failure("the baseline checkpoint cannot be used: \(reason)", retryable: false, blob: (path as NSString).lastPathComponent)
        } catch let e as BlobError {
            // The worker's own disk, not the task: another worker may do better.
            return failure("this worker cannot store the checkpoint: \(e)", retryable: true)
        } catch {
            return failure("\(error)", retryable: false)
        }
    }
}

func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
