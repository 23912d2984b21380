import ArgumentParser
import Coordinator
import Foundation
import BlobStore
import Journal
import Messages
import Wire

/// The coordinator's own figures: dispatch rate with the journal on, overhead on one-second
/// tasks, and a real sweep's throughput with 2 workers against 1.
struct BenchSweep: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sweep",
        abstract: "Coordinator dispatch of no-op tasks (journal on), status requests answered per second, overhead on one-second tasks, and sweep throughput with 2 workers vs 1.")
    @Option(help: "No-op tasks for the dispatch rate.") var dispatch = 5000
    @Option(help: "Worker processes for the dispatch rate.") var dispatchWorkers = 4
    @Option(help: "One-second tasks for the overhead figure (0 skips it).") var overheadTasks = 100
    @Option(help: "A sweep file for the 2-vs-1-worker throughput (none skips it).") var throughput = "Examples/quickstart.yaml"
    @Option(help: "Seconds of pipelined status requests for the status rate (0 skips it).") var statusSeconds = 3.0

    func run() throws {
        let rate = try noopRun(tasks: dispatch, sleepMs: 0, workers: dispatchWorkers)
        print(String(format: "dispatch: %d no-op tasks through %d worker processes, journal on (WAL): %.0f tasks/s (%.2f s)", dispatch, dispatchWorkers, Double(dispatch) / rate, rate))
        if statusSeconds > 0 {
            let (rate, answered) = try statusRate(seconds: statusSeconds)
            print(String(format: "status: %.0f StatusRequests/s answered (%d in %.1f s, 64 in flight, a coordinator holding 10,000 queued tasks)", rate, answered, statusSeconds))
        }
        if overheadTasks > 0 {
            let wall = try noopRun(tasks: overheadTasks, sleepMs: 1000, workers: 2)
            let ideal = Double(overheadTasks) / 2
            print(String(format: "overhead: %d one-second tasks on 2 workers: %.2f s for an ideal %.2f s → %.2f%% of wall time", overheadTasks, wall, ideal, 100 * (wall - ideal) / wall))
        }
        if throughput != "none" {
            let oneThread = try timedSweep(workers: 1, threads: 1), two = try timedSweep(workers: 2, threads: 1)
            let oneAllCores = try timedSweep(workers: 1, threads: ProcessInfo.processInfo.activeProcessorCount)
            print(String(format: "throughput: %@: 1 worker × 1 thread %.1f s, 2 workers × 1 thread %.1f s → %.2f× (scaling with workers)", throughput, oneThread, two, oneThread / two))
            print(String(format: "throughput: %@: 1 worker × %d threads %.1f s vs 2 workers × 1 thread → %.2f× (best use of this machine)", throughput, ProcessInfo.processInfo.activeProcessorCount, oneAllCores, oneAllCores / two))
        }
    }

    /// Seconds from the first lease to the last completion.
    private func noopRun(tasks: Int, sleepMs: Int, workers: Int) throws -> Double {
        let dir = NSTemporaryDirectory() + "apsweep-bench-sweep-\(getpid())-\(tasks)"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if ProcessInfo.processInfo.environment["APSWEEP_BENCH_KEEP"] == nil { try? FileManager.default.removeItem(atPath: dir) } else { print("kept \(dir)") } }
        let journal = try SweepJournal.openForWriting(dir + "/sweep.db")
        defer { journal.close() }
        try journal.storePlan(try Plan.noop(count: tasks, sleepMs: sleepMs).planned, pins: [:], sweepText: "noop", sweepID: "bench")
        let coordinator = try SweepCoordinator(journal: journal, blobs: try BlobStore(directory: dir + "/blobs"),
                                               config: CoordinatorConfig(bind: "tcp://127.0.0.1:*"))
        var processes: [Process] = []
        for k in 0..<workers {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            p.arguments = ["worker", "--connect", coordinator.endpoint, "--insecure", "--no-data", "--id", "bench-\(k)", "--cache", dir + "/cache-\(k)", "--threads", "1"]
            p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            try p.run()
            processes.append(p)
        }
        defer { for p in processes { if p.isRunning { p.terminate() }; p.waitUntilExit() } }
        guard case .complete = coordinator.run() else { throw CLIError("the benchmark's coordinator stopped early") }
        let leased = try journal.events(kind: "leased").count
        guard leased >= tasks else { throw CLIError("only \(leased) of \(tasks) tasks were dispatched") }
        var first: Int64 = .max, last: Int64 = 0
        for t in try journal.tasks() {
            if let s = t.row.startedMs { first = min(first, s) }
            if let f = t.row.finishedMs { last = max(last, f) }
        }
        return Double(last - first) / 1000
    }

    /// StatusRequests answered per second by a coordinator (10,000 queued no-op tasks, no
    /// workers), with 64 requests in flight from one client.
    private func statusRate(seconds: Double) throws -> (Double, Int) {
        let dir = NSTemporaryDirectory() + "apsweep-bench-status-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let journal = try SweepJournal.openForWriting(dir + "/sweep.db")
        defer { journal.close() }
        try journal.storePlan(try Plan.noop(count: 10_000, sleepMs: 0).planned, pins: [:], sweepText: "noop", sweepID: "bench")
        var config = CoordinatorConfig(bind: "tcp://127.0.0.1:*")
        config.scheduler.exitWhenDone = false
        let coordinator = try SweepCoordinator(journal: journal, blobs: try BlobStore(directory: dir + "/blobs"), config: config)
        let stop = StopFlag()
        let loop = Thread { _ = coordinator.run(stop: { stop.isSet ? "benchmark over" : nil }) }
        loop.start()
        defer {
            stop.set()
            while !loop.isFinished { usleep(10_000) }
        }
        let context = try ZMQContext()
        defer { context.close() }
        let client = try DealerEndpoint(context: context, connect: coordinator.endpoint)
        defer { client.socket.close() }
        var inFlight = 0, answered = 0
        let start = Date()
        while Date().timeIntervalSince(start) < seconds {
            while inFlight < 64 {
                _ = try client.send(.statusRequest(StatusRequest(maxWorkers: 10)))
                inFlight += 1
            }
            if case .statusReply? = try client.receive(timeoutMs: 100)?.message {
                inFlight -= 1
                answered += 1
            }
        }
        return (Double(answered) / Date().timeIntervalSince(start), answered)
    }

    private func timedSweep(workers: Int, threads: Int) throws -> Double {
        let dir = NSTemporaryDirectory() + "apsweep-bench-throughput-\(getpid())-\(workers)-\(threads)"
        try? FileManager.default.removeItem(atPath: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        p.arguments = ["sweep", throughput, "--workers", String(workers), "--threads", String(threads), "--dir", dir]
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        let start = Date()
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CLIError("the sweep with \(workers) worker(s) failed") }
        return Date().timeIntervalSince(start)
    }
}

/// A flag one thread sets and another reads.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
