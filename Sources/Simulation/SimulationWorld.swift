import Digest
import Messages
import Records
import Scheduling
import WorkerProtocol

/// xoshiro256** seeded through SplitMix64: the simulator's only source of randomness.
struct SimRandom {
    var s: (UInt64, UInt64, UInt64, UInt64)
    init(seed: UInt64) {
        var x = seed
        func split() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (split(), split(), split(), split())
    }
    mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3; s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
    mutating func int64(_ range: ClosedRange<Int64>) -> Int64 { range.lowerBound + Int64(next() % UInt64(range.upperBound - range.lowerBound + 1)) }
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
}

/// One seeded run of a sweep over a simulated network and clock. The coordinator is the real
/// `Scheduler` over a `MemoryJournal`; workers are the real `WorkerSession`. Everything else —
/// latency, loss, duplication, reordering, crashes, partitions, pauses, departures, clock steps —
/// is drawn from the seed, so a failing seed replays exactly.
public final class SimulationWorld {
    // MARK: settings drawn from the seed
    public let seed: UInt64
    var rng: SimRandom
    public let config: SchedulerConfig
    public let plan: [PlannedTask]
    /// Tasks that raise on every attempt (they must end FAILED after max_attempts).
    let poison: Set<String>
    let dropRate: Double, duplicateRate: Double, reorderRate: Double, failRate: Double
    /// Faults happen before this time; afterwards every survivor is up and healed.
    let faultsEndMs: Int64
    let deadlineMs: Int64
    public private(set) var trace: [String] = []
    let keepTrace: Bool

    // MARK: the coordinator
    public let journal: MemoryJournal
    /// What the journal held before anything ran.
    public let initialState: JournalState
    var scheduler: Scheduler?
    var coordinatorUpAt: Int64 = 0
    /// Counts coordinator starts: what a crashed coordinator queued dies with it.
    var coordinatorGeneration = 0
    var clockOffset: Int64 = 0
    var blobStore: [String: [UInt8]] = [:]
    var uploads: [String: [UInt8]] = [:]
    /// A crash planned for the next batch: before the commit, or after `sends` of its messages.
    var crashAtNextBatch: (beforeCommit: Bool, sends: Int)?
    public private(set) var coordinatorCrashes = 0
    /// The faults that really happened, in order, by kind (a planned fault that found its target
    /// already down is not one).
    public private(set) var faults: [String] = []
    /// The run's fault schedule as one string: the network's kinds of misbehaviour and the
    /// ordered fault kinds. Two seeds with the same string exercised the same sequence of faults.
    public var faultSchedule: String {
        let net = [dropRate > 0 ? "drop" : nil, duplicateRate > 0 ? "dup" : nil, reorderRate > 0 ? "reorder" : nil,
                   failRate > 0 ? "raise" : nil, poison.isEmpty ? nil : "poison"].compactMap { $0 }
        return net.joined(separator: "+") + "|" + faults.joined(separator: ",")
    }
    /// Messages sent to the coordinator while it was down (a DEALER's queue), delivered after restart.
    var heldForCoordinator: [(from: String, incarnation: Int, message: Message)] = []

    // MARK: workers
    struct SimWorker {
        var id: String
        var incarnation = 0
        var session: WorkerSession
        var up = true
        var pausedUntil: Int64 = 0
        var partitionedUntil: Int64 = 0
        var cache: [String: [UInt8]] = [:]
        var partial: [UInt8] = []
        var task: (id: String, attempt: UInt32, cancelled: Bool)?
        var holdings: [DataHolding]
        /// Left for good (SIGTERM, not restarted).
        var gone = false
        var heldWhilePaused: [Message] = []
    }
    var workers: [SimWorker] = []
    func worker(_ id: String) -> Int? { workers.firstIndex { $0.id == id } }

    // MARK: ground truth for the invariants
    /// Per worker: intervals in which it was crashed, partitioned or paused.
    var faultIntervals: [String: [(from: Int64, to: Int64)]] = [:]
    /// (task, attempt) pairs whose run raised (the task's own failure).
    var raised = Set<String>()
    var violations: [String] = []
    var oracle = Oracle()

