import ArgumentParser
import Digest
import Foundation
import Messages
import Records
import Wire

/// The coordinator at scale: a real `apsweep coordinator` process, K fake workers speaking the
/// protocol from threads of this process (each its own DEALER), results of 21 realistic records.
struct BenchScale: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "scale",
        abstract: "Coordinator at scale: plan/resume time, dispatch and ingest rates, status latency, journal bytes per task, RSS, report time and memory, for N tasks and K fake workers.")
    @Option(help: "Task counts (comma-separated).") var tasks = "10000,100000"
    @Option(help: "Fake worker counts (comma-separated).") var workers = "100,1000"
    @Option(help: "Fine-tuning epochs of each prune task (its result holds epochs + 1 records).") var epochs = 20
    @Option(help: "Bootstrap resamples for the report.") var resamples = 1000
    @Flag(help: "Skip the report measurement.") var noReport = false
    @Flag(help: "Measure only the first start (plan + journal) and a resume, with the coordinator's peak RSS meanwhile; no workers.") var startOnly = false

    func run() throws {
        print("apsweep bench scale: a real coordinator process; fake workers on threads of this process (loopback, no CURVE); prune results of \(epochs + 1) records")
        print("  N tasks  K workers | plan+journal  resume | dispatch+ingest tasks/s  coord CPU ms/task | status p50/p99 ms | journal KB/task | coord RSS MB peak/median | report s / MB")
        for n in tasks.split(separator: ",").compactMap({ Int($0) }) {
            for k in workers.split(separator: ",").compactMap({ Int($0) }) {
                let r = try measure(tasks: n, workers: k)
                print(String(format: "  %7d  %9d | %10.2f s %6.2f s | %23.0f  %17.2f | %6.1f / %-7.1f | %15.1f | %14.0f / %-6.0f | %@",
                             n, k, r.plan, r.resume, r.rate, r.cpuPerTask * 1000, r.p50, r.p99, r.journalKB, r.rssMB, r.rssMedianMB,
                             r.report.map { String(format: "%.1f s / %.0f MB", $0.0, $0.1) } ?? "–"))
            }
        }
    }

    struct Figures {
        var plan = 0.0, resume = 0.0, rate = 0.0, cpuPerTask = 0.0, p50 = 0.0, p99 = 0.0, journalKB = 0.0, rssMB = 0.0, rssMedianMB = 0.0
        var report: (Double, Double)?
    }

    func measure(tasks n: Int, workers k: Int) throws -> Figures {
        let dir = NSTemporaryDirectory() + "apsweep-bench-scale-\(getpid())-\(n)-\(k)"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if ProcessInfo.processInfo.environment["APSWEEP_BENCH_KEEP"] == nil { try? FileManager.default.removeItem(atPath: dir) } else { print("kept \(dir)") } }
        // 1 model × 3 methods × 10 sparsities, plus its baseline, per trial: 31 tasks a trial.
        let trials = max(1, n / 31)
        let sweep = dir + "/scale.yaml"
        try """
            name: scale
            data: {dataset: fashion-mnist}
            models: [{architecture: lenet5}]
            trials: \(min(1000, trials))
            baseline: {epochs: 20}
            prune: {methods: [lowest, random, highest], sparsities: [0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95], fine_tune: {epochs: \(epochs)}}
            """.write(toFile: sweep, atomically: true, encoding: .utf8)
        // More trials than a sweep file allows: seeds given explicitly.
        if trials > 1000 {
            try """
                name: scale
                data: {dataset: fashion-mnist}
                models: [{architecture: lenet5}]
                seeds: [\((1...trials).map(String.init).joined(separator: ", "))]
                baseline: {epochs: 20}
                prune: {methods: [lowest, random, highest], sparsities: [0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95], fine_tune: {epochs: \(epochs)}}
                """.write(toFile: sweep, atomically: true, encoding: .utf8)
        }
        let journal = dir + "/sweep.db"
        var figures = Figures()
        // First start: plan and journal, until the coordinator answers.
        var (coordinator, endpoint) = try startCoordinator(sweep: sweep, journal: journal, dir: dir)
        figures.plan = try timeToAnswer(endpoint, since: coordinator.started)
        kill(coordinator.process.processIdentifier, SIGKILL)
        coordinator.process.waitUntilExit()
        let planRSS = coordinator.peakRSSMB
        (coordinator, endpoint) = try startCoordinator(sweep: sweep, journal: journal, dir: dir)
        figures.resume = try timeToAnswer(endpoint, since: coordinator.started)
        if startOnly {
            usleep(200_000)
            figures.rssMB = max(planRSS, coordinator.peakRSSMB)
            figures.rssMedianMB = coordinator.medianRSSMB
            kill(coordinator.process.processIdentifier, SIGKILL)
            coordinator.process.waitUntilExit()
            return figures
        }
        let cpuBefore = cpuSeconds(coordinator.process.processIdentifier)
        // The fake workers, and a status client polling every 50 ms.
        let fleet = try FakeFleet(endpoint: endpoint, workers: k, pruneEpochs: epochs)
        let latencies = LatencyProbe(endpoint: endpoint)
        latencies.start()
        let started = Date()
        fleet.start()
        while coordinator.process.isRunning { usleep(50_000) }
        let elapsed = Date().timeIntervalSince(started)
        let cpu = cpuSeconds(coordinator.process.processIdentifier, final: coordinator.finalCPU) - cpuBefore
        latencies.stop()
        fleet.stop()
        let done = fleet.results
        figures.rate = Double(done) / elapsed
        figures.cpuPerTask = cpu / Double(max(1, done))
        (figures.p50, figures.p99) = latencies.percentiles()
        figures.rssMB = coordinator.peakRSSMB
        figures.rssMedianMB = coordinator.medianRSSMB
        figures.journalKB = Double(((try? FileManager.default.attributesOfItem(atPath: journal))?[.size] as? NSNumber)?.intValue ?? 0) / 1024 / Double(max(1, done))
        if !noReport {
            let t = Date()
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            p.arguments = ["report", journal, "--out", dir + "/report", "--resamples", String(resamples)]
            p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            try p.run()
            var peak = 0.0
            while p.isRunning { peak = max(peak, rssMB(p.processIdentifier)); usleep(100_000) }
            figures.report = (Date().timeIntervalSince(t), peak)
        }
        return figures
    }

    final class Coordinator {
        let process: Process
        let started: Date
        var peakRSSMB = 0.0
        var finalCPU = 0.0
        private var samples: [Double] = []
        /// The median of the RSS samples (every 100 ms while it ran).
        var medianRSSMB: Double { let s = samples.sorted(); return s.isEmpty ? 0 : s[s.count / 2] }
        private var watcher: Thread?
        init(process: Process, started: Date) {
            self.process = process
            self.started = started
            let t = Thread { [weak self] in
                while let s = self, s.process.isRunning {
                    let r = rssMB(s.process.processIdentifier)
                    s.peakRSSMB = max(s.peakRSSMB, r)
                    if r > 0 { s.samples.append(r) }
                    let c = cpuSeconds(s.process.processIdentifier)
                    if c > 0 { s.finalCPU = c }
                    usleep(100_000)
                }
            }
            watcher = t
            t.start()
        }
    }

    func startCoordinator(sweep: String, journal: String, dir: String) throws -> (Coordinator, String) {
        let port = try freeLoopbackPort()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        p.arguments = ["coordinator", sweep, "--journal", journal, "--bind", "tcp://127.0.0.1:\(port)", "--insecure"]
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        p.standardError = FileHandle(forWritingAtPath: ProcessInfo.processInfo.environment["APSWEEP_BENCH_STDERR"] ?? "/dev/null")
        let started = Date()
        try p.run()
        return (Coordinator(process: p, started: started), "tcp://127.0.0.1:\(port)")
    }

    func timeToAnswer(_ endpoint: String, since: Date) throws -> Double {
        let context = try ZMQContext()
        defer { context.close() }
        // Reconnecting every 20 ms, not with a worker's backoff (100 ms doubling to 5 s), which
        // would measure the backoff instead of the coordinator.
        let d = try DealerEndpoint(context: context, connect: endpoint, reconnectMs: (20, 20))
        defer { d.socket.close() }
        let deadline = Date().addingTimeInterval(600)
        while Date() < deadline {
            try d.send(.statusRequest(StatusRequest(maxWorkers: 1)))
            if case .statusReply? = try d.receive(timeoutMs: 50)?.message { return Date().timeIntervalSince(since) }
        }
        throw CLIError("the coordinator did not answer within 600 s")
    }
}

