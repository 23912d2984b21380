import Analysis
import ArgumentParser
import BlobStore
import Compression
import Coordinator
import Datasets
import Experiment
import Foundation
import Journal
import NeuralCore
import Scheduling
import Wire
import Worker
import WorkerProtocol

/// The signal that asked the process to stop (SIGINT or SIGTERM), 0 while none did. A second
/// one ends the process at once (a user who presses Ctrl-C twice means it).
nonisolated(unsafe) var stopSignal: sig_atomic_t = 0

func installStopHandlers() {
    let handler: @convention(c) (Int32) -> Void = { sig in
        if stopSignal != 0 { _exit(128 + sig) }
        stopSignal = sig
    }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
    signal(SIGPIPE, SIG_IGN)
}

/// "SIGINT" / "SIGTERM" once a stop signal arrived.
func stopReason() -> String? {
    switch stopSignal {
    case 0: return nil
    case SIGINT: return "SIGINT"
    case SIGTERM: return "SIGTERM"
    default: return "signal \(stopSignal)"
    }
}

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "plan", abstract: "Check a sweep file and print the tasks it would run.")
    @Argument(help: "The sweep file (YAML or JSON).") var file: String
    @Option(help: "Directory of the data set's files, to check it is there (default: where Debian's package puts them).") var data: String?

    func run() throws {
        let sweep = try loadSweep(file)
        try checkData(sweep, directory: data ?? sweep.data.path)
        let plan: Plan
        do { plan = try Plan(sweep, checkpoints: try StartCheckpoints.inspect(sweep)) } catch { throw CLIError("\(error)") }
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

/// Refuses, before anything is journaled, a sweep whose data this machine does not have (for
/// named data sets; shard files live on the workers).
func checkData(_ sweep: SweepFile, directory: String?) throws {
    guard sweep.data.dataset != "synthetic" else { return }
    if let directory {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CLIError("--data \(directory): no such directory; give the directory holding \(sweep.data.dataset)'s files")
        }
    }
    do { _ = try DataSource.parse(sweep.data.dataset, directory: directory).check() } catch {
        throw CLIError("the sweep's data set cannot be read here: \(error)")
    }
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

/// Options of a run's journal shared by `sweep` and `coordinator`.
struct JournalOptions: ParsableArguments {
    @Option(help: "Attempts per task before it is FAILED (failures of the task itself; default: the sweep file's max_attempts).") var maxAttempts: Int?
    @Flag(help: "Queue the FAILED tasks of this journal again (their counts reset) before running.") var retryFailed = false

    func validate() throws {
        if let maxAttempts, maxAttempts < 1 { throw ValidationError("--max-attempts must be ≥ 1") }
    }
}

/// A coordinator's run on a locked journal: plan stored, coordinator built and run, results
/// written (also after a stop), journal closed as a single file, lock released.
struct CoordinatedRun {
    let sweep: SweepFile
    let journalPath: String
    let lock: JournalLock
    let journal: SweepJournal
    let blobs: BlobStore

    init(sweep: SweepFile, sweepFile: String, journalPath: String, blobDirectory: String) throws {
        self.sweep = sweep
        self.journalPath = journalPath
        do {
            lock = try JournalLock(journal: journalPath)
            journal = try SweepJournal.openForWriting(journalPath, describe: Plan.describe)
            let text = (try? String(contentsOfFile: sweepFile, encoding: .utf8)) ?? ""
            // Resuming with the very sweep file the journal was planned from: its tasks are the
            // plan (planning 100,000 tasks again took 2–4 s).
            blobs = try BlobStore(directory: blobDirectory)
            // Checkpoints the models start from: checked, stored as blobs, a changed one refused.
            let checkpoints = try StartCheckpoints.prepare(sweep, journal: journal, blobs: blobs)
            if try !journal.wasPlanned(from: text) {
                let plan = try Plan(sweep, checkpoints: checkpoints)
                try journal.storePlan(plan.planned, pins: plan.fingerprints, sweepText: text, sweepID: String(UUID().uuidString.prefix(8)).lowercased())
            }
        } catch let e as CLIError { throw e } catch { throw CLIError("\(error)") }
    }

    func coordinator(_ config: CoordinatorConfig) throws -> SweepCoordinator {
        do {
            return try SweepCoordinator(journal: journal, blobs: blobs, config: config, correlations: CorrelationService(journalPath: journalPath))
        } catch { throw CLIError("\(error)") }
    }

    /// Writes results.csv, summary.json and report.html next to the journal and prints the table.
    func export(into directory: String) -> ResultsExport.Written? {
        do {
            let w = try ResultsExport.write(journal: journal, directory: directory)
            print(ResultsExport.table(w), terminator: "")
            return w
        } catch {
            printError("could not write the results: \(error) (run apsweep report \(journalPath) once the cause is fixed)")
            return nil
        }
    }

    func close() {
        journal.close()
        lock.release()
    }
}

/// The exit after a coordinator's run: 0 when every task is done, 1 with the failures named, the
/// signal's 128 + n when stopped by SIGINT/SIGTERM (`coordinator` exits 0 on a clean stop).
func finish(_ outcome: CoordinatorOutcome, run: CoordinatedRun, command: String, stopExitsZero: Bool) throws {
    switch outcome {
    case let .complete(done, failed):
        print("sweep \(run.sweep.name): \(done) done, \(failed) failed of \(done + failed); journal \(run.journalPath)")
        if failed > 0 {
            throw ExitCodeError(code: 1, message: "\(failed) task(s) FAILED; their errors are in \((run.journalPath as NSString).deletingLastPathComponent)/summary.json (failed_tasks) and report.html; `\(command) --retry-failed` runs them again")
        }
    case let .stopped(reason):
        print("stopped by \(reason): the leases were released without counting; run `\(command)` again to resume from \(run.journalPath)")
        if !stopExitsZero { throw ExitCodeError(code: reason == "SIGINT" ? 130 : 143, message: nil) }
    case let .storageFailed(why):
        throw ExitCodeError(code: 75, message: "stopped cleanly because storage failed: \(why). Nothing the journal does not hold was sent and the journal is intact; fix the cause and run `\(command)` again to resume")
    }
}

struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "coordinator",
        abstract: "Run a sweep's coordinator: hand tasks to workers that connect, journal everything, survive restarts.")
    @Argument(help: "The sweep file.") var file: String
    @Option(help: "ZeroMQ endpoint to bind.") var bind = "tcp://*:5555"
    @Option(help: "The journal (SQLite); restarting with the same journal resumes the sweep.") var journal = "sweep.db"
    @Option(help: "Directory for content-addressed checkpoints (default: next to the journal).") var blobs: String?
    @Flag(help: "Keep running after the sweep is complete, for status queries (workers get no Shutdown then).") var stay = false
    @Option(help: "Heartbeat interval announced to workers (ms).") var heartbeatMs: Int64 = 1000
    @Option(help: "A worker silent this long is dead (ms).") var livenessMs: Int64 = 5000
    @Option(help: "Lease length, renewed by heartbeats (ms).") var leaseMs: Int64 = 15000
    @OptionGroup var journalOptions: JournalOptions
    @OptionGroup var security: SecurityOptions
    @OptionGroup(title: "Autoscaling") var autoscaling: AutoscaleOptions

    func validate() throws {
        try security.validate(coordinator: true)
        guard heartbeatMs > 0, livenessMs > heartbeatMs, leaseMs >= livenessMs else {
            throw ValidationError("timers must satisfy 0 < --heartbeat-ms < --liveness-ms ≤ --lease-ms")
        }
    }

    func run() throws {
        installStopHandlers()
        let sweep = try loadSweep(file)
        let directory = (journal as NSString).deletingLastPathComponent
        let run = try CoordinatedRun(sweep: sweep, sweepFile: file, journalPath: journal,
                                     blobDirectory: blobs ?? (directory.isEmpty ? "blobs" : directory + "/blobs"))
        defer { run.close() }
        var config = CoordinatorConfig(bind: bind)
        config.scheduler.maxAttempts = journalOptions.maxAttempts ?? sweep.maxAttempts
        config.scheduler.exitWhenDone = !stay
        config.scheduler.heartbeatMs = heartbeatMs
        config.scheduler.livenessMs = livenessMs
        config.scheduler.leaseMs = leaseMs
        config.retryFailed = journalOptions.retryFailed
        if let key = security.key, let peers = security.peerKeys {
            config.curve = try CurveKeyPair.read(keyFile: key)
            let files = try FileManager.default.contentsOfDirectory(atPath: peers).filter { $0.hasSuffix(".pub") }
            config.allowedWorkerKeys = Set(try files.map { try CurveKeyPair.readPublicKey((peers as NSString).appendingPathComponent($0)) })
            print("CurveZMQ on: \(config.allowedWorkerKeys.count) worker key(s) allowed")
        }
        let coordinator = try run.coordinator(config)
        do {
            coordinator.autoscale = try autoscaling.service(journal: run.journal, sweepID: try run.journal.meta("sweep_id") ?? sweep.name,
                                                            boundEndpoint: coordinator.endpoint, runDirectory: directory.isEmpty ? "." : directory, security: security)
        } catch let e as CLIError { throw e } catch { throw CLIError("\(error)") }
        print("apsweep coordinator: sweep \(sweep.name), \(coordinator.taskCount) tasks, journal \(journal), listening on \(coordinator.endpoint)"
              + (autoscaling.autoscale.map { ", autoscaling with \($0.rawValue) up to \(autoscaling.maxWorkers) workers (they connect to \(autoscaling.endpoint(bound: coordinator.endpoint)))" } ?? ""))
        let outcome = coordinator.run(stop: stopReason)
        try finish(outcome, run: run, command: "apsweep coordinator \(file) --journal \(journal)", stopExitsZero: true)
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
    @Flag(help: .hidden) var exitWithParent = false
    @OptionGroup var security: SecurityOptions
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        try security.validate(coordinator: false)
        if dataset.isEmpty && shard.isEmpty && !noData { throw ValidationError("give the data held here: --dataset NAME [--data DIR] or --shard FILE") }
        if let shardsOf, shardsOf < 1 { throw ValidationError("--shards-of must be ≥ 1") }
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
        if exitWithParent { config.parentPipe = STDIN_FILENO }
        if let key = security.key, let peer = security.peerKeys {
            config.curve = (try CurveKeyPair.read(keyFile: key), try CurveKeyPair.readPublicKey(peer))
        }
        let worker = try SweepWorker(config: config, shards: shards) { print("worker \(config.workerID): \($0)") }
        print("apsweep worker \(config.workerID): \(shards.map { "\($0.name)[\($0.index)/\($0.count)] \($0.shortFingerprint)" }.joined(separator: ", ")); \(BLAS.summary); connecting to \(connect)")
        switch try worker.run(stop: { stopSignal != 0 }) {
        case let .shutdown(reason): print("worker \(config.workerID): shutdown (\(reason))")
        case let .rejected(reason): throw CLIError("the coordinator refused this worker: \(reason)")
        case .stopped: print("worker \(config.workerID): stopped; its task was handed back")
        }
    }
}

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sweep",
        abstract: "Run a whole sweep on this machine: an embedded coordinator and N local worker processes.")
    @Argument(help: "The sweep file.") var file: String
    @Option(help: "Local worker processes.") var workers = 2
    @Option(help: "Directory for the journal, checkpoints and results (default: runs/<name>).") var dir: String?
    @Option(help: "The journal (default: DIR/sweep.db).") var journal: String?
    @Option(help: "Directory of the data set's files (default: where Debian's package puts them).") var data: String?
    @Option(help: "Threads per worker (default: the cores split between the workers).") var threads: Int?
    @OptionGroup var journalOptions: JournalOptions

    func validate() throws {
        guard workers >= 1, workers <= 256 else { throw ValidationError("--workers must be in 1…256") }
        if let threads, threads < 1 { throw ValidationError("--threads must be ≥ 1") }
    }

    func run() throws {
        installStopHandlers()
        let sweep = try loadSweep(file)
        guard sweep.data.dataset != "synthetic" else {
            throw CLIError("\(file): apsweep sweep runs named data sets (fashion-mnist, mnist, cifar10, cifar100, image folders); for shard files run apsweep coordinator and workers with --shard")
        }
        let data = self.data ?? sweep.data.path
        try checkData(sweep, directory: data)
        let out = dir ?? "runs/\(sweep.name)"
        do { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) } catch { throw CLIError("\(out): \(error.localizedDescription)") }
        let journalPath = journal ?? out + "/sweep.db"
        let run = try CoordinatedRun(sweep: sweep, sweepFile: file, journalPath: journalPath, blobDirectory: out + "/blobs")
        defer { run.close() }
        var config = CoordinatorConfig(bind: "tcp://127.0.0.1:*")
        config.scheduler.maxAttempts = journalOptions.maxAttempts ?? sweep.maxAttempts
        config.retryFailed = journalOptions.retryFailed
        let coordinator = try run.coordinator(config)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let threads = self.threads ?? max(1, cores / workers)
        print("apsweep sweep \(sweep.name): \(coordinator.taskCount) tasks, \(workers) local workers × \(threads) thread(s), journal \(journalPath)")
        print("watch it from another terminal: apsweep status --connect \(coordinator.endpoint) --insecure --watch")
        // Local workers hold the read end of a pipe as their stdin: when this process dies,
        // however it dies, the pipe closes and they exit (no orphans reconnecting forever).
        var processes: [Process] = []
        var pipes: [Pipe] = []
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        for k in 0..<workers {
            let p = Process()
            p.executableURL = executable
            var args = ["worker", "--connect", coordinator.endpoint, "--insecure", "--id", "local-\(k)", "--cache", out + "/cache-\(k)",
                        "--threads", String(threads), "--dataset", sweep.data.dataset, "--exit-with-parent"]
            if let data { args += ["--data", data] }
            if sweep.data.shards > 1 { args += ["--shards-of", String(sweep.data.shards)] }
            p.arguments = args
            let log = out + "/worker-\(k).log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            p.standardOutput = FileHandle(forWritingAtPath: log)
            p.standardError = p.standardOutput
            let pipe = Pipe()
            p.standardInput = pipe
            try p.run()
            processes.append(p)
            pipes.append(pipe)
        }
        defer {
            for p in processes where p.isRunning { p.terminate() }
            for p in processes { p.waitUntilExit() }
        }
        let progress = ProgressLine(enabled: stdoutIsTerminal)
        var lastLine = ""
        coordinator.onCommit = { c in
            let line = "tasks \(c.done)/\(c.total) done, \(c.running) running, \(c.queued + c.stale) queued, \(c.failed) failed"
            guard line != lastLine else { return }
            lastLine = line
            if stdoutIsTerminal { progress.update(line) } else { print(line) }
        }
        var workersGone = false
        let outcome = coordinator.run {
            if let reason = stopReason() { return reason }
            if processes.allSatisfy({ !$0.isRunning }) {
                workersGone = true
                return "every local worker exited (see \(out)/worker-*.log)"
            }
            return nil
        }
        progress.finish()
        for p in processes where p.isRunning { p.terminate() }
        for p in processes { p.waitUntilExit() }
        if case .stopped = outcome { print("writing the results of what is done (Ctrl-C again to skip)") }
        _ = run.export(into: out)
        print("results in \(out)/results.csv, \(out)/summary.json and \(out)/report.html; journal \(journalPath); worker logs \(out)/worker-*.log")
        if workersGone { throw CLIError("every local worker exited before the sweep finished; see \(out)/worker-*.log, then run the same command again to resume") }
        try finish(outcome, run: run, command: "apsweep sweep \(file)", stopExitsZero: false)
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report",
        abstract: "Write results.csv, summary.json and report.html (and print the summary) from any journal, finished or not. Reads the journal without changing it.")
    @Argument(help: "The sweep's journal (sweep.db).") var journal: String
    @Option(help: "Output directory (default: the journal's directory).") var out: String?
    @Option(help: "Also save every figure as a standalone SVG file in this directory.") var figures: String?
    @Option(help: "Bootstrap resamples for intervals and claims.") var resamples = 1000
    @Option(help: "Only this architecture's tasks (repeatable): one family's tables out of a sweep over several.") var model: [Architecture] = []
    @Option(help: "Only prune tasks of this method (repeatable; baselines are kept).") var method: [PruningMethod] = []
    @Option(help: "Only prune tasks of this scope (repeatable), as the sweep file names it: last, per-layer, global, layers:….") var scope: [String] = []
    @Option(help: "The AP3 variant the claims use, as the sweep's metrics name it (e.g. gaussian-diag:estimate=row; default: the first Gaussian one).") var ap3: String?

    func validate() throws {
        guard resamples >= 100, resamples <= 1_000_000 else { throw ValidationError("--resamples must be in 100…1000000") }
    }

    func run() throws {
        let store: SweepJournal
        do { store = try SweepJournal.openForReading(journal, describe: Plan.describe) } catch { throw CLIError("\(error)") }
        defer { store.close() }
        let dir = out ?? { let d = (journal as NSString).deletingLastPathComponent; return d.isEmpty ? "." : d }()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let w: ResultsExport.Written
        let only = TaskFilter(models: Set(model.map(\.rawValue)), methods: Set(method.map(\.rawValue)), scopes: Set(scope))
        let variant = ap3.map { $0.hasPrefix("ap3[") ? $0 : "ap3[\($0)]" }
        do { w = try ResultsExport.write(journal: store, directory: dir, resamples: resamples, figures: figures, only: only, ap3: variant) } catch { throw CLIError("\(error)") }
        print(ResultsExport.table(w), terminator: "")
        let a = w.aggregation
        print("\(a.tasksDone) of \(a.tasksTotal) tasks done; wrote \(dir)/results.csv, \(dir)/summary.json and \(dir)/report.html\(figures.map { " and figures in \($0)" } ?? "")")
    }
}

/// An exit with a status and (optionally) a message on stderr.
struct ExitCodeError: Error, CustomStringConvertible {
    let code: Int32
    let message: String?
    var description: String { message ?? "" }
}
