import Autoscaling
import BlobStore
import Foundation
import Journal
import Messages
import Records
import Scheduling
import Wire

/// Settings of a coordinator process. The scheduler's own (timers, attempts, limits) are in
/// `scheduler`; these are the shell's.
public struct CoordinatorConfig: Sendable {
    public var bind: String
    public var curve: CurveKeyPair?
    /// Public keys (Z85) admitted when `curve` is set.
    public var allowedWorkerKeys: Set<String>
    public var scheduler = SchedulerConfig()
    /// At most this many messages are handled before the batch is committed and sent.
    public var batchMessages = 5000
    /// … or this much time spent handling them.
    public var batchMs: Int64 = 10
    /// How often the WAL is copied into the journal file.
    public var checkpointEveryMs: Int64 = 30_000
    /// How often the correlations for `status` are recomputed (off the loop) when records changed.
    public var correlationsEveryMs: Int64 = 10_000
    /// Queue every FAILED task again before starting (`--retry-failed`).
    public var retryFailed = false

    public init(bind: String, curve: CurveKeyPair? = nil, allowedWorkerKeys: Set<String> = []) {
        self.bind = bind
        self.curve = curve
        self.allowedWorkerKeys = allowedWorkerKeys
    }
}

/// Why `SweepCoordinator.run` returned.
public enum CoordinatorOutcome: Equatable, Sendable {
    /// Every task is done or failed.
    case complete(done: Int, failed: Int)
    /// Stopped by a signal (leases released without counting, workers told, stop journaled).
    case stopped(reason: String)
    /// The journal or the blob store could not be written (disk full, I/O error): the coordinator
    /// stopped without sending anything its journal does not hold.
    case storageFailed(String)
}

/// The coordinator process: a thin loop around the pure `Scheduler`. Each turn it reads every
/// queued message (bounded by `batchMessages` and `batchMs`), hands each to the scheduler, ticks
/// it, then applies the effects in order — the journal batch in one transaction first, then the
/// sends — so that nothing leaves the coordinator that its journal does not already hold. File
/// work for blobs is done as the scheduler asks for it. Correlations for `status` come from a
/// second thread reading the journal; the loop never aggregates.
public final class SweepCoordinator {
    public let journal: SweepJournal
    public let blobs: BlobStore
    public let config: CoordinatorConfig
    let scheduler: Scheduler
    /// The ROUTER socket, with status requests answered ahead of queued results.
    let socket: RouterQueue
    let context: ZMQContext
    let authenticator: ZAPAuthenticator?
    let correlations: CorrelationService?
    /// The worker pool's autoscaler (`--autoscale`), if any: the loop publishes its view and
    /// carries out its drains and journal events.
    public var autoscale: AutoscaleService?
    private var lastPoolViewMs: Int64 = 0
    /// Lines the coordinator logs (stderr by default).
    public var log: (String) -> Void = { FileHandle.standardError.write(Data(("coordinator: " + $0 + "\n").utf8)) }
    /// Called after every committed batch with the current counts (live progress in the CLI).
    public var onCommit: ((TaskCounts) -> Void)?
    private var finished = false
    /// When the sweep completed under an autoscaler: the loop runs on (answering late Hellos
    /// with Shutdown) until every job it launched has ended, or this time has passed.
    private var autoscaleDeadlineMs: Int64?
    private var lastCheckpointMs: Int64 = 0
    private var lastTrimMs: Int64 = 0
    /// Set when the blob store could not be written: the coordinator stops cleanly.
    private var storageFailure: String?