func freeLoopbackPort() throws -> Int {
    let context = try ZMQContext()
    defer { context.close() }
    let s = try ZMQSocket(context, .router)
    defer { s.close() }
    try s.bind("tcp://127.0.0.1:*")
    return Int(s.lastEndpoint.split(separator: ":").last ?? "") ?? 0
}

/// Resident memory of a process in MB (VmRSS), 0 when gone.
func rssMB(_ pid: Int32) -> Double {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
    return kb / 1024
}

/// CPU seconds (user + system) a process used so far; `final` when it has exited.
func cpuSeconds(_ pid: Int32, final: Double? = nil) -> Double {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = s.lastIndex(of: ")") else { return final ?? 0 }
    let fields = s[s.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let u = Double(fields[11]), let k = Double(fields[12]) else { return final ?? 0 }
    return (u + k) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// StatusRequests every 50 ms, round-trip latencies kept.
final class LatencyProbe: @unchecked Sendable {
    let endpoint: String
    private var samples: [Double] = []
    private var running = true
    private let lock = NSLock()
    private var thread: Thread?
    init(endpoint: String) { self.endpoint = endpoint }

    func start() {
        let t = Thread { [self] in
            guard let context = try? ZMQContext(), let d = try? DealerEndpoint(context: context, connect: endpoint) else { return }
            defer { d.socket.close(); context.close() }
            while self.isRunning {
                let t0 = Date()
                _ = try? d.send(.statusRequest(StatusRequest(includeCorrelations: true, maxFailures: 5, maxWorkers: 50)))
                while self.isRunning {
                    if case .statusReply? = (try? d.receive(timeoutMs: 100))??.message {
                        self.lock.lock(); self.samples.append(Date().timeIntervalSince(t0) * 1000); self.lock.unlock()
                        break
                    }
                }
                usleep(50_000)
            }
        }
        thread = t
        t.start()
    }

    var isRunning: Bool { lock.lock(); defer { lock.unlock() }; return running }

    func stop() {
        lock.lock(); running = false; lock.unlock()
        while let t = thread, !t.isFinished { usleep(10_000) }
    }

    func percentiles() -> (Double, Double) {
        lock.lock(); defer { lock.unlock() }
        let s = samples.sorted()
        guard !s.isEmpty else { return (.nan, .nan) }
        return (s[s.count / 2], s[min(s.count - 1, Int(Double(s.count) * 0.99))])
    }
}

/// K fake workers on a few threads: each says Hello and Ready, answers every Assign at once with
/// a result of realistic size (a baseline: 20 records, a 4 KiB checkpoint uploaded before it; a
/// prune task: `pruneEpochs + 1` records of 6 layers × 7 metrics), and heartbeats every second.
final class FakeFleet: @unchecked Sendable {
    let endpoint: String
    let count: Int
    private let context: ZMQContext
    private var threads: [Thread] = []
    private let lock = NSLock()
    private var running = true
    private var done = 0

    let pruneEpochs: Int

    init(endpoint: String, workers: Int, pruneEpochs: Int) throws {
        self.endpoint = endpoint
        self.pruneEpochs = pruneEpochs
        count = workers
        context = try ZMQContext(ioThreads: 2)
    }

    var results: Int { lock.lock(); defer { lock.unlock() }; return done }
    var isRunning: Bool { lock.lock(); defer { lock.unlock() }; return running }

    func start() {
        let groups = max(1, min(4, count))
        for g in 0..<groups {
            let ids = stride(from: g, to: count, by: groups).map { "fake-\($0)" }
            let t = Thread { [self] in self.serve(ids) }
            threads.append(t)
            t.start()
        }
    }

    func stop() {
        lock.lock(); running = false; lock.unlock()
        while threads.contains(where: { !$0.isFinished }) { usleep(10_000) }
        context.close()
    }

    static func record(_ epoch: Int) -> EpochRecord {
        var r = EpochRecord(epoch: epoch)
        r.trainAccuracy = 90 - Double(epoch) / 10; r.testAccuracy = 88 - Double(epoch) / 10; r.trainLoss = 0.3; r.testLoss = 0.35
        r.pdTrain = Double(epoch) / 10; r.pdTest = Double(epoch) / 9; r.lossDiffTrain = 0.01; r.lossDiffTest = 0.02; r.learningRate = 0.05; r.seconds = 1
        let names = ["ap2", "ap3[gaussian:sigma2=1]", "skl[gaussian:sigma2=1]", "w2[gaussian:sigma2=1]", "hellinger[gaussian:sigma2=1]",
                     "js[gaussian:sigma2=1]", "js_se[gaussian:sigma2=1]"]
        func values(_ scale: Double) -> [(String, Double)] { names.enumerated().map { ($1, scale * Double($0 + 1) * (1 + Double(epoch) / 20)) } }
        r.layerMetrics = ["features.0.weight", "features.3.weight", "classifier.0.weight", "classifier.2.weight", "classifier.4.weight"]
            .enumerated().map { MetricValues(key: $1, values: values(Double($0 + 1) / 10)) }
        r.totalMetrics = MetricValues(key: "total", values: values(1.5))
        return r
    }

    func serve(_ ids: [String]) {
        var dealers: [DealerEndpoint] = []
        for id in ids {
            guard let d = try? DealerEndpoint(context: context, connect: endpoint, identity: id) else { continue }
            d.incarnation = 1
            var h = Hello()
            h.workerID = id; h.softwareVersion = "fake"; h.incarnation = 1
            h.data = [DataHolding(dataset: "fashion-mnist", shardIndex: 0, shardCount: 1, fingerprint: String(repeating: "f", count: 64))]
            _ = try? d.send(.hello(h))
            dealers.append(d)
        }
        defer { for d in dealers { d.socket.close() } }
        let prune = (0...pruneEpochs).map(FakeFleet.record), baseline = (1...20).map(FakeFleet.record)
        let checkpoint = [UInt8](repeating: 7, count: 4096)
        var lastBeat = Date.distantPast
        while isRunning {
            let readable = (try? ZMQSocket.poll(dealers.map(\.socket), timeoutMs: 20)) ?? []
            for (i, ready) in readable.enumerated() where ready {
                while let e = try? dealers[i].receive(timeoutMs: 0) {
                    switch e.message {
                    case .welcome: _ = try? dealers[i].send(.ready(Ready(slots: 1)))
                    case let .assign(a):
                        var r = TaskResult()
                        r.taskID = a.taskID; r.attempt = a.attempt
                        if a.requiredBlobs.isEmpty {
                            // A baseline: its checkpoint first (unique bytes per task).
                            var bytes = checkpoint
                            bytes.replaceSubrange(0..<min(bytes.count, a.taskID.utf8.count), with: Array(a.taskID.utf8))
                            let hash = SHA256Hasher.hex(bytes)
                            _ = try? dealers[i].send(.blobChunk(BlobChunk(hash: hash, offset: 0, totalSize: UInt64(bytes.count), data: bytes, last: true)))
                            r.records = baseline; r.checkpointHash = hash
                            r.baseline = BaselineSummary(trainAccuracy: 91, testAccuracy: 89, trainLoss: 0.3, testLoss: 0.35)
                        } else {
                            r.records = prune
                        }
                        _ = try? dealers[i].send(.result(r))
                        _ = try? dealers[i].send(.ready(Ready(slots: 1)))
                        lock.lock(); done += 1; lock.unlock()
                    case .shutdown: break
                    default: break
                    }
                }
            }
            if Date().timeIntervalSince(lastBeat) > 1 {
                for d in dealers { _ = try? d.send(.heartbeat(Heartbeat())) }
                lastBeat = Date()
            }
        }
    }
}
