import Messages
import Records

/// Why a worker stopped.
public enum WorkerExit: Equatable, Sendable {
    case shutdown(String)
    case rejected(String)
    case stopped
}

/// The worker's side of the protocol (Proto/PROTOCOL.md §6) as a pure state machine: inputs in,
/// outputs out, no sockets, no files, no clock. `SweepWorker` runs it over a DEALER socket, a task
/// thread and the checkpoint cache; the simulator runs it over a simulated network.
public final class WorkerSession {
    public struct Identity: Sendable {
        public var workerID: String
        public var host: String
        public var cores: UInt32
        public var softwareVersion: String
        public var data: [DataHolding]
        public var blasThreads: UInt32
        /// Drawn once per process start (see Hello.incarnation).
        public var incarnation: UInt64
        public init(workerID: String, host: String, cores: UInt32, softwareVersion: String, data: [DataHolding], blasThreads: UInt32 = 1,
                    incarnation: UInt64) {
            self.workerID = workerID; self.host = host; self.cores = cores; self.softwareVersion = softwareVersion
            self.data = data; self.blasThreads = blasThreads; self.incarnation = incarnation
        }
    }

    public enum Input: Sendable {
        case received(Message)
        /// Time passed (heartbeats, the coordinator's silence).
        case tick
        /// The running task produced the record of an epoch.
        case progress(taskID: String, attempt: UInt32, record: EpochRecord)
        /// The task thread ended: its final messages (checkpoint chunks and Result, or Failure),
        /// empty when it was cancelled.
        case finished(taskID: String, attempt: UInt32, messages: [Message])
        /// The cache holds blob `hash`, verified (`ok`), or not (`ok` false: fetch it).
        case cacheChecked(hash: String, ok: Bool)
        /// A fetched chunk was written to the cache; `complete` when the blob is whole and verified.
        case chunkWritten(hash: String, nextOffset: UInt64, complete: Bool, error: String?)
        /// SIGTERM/SIGINT: leave (hand the running task back).
        case stop
    }

    public enum Output: Sendable, Equatable {
        case send(Message)
        /// Check the cache for `hash` (re-hashing it) and answer `.cacheChecked`.
        case checkCache(hash: String)
        /// Write a fetched chunk into the cache and answer `.chunkWritten`.
        case writeChunk(BlobChunk)
        case startTask(Assign)
        case cancelTask(String)
        case log(String)
        case exit(WorkerExit)
    }

    public let identity: Identity
    /// Say Hello again when the coordinator has been silent this long.
    public var silenceMs: Int64
    var welcomed = false
    /// A Hello went out because the coordinator did not know us (restart) or was silent: the
    /// next Welcome is answered with the last result again and the pending fetch.
    var reconnecting = false
    var lastHeardMs: Int64
    var lastHelloMs: Int64 = .min / 2
    var lastHeartbeatMs: Int64 = .min / 2
    var heartbeatMs: Int64 = 1000
    public private(set) var maxChunk = 4 << 20
    /// The task this worker holds (running, or fetching its checkpoints).
    public private(set) var task: Assign?
    /// The task thread is running `task`.
    public private(set) var running = false
    var fetching: (hash: String, offset: UInt64)?
    /// When the last BlobRequest went out: a request lost with a restarting coordinator is sent again.
    var lastFetchMs: Int64 = 0
    var epoch: UInt32 = 0
    var step: UInt64 = 0
    /// The last finished task's final messages, sent again after a reconnect (a coordinator that
    /// already has them drops and counts the duplicate).
    var lastFinal: [Message] = []
    var leaving = false
    var outputs: [Output] = []

    public init(identity: Identity, now: Int64, silenceMs: Int64 = 5000) {
        self.identity = identity
        self.silenceMs = silenceMs
        lastHeardMs = now
    }

    /// The first message of a connection.
    public func start(now: Int64) -> [Output] {
        sendHello(now)
        return take()
    }

    func take() -> [Output] {
        defer { outputs.removeAll() }
        return outputs
    }

    func send(_ m: Message) { outputs.append(.send(m)) }