    /// `describeSpec` turns a journal's task spec into the label and data key used for
    /// correlations (nil: status shows no correlations).
    public init(journal: SweepJournal, blobs: BlobStore, config: CoordinatorConfig, correlations: CorrelationService? = nil) throws {
        self.journal = journal
        self.blobs = blobs
        self.config = config
        self.correlations = correlations
        context = try ZMQContext()
        if config.curve != nil {
            let auth = try ZAPAuthenticator(context: context, allowedPublicKeys: config.allowedWorkerKeys)
            auth.start()
            authenticator = auth
        } else {
            authenticator = nil
        }
        let router = try RouterEndpoint(context: context, bind: config.bind, curve: config.curve,
                                        maxFrameBytes: max(Codec.defaultMaxFrameBytes, config.scheduler.maxChunkBytes + (1 << 16)))
        socket = RouterQueue(router: router)
        // Specs stay in the journal (64 MB at 100,000 tasks); each Assign reads its own.
        var state = try journal.load(specs: false)
        if state.sweepID.isEmpty { state.sweepID = String(UUID().uuidString.prefix(8)).lowercased() }
        scheduler = Scheduler(restoring: state, config: config.scheduler, now: nowMs())
        if try journal.meta("sweep_id") == nil { try journal.apply([.meta(key: "sweep_id", value: state.sweepID)]) }
        try journal.apply([.meta(key: "apsweep_version", value: apsweepVersion)])
        if config.retryFailed { scheduler.handle(.retryFailed, now: nowMs()) }
        // A sweep already complete when restored says so in this first commit: the loop ends at once.
        finished = try commit()
        correlations?.start()
    }

    /// The bound endpoint (with the port chosen when binding "tcp://…:*").
    public var endpoint: String { socket.endpoint }

    public var isFinished: Bool { scheduler.isFinished }
    public var taskCount: Int { scheduler.taskCount }

    /// Task states by id (tests and the CLI).
    public var taskStates: [String: TaskState] {
        (try? journal.tasks()).map { Dictionary(uniqueKeysWithValues: $0.map { ($0.task.id, $0.row.state) }) } ?? [:]
    }

    public func status(_ request: StatusRequest = StatusRequest()) -> StatusReply { decorate(scheduler.status(request, now: nowMs())) }

    /// Runs until the sweep is complete (when the scheduler says so), `stop()` gives a reason
    /// (SIGINT/SIGTERM), or the journal fails.
    public func run(stop: () -> String? = { nil }) -> CoordinatorOutcome {
        defer { close() }
        autoscale?.start()
        while true {
            if let reason = stop() ?? storageFailure {
                scheduler.handle(.stop(reason: reason), now: nowMs())
                if let a = autoscale {
                    // A clean stop ends the jobs it launched too (their workers are told to go).
                    var view = poolView()
                    view.finished = true
                    a.finish(view)
                    serveAutoscaler()
                }
                if case let .storageFailed(why)? = try? commitOrFail() { return .storageFailed(why) }
                linger()
                return storageFailure.map { .storageFailed($0) } ?? .stopped(reason: reason)
            }
            let turn = nowMs()
            var handled = 0
            var waited = false
            while handled < config.batchMessages && nowMs() - turn < config.batchMs {
                guard let incoming = socket.next(timeoutMs: waited ? 0 : 50) else { break }
                waited = true
                handled += 1
                handle(incoming)
            }
            scheduler.handle(.tick, now: nowMs())
            serveAutoscaler()
            if case let .storageFailed(why)? = try? commitOrFail() { return .storageFailed(why) }
            if nowMs() - lastCheckpointMs > config.checkpointEveryMs {
                journal.checkpoint()
                lastCheckpointMs = nowMs()
            }
            if nowMs() - lastTrimMs > 10_000 {
                returnFreedMemory()
                lastTrimMs = nowMs()
            }
            if finished {
                if let a = autoscale {
                    // Every job the autoscaler still holds ends, and is journaled, before exit:
                    // the loop keeps serving (a worker whose Hello arrives now is told Shutdown)
                    // while the autoscaler waits for the jobs and cancels what is left.
                    let deadline = autoscaleDeadlineMs ?? nowMs() + a.finishBudgetMs
                    if autoscaleDeadlineMs == nil { autoscaleDeadlineMs = deadline; a.beginFinish() }
                    if !a.isFinished && nowMs() < deadline { continue }
                    a.stop()
                    serveAutoscaler()
                    _ = try? commitOrFail()
                }
                linger()
                return .complete(done: scheduler.count(.done), failed: scheduler.count(.failed))
            }
        }
    }

