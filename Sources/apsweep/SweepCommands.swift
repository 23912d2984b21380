import ArgumentParser
import Coordinator
import Datasets
import Experiment
import Foundation
import NeuralCore
import Wire
import Worker

/// SIGINT/SIGTERM set this; long-running loops poll it and stop cleanly.
nonisolated(unsafe) var stopRequested: sig_atomic_t = 0

func installStopHandlers() {
    signal(SIGINT) { _ in stopRequested = 1 }
    signal(SIGTERM) { _ in stopRequested = 1 }
}

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "plan", abstract: "Print the tasks a sweep file would run.")
    @Argument(help: "The sweep file (YAML or JSON).") var file: String

    func run() throws {
        let sweep = try loadSweep(file)
        let plan = try Plan(sweep)
        let baselines = plan.entries.filter { $0.dependsOn == nil }.count
        print("\(sweep.name): \(plan.entries.count) tasks (\(baselines) baselines, \(plan.entries.count - baselines) prune + fine-tune) on \(sweep.data.dataset), \(sweep.data.shards) shard(s)")
        for e in plan.entries {
            print("\(e.id)  \(e.task.label)\(e.dependsOn.map { "  after \($0)" } ?? "")")
        }
    }
}

func loadSweep(_ file: String) throws -> SweepFile {
    do { return try SweepFile.load(path: file) } catch { throw CLIError("\(error)") }
}

/// CURVE options shared by coordinator and worker.
struct SecurityOptions: ParsableArguments {
    @Option(help: "This side's key file (from apsweep keys). With it, traffic is encrypted with CurveZMQ.") var key: String?
    @Option(help: "Coordinator: a directory of worker .pub files allowed to connect. Worker: the coordinator's .pub file.") var peerKeys: String?
    @Flag(help: "Allow plain TCP without keys (only on trusted networks).") var insecure = false