    func hello() -> Hello {
        var h = Hello()
        h.workerID = identity.workerID
        h.host = identity.host
        h.cores = identity.cores
        h.softwareVersion = identity.softwareVersion
        h.data = identity.data
        h.blasThreads = identity.blasThreads
        h.runningTaskID = task?.taskID ?? ""
        h.incarnation = identity.incarnation
        return h
    }

    func sendHello(_ now: Int64) {
        send(.hello(hello()))
        lastHelloMs = now
    }

    /// The step counter inside an epoch, for heartbeats (set from the task thread's progress).
    public func setStep(_ step: UInt64) { self.step = step }

    public func handle(_ input: Input, now: Int64) -> [Output] {
        switch input {
        case let .received(m):
            lastHeardMs = now
            receive(m, now: now)
        case .tick:
            tick(now)
        case let .progress(taskID, attempt, record):
            guard task?.taskID == taskID, task?.attempt == attempt else { break }
            epoch = UInt32(clamping: record.epoch)
            send(.progress(Progress(taskID: taskID, attempt: attempt, records: [record])))
        case let .finished(taskID, attempt, messages):
            guard task?.taskID == taskID, task?.attempt == attempt else { break }
            for m in messages { send(m) }
            if !messages.isEmpty { lastFinal = messages }
            outputs.append(.log("task \(taskID.prefix(12)) \(messages.isEmpty ? "cancelled" : "finished")"))
            task = nil
            running = false
            if !leaving { send(.ready(Ready(slots: 1))) }
        case let .cacheChecked(hash, ok):
            guard let a = task, !running, a.requiredBlobs.contains(hash) else { break }
            if ok { nextBlob(after: hash) } else { fetch(hash, from: 0, now: now) }
        case let .chunkWritten(hash, next, complete, error):
            guard let a = task, !running, fetching?.hash == hash else { break }
            if let error {
                failPending(a, "cannot store checkpoint \(hash.prefix(12)) in the cache: \(error)", retryable: true)
            } else if complete { fetching = nil; nextBlob(after: hash) } else { fetch(hash, from: next, now: now) }
        case .stop:
            leaving = true
            // Leaving: no more tasks (Ready with 0 slots), then hand the running one back.
            send(.ready(Ready(slots: 0)))
            if let a = task {
                send(.failure(Failure(taskID: a.taskID, attempt: a.attempt, reason: "worker \(identity.workerID) stopping (SIGTERM/SIGINT)", retryable: true)))
                if running { outputs.append(.cancelTask(a.taskID)) }
            }
            outputs.append(.exit(.stopped))
        }
        return take()
    }

    func tick(_ now: Int64) {
        if now - lastHeardMs > silenceMs {
            // The coordinator is gone or restarting: libzmq reconnects with backoff; say Hello
            // again so that a new coordinator learns who we are.
            if now - lastHelloMs > silenceMs {
                outputs.append(.log("coordinator silent for \(now - lastHeardMs) ms; saying Hello again"))
                welcomed = false
                reconnecting = true
                sendHello(now)
            }
        } else if !welcomed {
            // Heard, but not welcomed (the Welcome was lost with a reconnect): ask again.
            if now - lastHelloMs > 1000 { sendHello(now) }
        } else if now - lastHeartbeatMs >= heartbeatMs {
            send(.heartbeat(Heartbeat(taskID: task?.taskID ?? "", epoch: epoch, step: step, attempt: task?.attempt ?? 0)))
            lastHeartbeatMs = now
        }
        if welcomed, let f = fetching, now - lastFetchMs > max(3000, 3 * heartbeatMs) {
            // No chunk came back: the request (or its answer) was lost. Ask again.
            fetch(f.hash, from: f.offset, now: now)
        }
    }