    /// One message, handed to the scheduler (status requests are answered at once: a status
    /// needs nothing committed first).
    func handle(_ incoming: Incoming) {
        for line in socket.takeProblems() { log(line) }
        switch incoming {
        case let .message(peer, envelope):
            if case let .statusRequest(request) = envelope.message {
                send(.statusReply(decorate(scheduler.answerStatus(request, now: nowMs()))), to: peer)
            } else {
                scheduler.handle(.message(peer: peer, envelope.message, incarnation: envelope.incarnation), now: nowMs())
            }
        case let .refused(peer, code, reason):
            scheduler.handle(.refused(peer: peer, code: code, reason: reason), now: nowMs())
        }
        runBlobIO()
    }

    /// Sends without blocking; a send that fails goes back to the scheduler (what that produces
    /// goes with the next batch).
    func send(_ message: Message, to peer: [UInt8]) {
        let outcome: SendOutcome
        do { outcome = try socket.send(message, to: peer) } catch {
            log("cannot encode \(message.name): \(error)")
            return
        }
        if outcome != .sent { scheduler.handle(.sendFailed(peer: peer, message: message, unreachable: outcome == .unreachable), now: nowMs()) }
    }

    /// What the autoscaler decides from: waiting tasks, the sweep's end, every worker's state.
    func poolView() -> PoolView {
        PoolView(waiting: scheduler.waitingCount, finished: scheduler.isFinished, workers: scheduler.workerStates())
    }

    /// Publishes the pool's view (about once a second) and applies what the autoscaler asked.
    func serveAutoscaler() {
        guard let a = autoscale else { return }
        if nowMs() - lastPoolViewMs >= 1000 {
            a.publish(poolView())
            lastPoolViewMs = nowMs()
        }
        for line in a.takeLog() { log(line) }
        for r in a.takeRequests() {
            switch r {
            case let .drain(worker, reason): scheduler.handle(.drain(worker: worker, reason: reason), now: nowMs())
            case let .note(kind, worker, detail): scheduler.handle(.note(kind: kind, worker: worker, detail: detail), now: nowMs())
            }
        }
    }

    /// Commits and sends; returns `.journalFailed` when the journal refused the batch.
    private func commitOrFail() throws -> CoordinatorOutcome? {
        do {
            if try commit() { finished = true }
            return nil
        } catch {
            log("cannot write the journal: \(error)")
            log("stopping without sending what the journal does not hold; run the same command again once the cause is fixed")
            return .storageFailed("\(error)")
        }
    }

    /// Applies the scheduler's effects: journal first, then sends. Returns whether the
    /// scheduler's work is over. A send that fails is fed back to the scheduler.
    @discardableResult
    func commit() throws -> Bool {
        let effects = scheduler.takeEffects()
        try journal.apply(effects.journal)
        for line in effects.logs { log(line) }
        for (peer, message) in effects.sends {
            guard let message = withSpec(message) else { continue }
            send(decorated(message), to: peer)
        }
        if !effects.journal.isEmpty, let onCommit { onCommit(scheduler.status(StatusRequest(maxWorkers: 1), now: nowMs()).counts ?? TaskCounts()) }
        return effects.finished
    }