    // MARK: events
    enum Action {
        case toCoordinator(from: String, incarnation: Int, Message)
        case toWorker(String, incarnation: Int, Message)
        case coordinatorTick
        case workerTick(String, incarnation: Int)
        case taskEpoch(String, incarnation: Int, task: String, attempt: UInt32, epoch: Int)
        case crashCoordinator(beforeCommit: Bool, sends: Int)
        case restartCoordinator
        case crashWorker(String)
        case restartWorker(String)
        case partition(String, Int64)
        case pause(String, Int64)
        case leave(String)
        case join(String)
        case clockStep(Int64)
        /// The socket thread reports a send that could not leave (to the coordinator that sent it).
        case sendFailed(peer: String, Message, coordinator: Int)
    }
    struct Scheduled { var at: Int64; var seq: Int; var action: Action }
    var queue: [Scheduled] = []
    var seq = 0
    var now: Int64 = 0

    func at(_ t: Int64, _ a: Action) {
        seq += 1
        let e = Scheduled(at: t, seq: seq, action: a)
        // Binary heap on (at, seq).
        queue.append(e)
        var i = queue.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if (queue[p].at, queue[p].seq) <= (queue[i].at, queue[i].seq) { break }
            queue.swapAt(p, i)
            i = p
        }
    }

    func pop() -> Scheduled? {
        guard !queue.isEmpty else { return nil }
        let top = queue[0]
        let last = queue.removeLast()
        if !queue.isEmpty {
            queue[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < queue.count && (queue[l].at, queue[l].seq) < (queue[m].at, queue[m].seq) { m = l }
                if r < queue.count && (queue[r].at, queue[r].seq) < (queue[m].at, queue[m].seq) { m = r }
                if m == i { break }
                queue.swapAt(m, i)
                i = m
            }
        }
        return top
    }

    public init(seed: UInt64, keepTrace: Bool = false) {
        self.seed = seed
        self.keepTrace = keepTrace
        rng = SimRandom(seed: seed)
        var c = SchedulerConfig()
        c.heartbeatMs = 1000
        c.livenessMs = 5000
        c.leaseMs = 15000
        c.maxAttempts = rng.int(2...4)
        c.maxHandbacks = 30
        c.maxChunkBytes = 16 << 10
        c.summaryEveryMs = 20_000
        config = c
        dropRate = rng.chance(0.5) ? 0 : Double(rng.int(1...3)) / 100
        duplicateRate = rng.chance(0.5) ? 0 : Double(rng.int(1...3)) / 100
        reorderRate = Double(rng.int(0...10)) / 100
        failRate = Double(rng.int(0...8)) / 100
        // The plan: baselines on one or two shards, prune tasks depending on them, some no-op tasks.
        let shards = rng.int(1...2)
        var tasks: [PlannedTask] = []
        for b in 0..<rng.int(1...3) {
            let key = DataKey(dataset: "sim", shard: b % shards, count: shards)
            let baseID = "base-\(b)"
            tasks.append(PlannedTask(id: baseID, kind: .baseline, label: "baseline \(b)", spec: Array("b\(b)".utf8), dependsOn: nil,
                                     data: key, epochs: 1...rng.int(1...3)))
            for p in 0..<rng.int(1...7) {
                tasks.append(PlannedTask(id: "prune-\(b)-\(p)", kind: .prune, label: "prune \(b).\(p)", spec: Array("p\(b).\(p)".utf8),
                                         dependsOn: baseID, data: key, epochs: 0...rng.int(1...4)))
            }
        }
        for n in 0..<rng.int(0...4) {
            tasks.append(PlannedTask(id: "noop-\(n)", kind: .noop, label: "noop \(n)", spec: Array("n\(n)".utf8), dependsOn: nil, data: nil, epochs: nil))
        }
        plan = tasks
        var poisoned = Set<String>()
        for t in tasks where t.kind == .prune {
            if rng.chance(0.05) { poisoned.insert(t.id) }
        }
        poison = poisoned
        faultsEndMs = rng.int64(20_000...120_000)
        deadlineMs = faultsEndMs + 60_000 + Int64(tasks.count) * 12_000
        let rows = tasks.map { TaskRow(state: $0.dependsOn == nil ? .queued : .blocked) }
        // Half the sweeps pin their data's fingerprints; workers may then hold a stale copy.
        let pinned = rng.chance(0.5)
        var pins: [String: String] = [:]
        for s in 0..<shards where pinned { pins[DataKey(dataset: "sim", shard: s, count: shards).pinKey] = "good-\(s)" }
        initialState = JournalState(sweepID: "sim-\(seed)", tasks: tasks, rows: rows, pins: pins)
        journal = MemoryJournal(initialState)
        oracle.start(tasks: tasks, rows: rows)
        for k in 0..<rng.int(1...5) { addWorker("w\(k)", shards: shards, pinned: pinned, at: 0) }
    }

    /// What a worker holds; `w0` holds every shard with the right fingerprints, so that some
    /// worker can always make progress.
    func holdings(_ id: String, shards: Int, pinned: Bool) -> [DataHolding] {
        var out: [DataHolding] = []
        let stale = id != "w0" && pinned && rng.chance(0.15)
        let only = id != "w0" && rng.chance(0.3) ? rng.int(0...(shards - 1)) : nil
        for s in 0..<shards where only == nil || only == s {
            out.append(DataHolding(dataset: "sim", shardIndex: UInt32(s), shardCount: UInt32(shards), fingerprint: stale ? "stale-\(s)" : "good-\(s)"))
        }
        return out
    }

    func addWorker(_ id: String, shards: Int, pinned: Bool, at t: Int64) {
        let identity = WorkerSession.Identity(workerID: id, host: "sim", cores: 1, softwareVersion: "sim", data: holdings(id, shards: shards, pinned: pinned),
                                              incarnation: 1)
        let w = SimWorker(id: id, session: WorkerSession(identity: identity, now: t), holdings: identity.data)
        workers.append(w)
        let i = workers.count - 1
        at(t + rng.int64(0...200), .workerTick(id, incarnation: 0))
        emit(i, workers[i].session.start(now: t))
    }

    func log(_ s: @autoclosure () -> String) { if keepTrace { trace.append("\(now) \(s())") } }

    // MARK: running

    /// Runs to the end of the sweep (or the deadline); returns the violations found.
    public func run() -> [String] {
        planFaults()
        startCoordinator()
        at(0, .coordinatorTick)
        while let e = pop() {
            if e.at > deadlineMs { break }
            now = e.at
            step(e.action)
            if !violations.isEmpty { return violations }
            if let s = scheduler, s.isFinished, journalFinished(), now > faultsEndMs { break }
        }
        finalChecks()
        return violations
    }

    func journalFinished() -> Bool { journal.state.rows.allSatisfy(\.state.isFinished) }

    func planFaults() {
        let ids = workers.map(\.id)
        // One worker is a survivor: whatever happens to it, it is back before the faults end.
        for _ in 0..<rng.int(0...8) {
            let t = rng.int64(500...faultsEndMs - 1000)
            let id = ids[rng.int(0...(ids.count - 1))]
            switch rng.int(0...9) {
            case 0, 1: at(t, .crashWorker(id))
            case 2, 3: at(t, .partition(id, rng.int64(1000...12_000)))
            case 4: at(t, .pause(id, rng.int64(1000...20_000)))
            case 5: at(t, .leave(id))
            case 6: at(t, .join("late-\(t)"))
            case 7: at(t, .clockStep(rng.chance(0.7) ? rng.int64(3000...40_000) : -rng.int64(1000...10_000)))
            default: at(t, .crashCoordinator(beforeCommit: rng.chance(0.5), sends: rng.int(0...3)))
            }
        }
        for _ in 0..<rng.int(0...3) {
            at(rng.int64(500...faultsEndMs - 1000), .crashCoordinator(beforeCommit: rng.chance(0.5), sends: rng.int(0...3)))
        }
    }

    func step(_ a: Action) {
        switch a {
        case let .toCoordinator(from, inc, m):
            guard let s = scheduler else {
                // Queued in the worker's socket until the coordinator is back (some are lost
                // with the connection).
                if !rng.chance(0.3) { heldForCoordinator.append((from, inc, m)) }
                return
            }
            s.handle(.message(peer: Array(from.utf8), m, incarnation: UInt64(inc + 1)), now: now + clockOffset)
            runBlobIO(s)
            applyEffects()
        case let .toWorker(id, inc, m):
            guard let i = worker(id), workers[i].incarnation == inc, workers[i].up else { return }
            if now < workers[i].pausedUntil { workers[i].heldWhilePaused.append(m); return }
            emit(i, workers[i].session.handle(.received(m), now: now))
        case .coordinatorTick:
            if let s = scheduler {
                s.handle(.tick, now: now + clockOffset)
                applyEffects()
            }
            at(now + 500, .coordinatorTick)
        case let .workerTick(id, inc):
            guard let i = worker(id), workers[i].incarnation == inc, workers[i].up else { return }
            if now >= workers[i].pausedUntil {
                let held = workers[i].heldWhilePaused
                workers[i].heldWhilePaused = []
                for m in held { emit(i, workers[i].session.handle(.received(m), now: now)) }
                if workers[i].up && workers[i].incarnation == inc { emit(i, workers[i].session.handle(.tick, now: now)) }
            }
            at(now + 250, .workerTick(id, incarnation: inc))
        case let .taskEpoch(id, inc, task, attempt, epoch):
            guard let i = worker(id), workers[i].incarnation == inc, workers[i].up, let run = workers[i].task, run.id == task, run.attempt == attempt else { return }
            if now < workers[i].pausedUntil { at(workers[i].pausedUntil + 1, a); return }
            taskEpoch(i, task, attempt, epoch)
        case let .crashCoordinator(before, sends):
            crashAtNextBatch = (before, sends)
        case .restartCoordinator:
            startCoordinator()
        case let .crashWorker(id):
            guard let i = worker(id), workers[i].up, !workers[i].gone else { return }
            workers[i].up = false
            workers[i].task = nil
            let back = now + rng.int64(500...15_000)
            faultIntervals[id, default: []].append((now, back))
            faults.append("worker-crash")
            log("worker \(id) crashed until \(back)")
            at(back, .restartWorker(id))
        case let .restartWorker(id):
            guard let i = worker(id) else { return }
            workers[i].incarnation += 1
            workers[i].up = true
            workers[i].gone = false
            workers[i].task = nil
            workers[i].partial = []
            workers[i].pausedUntil = 0
            workers[i].heldWhilePaused = []
            var identity = workers[i].session.identity
            identity.incarnation = UInt64(workers[i].incarnation + 1)
            workers[i].session = WorkerSession(identity: identity, now: now)
            log("worker \(id) restarted (incarnation \(workers[i].incarnation))")
            at(now + rng.int64(0...200), .workerTick(id, incarnation: workers[i].incarnation))
            emit(i, workers[i].session.start(now: now))
        case let .partition(id, d):
            guard let i = worker(id), workers[i].up else { return }
            workers[i].partitionedUntil = max(workers[i].partitionedUntil, now + d)
            faultIntervals[id, default: []].append((now, now + d))
            faults.append("partition")
            log("worker \(id) partitioned for \(d) ms")
        case let .pause(id, d):
            guard let i = worker(id), workers[i].up else { return }
            workers[i].pausedUntil = max(workers[i].pausedUntil, now + d)
            faultIntervals[id, default: []].append((now, now + d))
            faults.append(d > config.leaseMs ? "pause-past-lease" : "pause")
            log("worker \(id) paused for \(d) ms")
        case let .leave(id):
            guard let i = worker(id), workers[i].up, now >= workers[i].pausedUntil else { return }
            faults.append("leave")
            log("worker \(id) leaves (SIGTERM)")
            emit(i, workers[i].session.handle(.stop, now: now))
            // It comes back later as a new process (the survivors must be up when faults end).
            // Gone meanwhile: a coordinator that did not hear it leave sees a dead worker.
            let back = rng.int64(now + 1000...max(now + 1000, faultsEndMs))
            faultIntervals[id, default: []].append((now, back))
            at(back, .restartWorker(id))
        case let .join(id):
            let shards = plan.compactMap(\.data).map(\.count).first ?? 1
            faults.append("join")
            addWorker(id, shards: shards, pinned: !journal.state.pins.isEmpty, at: now)
        case let .sendFailed(peer, m, generation):
            guard let s = scheduler, generation == coordinatorGeneration else { return }
            s.handle(.sendFailed(peer: Array(peer.utf8), message: m, unreachable: true), now: now + clockOffset)
            applyEffects()
        case let .clockStep(delta):
            clockOffset += delta
            faults.append(delta > 0 ? "clock-forward" : "clock-back")
            log("coordinator clock stepped by \(delta) ms")
        }
    }

    // MARK: the coordinator's shell

    func startCoordinator() {
        guard let state = try? journal.load() else { return violations.append("the journal could not be loaded") }
        let s = Scheduler(restoring: state, config: config, now: now + clockOffset)
        scheduler = s
        coordinatorGeneration += 1
        coordinatorUpAt = now
        log("coordinator started")
        let checkBefore = violations.count
        oracle.restored(state, journal: journal, now: now, world: self)
        if violations.count > checkBefore { return }
        applyEffects()
        let held = heldForCoordinator
        heldForCoordinator = []
        for (from, inc, m) in held {
            // A process that died took its socket's queue with it.
            guard let i = worker(from), workers[i].incarnation == inc, workers[i].up else { continue }
            at(now + rng.int64(1...300), .toCoordinator(from: from, incarnation: inc, m))
        }
    }

    func runBlobIO(_ s: Scheduler) {
        while true {
            let io = s.takeBlobIO()
            if io.isEmpty { return }
            for op in io {
                switch op {
                case let .write(uploader, chunk):
                    let key = uploader + "/" + chunk.hash
                    if chunk.offset == 0 { uploads[key] = [] }
                    uploads[key, default: []] += chunk.data
                    if chunk.last {
                        let bytes = uploads.removeValue(forKey: key) ?? []
                        if SHA256Hasher.hex(bytes) == chunk.hash && UInt64(bytes.count) == chunk.totalSize {
                            blobStore[chunk.hash] = bytes
                            s.handle(.blobStored(hash: chunk.hash, size: UInt64(bytes.count), uploader: uploader), now: now + clockOffset)
                        } else {
                            s.handle(.blobRejected(hash: chunk.hash, uploader: uploader, reason: "content does not match its hash"), now: now + clockOffset)
                        }
                    }
                case let .serve(peer, hash, offset, maxBytes):
                    guard let bytes = blobStore[hash] else {
                        s.handle(.blobMissing(hash: hash, reason: "missing from the store"), now: now + clockOffset)
                        continue
                    }
                    let start = Int(min(UInt64(bytes.count), offset)), end = min(bytes.count, start + maxBytes)
                    network(toWorker: String(decoding: peer, as: UTF8.self),
                            .blobChunk(BlobChunk(hash: hash, offset: UInt64(start), totalSize: UInt64(bytes.count), data: Array(bytes[start..<end]),
                                                 last: end == bytes.count)))
                }
            }
        }
    }

    func applyEffects() {
        guard let s = scheduler else { return }
        let effects = s.takeEffects()
        if let crash = crashAtNextBatch, !effects.journal.isEmpty || !effects.sends.isEmpty {
            crashAtNextBatch = nil
            var sent = 0
            if !crash.beforeCommit {
                commit(effects.journal)
                for (peer, m) in effects.sends.prefix(crash.sends) { send(peer, m, s); sent += 1 }
            }
            scheduler = nil
            coordinatorCrashes += 1
            uploads = [:]
            faults.append(crash.beforeCommit ? "coordinator-crash-before-commit" : "coordinator-crash-after-\(sent)-sends")
            log("coordinator crashed \(crash.beforeCommit ? "before its commit" : "after its commit and \(sent) sends")")
            at(now + rng.int64(200...8000), .restartCoordinator)
            return
        }
        for l in effects.logs { log("log: \(l)") }
        if !effects.journal.isEmpty { commit(effects.journal) }
        for (peer, m) in effects.sends { send(peer, m, s) }
        if effects.finished && !s.isFinished && s.stopped { scheduler = nil }
    }

    func commit(_ ops: [JournalOp]) {
        if keepTrace {
            for op in ops { if case let .event(e) = op { log("journal: \(e.kind) task=\(e.task ?? "-") worker=\(e.worker ?? "-") \(e.detail ?? "")") } }
        }
        oracle.check(ops, world: self)
        do { try journal.apply(ops) } catch { violations.append("seed \(seed): the memory journal refused a batch: \(error)") }
    }

    func send(_ peer: [UInt8], _ m: Message, _ s: Scheduler) {
        let id = String(decoding: peer, as: UTF8.self)
        if let i = worker(id), !workers[i].up, case .assign = m, rng.chance(0.7) {
            // ROUTER_MANDATORY: the connection of a dead process is gone. The socket thread
            // reports it a moment later, after whatever the loop handles meanwhile.
            at(now + rng.int64(0...5), .sendFailed(peer: id, m, coordinator: coordinatorGeneration))
            return
        }
        network(toWorker: id, m)
    }

    // MARK: the network

    func delay() -> Int64 { rng.chance(reorderRate) ? rng.int64(100...3000) : rng.int64(1...40) }

    func describe(_ m: Message) -> String {
        switch m {
        case let .assign(a): return " \(a.taskID)#\(a.attempt)"
        case let .result(r): return " \(r.taskID)#\(r.attempt)"
        case let .failure(f): return " \(f.taskID)#\(f.attempt) \(f.reason)"
        case let .reject(r): return " \(r.code.name) \(r.reason)"
        case let .hello(h): return " running=\(h.runningTaskID)"
        case let .ready(r): return " \(r.slots)"
        case let .cancel(c): return " \(c.taskID)"
        default: return ""
        }
    }

    func network(toWorker id: String, _ m: Message) {
        if keepTrace, case .heartbeatAck = m {} else if keepTrace { log("→ \(id) \(m.name)\(describe(m))") }
        guard let i = worker(id) else { return }
        if now < workers[i].partitionedUntil || rng.chance(dropRate) { return }
        let copies = rng.chance(duplicateRate) ? 2 : 1
        for _ in 0..<copies { at(now + delay(), .toWorker(id, incarnation: workers[i].incarnation, m)) }
    }

    func network(fromWorker i: Int, _ m: Message) {
        if keepTrace, case .heartbeat = m {} else if keepTrace { log("\(workers[i].id) → \(m.name)\(describe(m))") }
        if now < workers[i].partitionedUntil || rng.chance(dropRate) { return }
        let copies = rng.chance(duplicateRate) ? 2 : 1
        for _ in 0..<copies { at(now + delay(), .toCoordinator(from: workers[i].id, incarnation: workers[i].incarnation, m)) }
    }

    // MARK: workers

    func emit(_ i: Int, _ outputs: [WorkerSession.Output]) {
        var pending = outputs
        while !pending.isEmpty {
            let o = pending.removeFirst()
            guard workers[i].up else { return }
            switch o {
            case let .send(m):
                if case let .failure(f) = m, !f.retryable { raised.insert("\(f.taskID)#\(f.attempt)") }
                network(fromWorker: i, m)
            case let .checkCache(hash):
                pending += workers[i].session.handle(.cacheChecked(hash: hash, ok: workers[i].cache[hash] != nil), now: now)
            case let .writeChunk(c):
                if c.offset == 0 { workers[i].partial = [] }
                workers[i].partial += c.data
                var complete = false, error: String?
                if c.last {
                    if SHA256Hasher.hex(workers[i].partial) == c.hash { workers[i].cache[c.hash] = workers[i].partial; complete = true } else { error = "corrupt" }
                    workers[i].partial = []
                }
                pending += workers[i].session.handle(.chunkWritten(hash: c.hash, nextOffset: c.offset + UInt64(c.data.count), complete: complete, error: error), now: now)
            case let .startTask(a):
                startTask(i, a)
            case let .cancelTask(id):
                if workers[i].task?.id == id { workers[i].task!.cancelled = true }
            case .log:
                break
            case let .exit(reason):
                log("worker \(workers[i].id) exits: \(reason)")
                workers[i].up = false
                workers[i].task = nil
                if case .shutdown = reason { workers[i].gone = true }
                if case .rejected = reason { violations.append("seed \(seed): worker \(workers[i].id) was rejected: \(reason)") }
                return
            }
        }
    }

    func task(_ id: String) -> PlannedTask? { plan.first { $0.id == id } }

    func startTask(_ i: Int, _ a: Assign) {
        guard let t = task(a.taskID) else { return violations.append("seed \(seed): Assign of unknown task \(a.taskID)") }
        workers[i].task = (a.taskID, a.attempt, false)
        let first = t.epochs?.lowerBound ?? 1
        let epochMs = rng.int64(200...2500)
        at(now + epochMs, .taskEpoch(workers[i].id, incarnation: workers[i].incarnation, task: a.taskID, attempt: a.attempt, epoch: first))
    }

    /// The record a task produces at an epoch: its values identify the task and epoch, so a
    /// record stored under the wrong task is caught.
    static func record(_ task: String, _ epoch: Int) -> EpochRecord {
        var r = EpochRecord(epoch: epoch)
        let h = Double(SHA256Hasher.hex(Array("\(task)#\(epoch)".utf8)).utf8.prefix(6).reduce(0) { $0 * 7 + Int($1) } % 10_000) / 100
        r.trainAccuracy = h; r.testAccuracy = 100 - h; r.pdTest = h / 2; r.seconds = 1
        r.layerMetrics = [MetricValues(key: "fc.weight", values: [("ap2", h)])]
        r.totalMetrics = MetricValues(key: "total", values: [("ap2", h)])
        return r
    }

    func taskEpoch(_ i: Int, _ taskID: String, _ attempt: UInt32, _ epoch: Int) {
        guard let t = task(taskID), let run = workers[i].task else { return }
        let inc = workers[i].incarnation
        if run.cancelled {
            workers[i].task = nil
            return emit(i, workers[i].session.handle(.finished(taskID: taskID, attempt: attempt, messages: []), now: now))
        }
        let raises = poison.contains(taskID) || rng.chance(failRate)
        if raises && (t.epochs == nil || epoch == t.epochs!.lowerBound) {
            workers[i].task = nil
            return emit(i, workers[i].session.handle(.finished(taskID: taskID, attempt: attempt, messages: [
                .failure(Failure(taskID: taskID, attempt: attempt, reason: "simulated error in the task", retryable: false))]), now: now))
        }
        if let epochs = t.epochs {
            emit(i, workers[i].session.handle(.progress(taskID: taskID, attempt: attempt, record: Self.record(taskID, epoch)), now: now))
            guard workers[i].up, workers[i].incarnation == inc else { return }
            if epoch < epochs.upperBound {
                return at(now + rng.int64(200...2500), .taskEpoch(workers[i].id, incarnation: inc, task: taskID, attempt: attempt, epoch: epoch + 1))
            }
        }
        // Finished: a baseline uploads its checkpoint in chunks before its Result.
        var messages: [Message] = []
        var result = TaskResult()
        result.taskID = taskID
        result.attempt = attempt
        result.records = t.epochs.map { $0.map { Self.record(taskID, $0) } } ?? []
        if t.kind == .baseline {
            let bytes = (0..<(rng.int(1...40) * 1000)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ taskID.utf8.count) }
            let hash = SHA256Hasher.hex(bytes)
            messages += BlobChunk.chunks(of: bytes, hash: hash, maxChunk: workers[i].session.maxChunk).map(Message.blobChunk)
            result.checkpointHash = hash
            result.baseline = BaselineSummary(trainAccuracy: 90, testAccuracy: 88, trainLoss: 0.3, testLoss: 0.35)
        }
        messages.append(.result(result))
        workers[i].task = nil
        emit(i, workers[i].session.handle(.finished(taskID: taskID, attempt: attempt, messages: messages), now: now))
    }

    // MARK: the end

    func finalChecks() {
        let rows = journal.state.rows
        let open = rows.indices.filter { !rows[$0].state.isFinished }
        if !open.isEmpty {
            violations.append("seed \(seed): liveness: \(open.count) of \(rows.count) tasks still open at \(now) ms (faults ended at \(faultsEndMs) ms): "
                              + open.prefix(4).map { "\(plan[$0].id) \(rows[$0].state.rawValue)" }.joined(separator: ", "))
        }
        for (i, t) in plan.enumerated() {
            let row = rows[i]
            if row.state == .done {
                let stored = journal.records(of: i)
                let expected = t.epochs.map { $0.map { Self.record(t.id, $0) } } ?? []
                if stored != expected { violations.append("seed \(seed): \(t.id) is done with records \(stored.map(\.epoch)) that are not its own \(expected.map(\.epoch))") }
                if poison.contains(t.id) { violations.append("seed \(seed): poison task \(t.id) ended DONE") }
            }
            if row.state == .failed {
                let dependency = t.dependsOn.flatMap { d in plan.firstIndex { $0.id == d } }
                let byDependency = dependency.map { rows[$0].state == .failed } ?? false
                if !(row.failures >= config.maxAttempts || row.handbacks > config.maxHandbacks || byDependency) {
                    violations.append("seed \(seed): \(t.id) FAILED with \(row.failures) failure(s) and \(row.handbacks) hand-back(s): \(row.lastError ?? "")")
                }
            }
        }
    }

    /// Whether worker `id` was crashed, cut off or paused at some time in [from, to].
    func hadFault(_ id: String, from: Int64, to: Int64) -> Bool {
        (faultIntervals[id] ?? []).contains { $0.from <= to && $0.to >= from }
    }
}