    func receive(_ m: Message, now: Int64) {
        switch m {
        case let .welcome(w):
            heartbeatMs = Int64(max(100, w.heartbeatIntervalMs))
            silenceMs = max(silenceMs, Int64(w.livenessMs))
            // Chunks never exceed what the coordinator announced (it refuses larger ones).
            maxChunk = w.maxChunkBytes > 0 ? Int(w.maxChunkBytes) : 4 << 20
            let first = !welcomed || reconnecting
            welcomed = true
            reconnecting = false
            if first {
                for m in lastFinal { send(m) }
                if let f = fetching { fetch(f.hash, from: f.offset, now: now) }
            }
            // Every Welcome of an idle worker gets a Ready: it is idempotent, and a coordinator that
            // re-registered us (after a restart or a repeated Hello) waits for it.
            if task == nil && !leaving { send(.ready(Ready(slots: 1))) }
        case let .assign(a):
            lastFinal = []   // the coordinator read our Ready, so everything sent before it
            guard task == nil, !leaving else {
                // The coordinator's view of our slot was stale (a reconnect raced an Assign): BUSY
                // hands the task straight back without counting an attempt.
                send(.failure(Failure(taskID: a.taskID, attempt: a.attempt, reason: "BUSY: worker busy with \(task?.taskID ?? "leaving")", retryable: true)))
                return
            }
            task = a
            epoch = 0
            step = 0
            if let first = a.requiredBlobs.first { outputs.append(.checkCache(hash: first)) } else { begin(a) }
        case let .blobChunk(c):
            guard let f = fetching, task != nil, !running, c.hash == f.hash, c.offset == f.offset else { return }
            outputs.append(.writeChunk(c))
        case .heartbeatAck:
            break
        case let .cancel(c):
            guard let a = task, a.taskID == c.taskID else { return }
            outputs.append(.log("task \(c.taskID.prefix(12)) cancelled: \(c.reason)"))
            if running {
                outputs.append(.cancelTask(a.taskID))   // `.finished` with no messages follows
            } else {
                task = nil
                fetching = nil
                send(.ready(Ready(slots: 1)))
            }
        case let .shutdown(s):
            if let a = task, running { outputs.append(.cancelTask(a.taskID)) }
            outputs.append(.exit(.shutdown(s.reason)))
        case let .reject(r):
            reject(r, now: now)
        default:
            break
        }
    }

    func reject(_ r: Reject, now: Int64) {
        switch r.code {
        case .helloRequired:
            // Messages queued while the coordinator was away each draw this reply: one Hello
            // per second is enough. (Such a reply can arrive after the Welcome of that Hello, so
            // it does not stop heartbeats.)
            reconnecting = true
            if now - lastHelloMs > 1000 { sendHello(now) }
        case .notLeaseHolder:
            // The coordinator no longer counts this task as ours: stop it.
            if let a = task, a.taskID == r.taskID {
                outputs.append(.log("task \(a.taskID.prefix(12)): the coordinator says this worker no longer holds it"))
                if running { outputs.append(.cancelTask(a.taskID)) } else { task = nil; fetching = nil; send(.ready(Ready(slots: 1))) }
            }
            if lastFinal.contains(where: { if case let .result(x) = $0 { return x.taskID == r.taskID }; return false }) { lastFinal = [] }
        case .unknownBlob:
            if let a = task, !running { failPending(a, "the coordinator does not hold a checkpoint this task needs: \(r.reason)", retryable: true) }
        default:
            if r.code.endsTheWorker {
                outputs.append(.exit(.rejected("\(r.code.name): \(r.reason)")))
            } else {
                outputs.append(.log("coordinator refused a message (\(r.code.name)): \(r.reason)"))
            }
        }
    }

    func fetch(_ hash: String, from offset: UInt64, now: Int64) {
        fetching = (hash, offset)
        lastFetchMs = now
        send(.blobRequest(BlobRequest(hash: hash, offset: offset, maxBytes: UInt32(maxChunk))))
    }

    func nextBlob(after hash: String) {
        guard let a = task, let i = a.requiredBlobs.firstIndex(of: hash) else { return }
        if i + 1 < a.requiredBlobs.count { outputs.append(.checkCache(hash: a.requiredBlobs[i + 1])) } else { begin(a) }
    }

    func begin(_ a: Assign) {
        running = true
        fetching = nil
        outputs.append(.startTask(a))
    }

    func failPending(_ a: Assign, _ reason: String, retryable: Bool) {
        task = nil
        fetching = nil
        send(.failure(Failure(taskID: a.taskID, attempt: a.attempt, reason: reason, retryable: retryable)))
        if !leaving { send(.ready(Ready(slots: 1))) }
    }
}