    /// The file work the scheduler asked for, done at once (its outcome is handled before the
    /// next message).
    func runBlobIO() {
        while true {
            let work = scheduler.takeBlobIO()
            if work.isEmpty { return }
            for io in work {
                switch io {
                case let .write(uploader, chunk):
                    do {
                        if try blobs.append(chunk.data, hash: chunk.hash, source: uploader, offset: chunk.offset, last: chunk.last) {
                            scheduler.handle(.blobStored(hash: chunk.hash, size: chunk.totalSize, uploader: uploader), now: nowMs())
                        }
                    } catch let e as BlobError {
                        scheduler.handle(.blobRejected(hash: chunk.hash, uploader: uploader, reason: e.description), now: nowMs())
                        if case .diskFull = e {
                            log("\(e)")
                            storageFailure = e.description
                        }
                    } catch {
                        scheduler.handle(.blobRejected(hash: chunk.hash, uploader: uploader, reason: "\(error)"), now: nowMs())
                    }
                case let .serve(peer, hash, offset, maxBytes):
                    guard blobs.verify(hash) else {
                        scheduler.handle(.blobMissing(hash: hash, reason: blobs.contains(hash + ".corrupt") ? "corrupt" : "missing from \(blobs.directory)"), now: nowMs())
                        _ = try? socket.send(.reject(Reject(.unknownBlob, "checkpoint \(hash.prefix(12)) is not intact here; its baseline runs again")), to: peer)
                        continue
                    }
                    do {
                        let (data, total) = try blobs.read(hash, offset: offset, maxBytes: maxBytes)
                        let chunk = BlobChunk(hash: hash, offset: offset, totalSize: total, data: data, last: offset + UInt64(data.count) >= total)
                        _ = try socket.send(.blobChunk(chunk), to: peer)
                    } catch {
                        scheduler.handle(.blobMissing(hash: hash, reason: "unreadable: \(error)"), now: nowMs())
                    }
                }
            }
        }
    }

    /// Gives the heap's free pages back to the system (glibc's malloc_trim; a no-op elsewhere),
    /// every 10 s from the loop (3–25 ms measured). Startup (the plan, the journal's rows) and
    /// the correlation passes free hundreds of MB at 100,000 tasks that glibc would otherwise keep.
    func returnFreedMemory() {
        typealias Trim = @convention(c) (Int) -> Int32
        if let trim = Self.mallocTrim { _ = unsafeBitCast(trim, to: Trim.self)(0) }
    }

    private static let mallocTrim = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim")

    /// An Assign with its task's spec read from the journal (the scheduler holds none). When
    /// the journal cannot give it, nothing is sent and the coordinator stops as on a storage
    /// failure: the lease is released uncounted by the stop.
    func withSpec(_ message: Message) -> Message? {
        guard case var .assign(a) = message, a.spec.isEmpty else { return message }
        do {
            a.spec = try journal.spec(ofTask: a.taskID)
            return .assign(a)
        } catch {
            log("cannot read the spec of task \(a.taskID) from the journal: \(error)")
            storageFailure = storageFailure ?? "cannot read the journal: \(error)"
            return nil
        }
    }

    /// Status replies get the latest correlations and the journal's path; the scheduler does
    /// not know either.
    func decorated(_ message: Message) -> Message {
        guard case let .statusReply(r) = message else { return message }
        return .statusReply(decorate(r))
    }

    func decorate(_ reply: StatusReply) -> StatusReply {
        var r = reply
        r.journal = journal.path
        if let a = autoscale { r.pool = a.status() }
        if let latest = correlations?.latest() {
            r.correlations = latest.correlations
            r.damagedRecords = UInt32(clamping: latest.damagedRecords)
            r.correlationsAgeMs = UInt64(max(0, nowMs() - latest.atMs))
        }
        return r
    }

    /// Gives the last messages (Shutdown) a moment on the wire.
    func linger() {
        let until = nowMs() + 200
        while nowMs() < until {
            if let incoming = socket.next(timeoutMs: 20), case let .message(peer, envelope) = incoming, case let .statusRequest(request) = envelope.message {
                send(.statusReply(decorate(scheduler.answerStatus(request, now: nowMs()))), to: peer)
            }
        }
    }

    func close() {
        correlations?.stop()
        autoscale?.stop()
        socket.close()
        authenticator?.stop()
        context.close()
    }
}