    func validate(coordinator: Bool) throws {
        if key == nil && !insecure {
            throw ValidationError("give --key and --peer-keys for CurveZMQ, or --insecure for plain TCP (\(coordinator ? "make keys with apsweep keys" : "ask for the coordinator's .pub"))")
        }
        if key != nil && peerKeys == nil { throw ValidationError("--key needs --peer-keys") }
    }
}

struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "coordinator",
        abstract: "Run a sweep's coordinator: hand tasks to workers that connect, journal everything, survive restarts.")
    @Argument(help: "The sweep file.") var file: String
    @Option(help: "ZeroMQ endpoint to bind.") var bind = "tcp://*:5555"
    @Option(help: "The journal (SQLite); restarting with the same journal resumes the sweep.") var journal = "sweep.db"
    @Option(help: "Directory for content-addressed checkpoints (default: next to the journal).") var blobs: String?
    @Option(help: "Attempts per task before it is FAILED.") var maxAttempts: Int?
    @Flag(help: "Keep running after the sweep is complete (for status queries).") var stay = false
    @Option(help: "Heartbeat interval announced to workers (ms).") var heartbeatMs: Int64 = 1000
    @Option(help: "A worker silent this long is dead (ms).") var livenessMs: Int64 = 5000
    @Option(help: "Lease length, renewed by heartbeats (ms).") var leaseMs: Int64 = 15000
    @OptionGroup var security: SecurityOptions

    func validate() throws {
        try security.validate(coordinator: true)
        guard heartbeatMs > 0, livenessMs > heartbeatMs, leaseMs >= livenessMs else {
            throw ValidationError("timers must satisfy 0 < --heartbeat-ms < --liveness-ms ≤ --lease-ms")
        }
    }

    func run() throws {
        installStopHandlers()
        let sweep = try loadSweep(file)
        let plan = try Plan(sweep)
        let store = try Journal(path: journal)
        try store.storePlan(plan, sweepText: (try? String(contentsOfFile: file, encoding: .utf8)) ?? "")
        var config = CoordinatorConfig(bind: bind, blobDirectory: blobs ?? ((journal as NSString).deletingLastPathComponent.isEmpty ? "blobs" : (journal as NSString).deletingLastPathComponent + "/blobs"))
        config.maxAttempts = maxAttempts ?? sweep.maxAttempts
        config.exitWhenDone = !stay
        config.heartbeatMs = heartbeatMs
        config.livenessMs = livenessMs
        config.leaseMs = leaseMs
        if let key = security.key, let peers = security.peerKeys {
            config.curve = try CurveKeyPair.read(keyFile: key)
            let files = try FileManager.default.contentsOfDirectory(atPath: peers).filter { $0.hasSuffix(".pub") }
            config.allowedWorkerKeys = Set(try files.map { try CurveKeyPair.readPublicKey((peers as NSString).appendingPathComponent($0)) })
            print("CurveZMQ on: \(config.allowedWorkerKeys.count) worker key(s) allowed")
        }
        let coordinator = try SweepCoordinator(journal: store, config: config)
        print("apsweep coordinator: sweep \(sweep.name), \(plan.entries.count) tasks, journal \(journal), listening on \(coordinator.endpoint)")
        try coordinator.run { stopRequested != 0 }
        let states = coordinator.taskStates.values
        print("coordinator stopped: \(states.filter { $0 == .done }.count) done, \(states.filter { $0 == .failed }.count) failed of \(states.count)")
    }
}

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker",
        abstract: "Join a sweep: run the tasks a coordinator hands out on the data held here.")
    @Option(help: "The coordinator's endpoint.") var connect: String
    @Option(help: "Data sets held here, whole: fashion-mnist, mnist, cifar10, cifar100 (repeatable).") var dataset: [String] = []
    @Option(help: "Directory of the data set's files (with one --dataset).") var data: String?
    @Option(help: "Shard files held here (repeatable).") var shard: [String] = []
    @Option(help: "Also hold all N shards of each --dataset, split here by the mod-v1 rule.") var shardsOf: Int?
    @Flag(help: "Hold no data (calibration worker for no-op tasks of apsweep bench sweep).") var noData = false
    @Option(help: "Worker id (default: host-pid).") var id: String?
    @Option(help: "Checkpoint cache directory.") var cache = "apsweep-cache"
    @OptionGroup var security: SecurityOptions
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        try security.validate(coordinator: false)
        if dataset.isEmpty && shard.isEmpty && !noData { throw ValidationError("give the data held here: --dataset NAME [--data DIR] or --shard FILE") }
    }

    func run() throws {
        installStopHandlers()
        try compute.apply()
        var shards: [Shard] = []
        for name in dataset {
            let whole: Shard
            do { whole = try DataSource.parse(name, directory: data).load() } catch { throw CLIError("cannot load \(name): \(error)") }
            shards.append(whole)
            if let n = shardsOf, n > 1 {
                for k in 0..<n { shards.append(Shard(name: whole.name, index: k, of: n, train: whole.train, test: whole.test)) }
            }
        }
        for path in shard {
            do { shards.append(try ShardFile.read(path: path)) } catch { throw CLIError("\(error)") }
        }
        var config = WorkerConfig(connect: connect, workerID: id ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())", cacheDirectory: cache)
        if let key = security.key, let peer = security.peerKeys {
            config.curve = (try CurveKeyPair.read(keyFile: key), try CurveKeyPair.readPublicKey(peer))
        }
        let worker = try SweepWorker(config: config, shards: shards) { print("worker \(config.workerID): \($0)") }
        print("apsweep worker \(config.workerID): \(shards.map { "\($0.name)[\($0.index)/\($0.count)] \($0.shortFingerprint)" }.joined(separator: ", ")); \(BLAS.summary); connecting to \(connect)")
        switch try worker.run(stop: { stopRequested != 0 }) {
        case let .shutdown(reason): print("worker \(config.workerID): shutdown (\(reason))")
        case let .rejected(reason): throw CLIError("the coordinator refused this worker: \(reason)")
        case .stopped: print("worker \(config.workerID): stopped by signal; its task was handed back")
        }
    }
}

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sweep",
        abstract: "Run a whole sweep on this machine: an embedded coordinator and N local worker processes.")
    @Argument(help: "The sweep file.") var file: String
    @Option(help: "Local worker processes.") var workers = 2
    @Option(help: "Directory for the journal, checkpoints and results (default: runs/<name>).") var dir: String?
    @Option(help: "Directory of the data set's files (default: where Debian's package puts them).") var data: String?
    @Option(help: "Threads per worker (default: the cores split between the workers).") var threads: Int?

    func validate() throws {
        guard workers >= 1 else { throw ValidationError("--workers must be ≥ 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be ≥ 1") }
    }

    func run() throws {
        installStopHandlers()
        let sweep = try loadSweep(file)
        let plan = try Plan(sweep)
        let out = dir ?? "runs/\(sweep.name)"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let store = try Journal(path: out + "/sweep.db")
        try store.storePlan(plan, sweepText: (try? String(contentsOfFile: file, encoding: .utf8)) ?? "")
        var config = CoordinatorConfig(bind: "tcp://127.0.0.1:*", blobDirectory: out + "/blobs")
        config.maxAttempts = sweep.maxAttempts
        let coordinator = try SweepCoordinator(journal: store, config: config)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let threads = self.threads ?? max(1, cores / workers)
        print("apsweep sweep \(sweep.name): \(plan.entries.count) tasks, \(workers) local workers × \(threads) thread(s), journal \(out)/sweep.db")
        print("watch it from another terminal: apsweep status --connect \(coordinator.endpoint) --insecure --watch")
        var processes: [Process] = []
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        for k in 0..<workers {
            let p = Process()
            p.executableURL = executable
            var args = ["worker", "--connect", coordinator.endpoint, "--insecure", "--id", "local-\(k)", "--cache", out + "/cache-\(k)",
                        "--threads", String(threads), "--dataset", sweep.data.dataset]
            if let data { args += ["--data", data] }
            if sweep.data.shards > 1 { args += ["--shards-of", String(sweep.data.shards)] }
            p.arguments = args
            let log = out + "/worker-\(k).log"
            FileManager.default.createFile(atPath: log, contents: nil)
            p.standardOutput = FileHandle(forWritingAtPath: log)
            p.standardError = p.standardOutput
            try p.run()
            processes.append(p)
        }
        defer {
            for p in processes where p.isRunning { p.terminate() }
            for p in processes { p.waitUntilExit() }
        }
        let progress = ProgressLine(enabled: stdoutIsTerminal)
        var lastLine = ""
        var lastExport = Date()
        coordinator.onChange = {
            // results.csv is rewritten as results arrive (cheap); summary.json at the end.
            if Date().timeIntervalSince(lastExport) > 5 {
                try? ResultsExport.writeCSV(journal: store, directory: out)
                lastExport = Date()
            }
            let s = coordinator.status()
            guard let c = s.counts else { return }
            let line = "tasks \(c.done)/\(c.total) done, \(c.running) running, \(c.queued + c.stale) queued, \(c.failed) failed"
            if line != lastLine {
                lastLine = line
                if stdoutIsTerminal { progress.update(line) } else { print(line) }
            }
        }
        try coordinator.run { stopRequested != 0 || processes.allSatisfy { !$0.isRunning } }
        progress.finish()
        let states = coordinator.taskStates.values
        let done = states.filter { $0 == .done }.count, failed = states.filter { $0 == .failed }.count
        let aggregation = try ResultsExport.write(journal: store, directory: out)
        print(ResultsExport.table(aggregation), terminator: "")
        print("sweep \(sweep.name): \(done) done, \(failed) failed of \(states.count); results in \(out)/results.csv, \(out)/summary.json and \(out)/report.html, journal \(out)/sweep.db, worker logs \(out)/worker-*.log")
        if done + failed < states.count { throw CLIError("the sweep stopped before it finished; run the same command again to resume from the journal") }
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report",
        abstract: "Regenerate results.csv, summary.json and report.html (and print the summary table) from any journal, finished or not.")
    @Argument(help: "The sweep's journal (sweep.db).") var journal: String
    @Option(help: "Output directory (default: the journal's directory).") var out: String?

    func run() throws {
        guard FileManager.default.fileExists(atPath: journal) else { throw CLIError("\(journal): no such journal") }
        let store = try Journal(path: journal)
        let dir = out ?? { let d = (journal as NSString).deletingLastPathComponent; return d.isEmpty ? "." : d }()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let aggregation = try ResultsExport.write(journal: store, directory: dir)
        print(ResultsExport.table(aggregation), terminator: "")
        print("\(aggregation.tasksDone) of \(aggregation.tasksTotal) tasks done; wrote \(dir)/results.csv, \(dir)/summary.json and \(dir)/report.html")
    }
}
