import Autoscaling
import Journal
import Foundation

/// Starts and stops worker jobs for the autoscaler. Calls block (they run commands) and are made
/// from the autoscaler's thread, never from the coordinator's loop.
public protocol WorkerLauncher: AnyObject {
    /// `slurm` or `exec`, for status and the journal.
    var name: String { get }
    /// Starts one worker per id; returns each one's job id, in order. Throws with the
    /// launcher's own message.
    func launch(_ workers: [String]) throws -> [String]
    /// The state of these jobs now; a job not in the answer has ended.
    func states(of jobs: [PoolJob]) throws -> [String: (state: PoolJob.State, reason: String)]
    func cancel(_ job: PoolJob) throws
}

/// Runs a command (no shell) and returns its standard output; throws with its standard error
/// when it fails or outlives `timeout` seconds.
func runCommand(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, timeout: Double = 60) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/env")
    p.arguments = executable.hasPrefix("/") ? arguments : [executable] + arguments
    if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new } }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
    try p.run()
    // Read while it runs (a full pipe would block it), then wait.
    final class Box: @unchecked Sendable { var data = Data() }
    let stdoutBox = Box(), stderrBox = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { stdoutBox.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter()
    DispatchQueue.global().async { stderrBox.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(10_000) }
    if p.isRunning {
        p.terminate()
        p.waitUntilExit()
        throw CommandError("\(executable) did not finish within \(Int(timeout)) s")
    }
    group.wait()
    let stdout = stdoutBox.data, stderr = stderrBox.data
    guard p.terminationStatus == 0 else {
        let why = String(decoding: stderr, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        throw CommandError("\(executable) exited \(p.terminationStatus)\(why.isEmpty ? "" : ": " + why)")
    }
    return String(decoding: stdout, as: UTF8.self)
}

public struct CommandError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

/// Worker jobs on Slurm: one `sbatch --array` per launch of the worker script (by default
/// Cluster/slurm/worker.sbatch), each array element told its worker id and the coordinator's
/// address through its environment; states from `squeue` (one line per array element, jobs
/// found by their name), `scancel` to end one.
public final class SlurmLauncher: WorkerLauncher {
    public let name = "slurm"
    let script: String
    let sbatchArguments: [String]
    let environment: [String: String]
    /// Every job of this sweep is submitted under this name (`apsweep-<sweep id>`).
    let jobName: String

    /// `environment` reaches the worker script (APSWEEP_COORDINATOR, keys, data options).
    /// Unless `sbatchArguments` name an --output, each job's log is `logDirectory/slurm-<job>_<index>.log`.
    public init(script: String, sbatchArguments: [String], environment: [String: String], jobName: String, logDirectory: String) {
        self.script = script
        let namesOutput = sbatchArguments.contains { $0 == "-o" || $0.hasPrefix("--output") }
        self.sbatchArguments = sbatchArguments + (namesOutput ? [] : ["--output=\(logDirectory)/slurm-%A_%a.log"])
        self.environment = environment
        self.jobName = jobName
    }

    public func launch(_ workers: [String]) throws -> [String] {
        guard !workers.isEmpty else { return [] }
        let env = environment.merging(["APSWEEP_WORKER_IDS": workers.joined(separator: ",")]) { _, new in new }
        // Only names: values travel in the environment (commas in them would split --export).
        let export = (["ALL"] + env.keys.sorted()).joined(separator: ",")
        let out = try runCommand("sbatch", ["--parsable", "--job-name=\(jobName)", "--array=0-\(workers.count - 1)"] + sbatchArguments
                                 + ["--export=\(export)", script], environment: env)
        let id = out.split(whereSeparator: { $0 == ";" || $0.isNewline }).first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
        guard !id.isEmpty, id.allSatisfy(\.isNumber) else { throw CommandError("sbatch printed no job id: \(out)") }
        return workers.indices.map { "\(id)_\($0)" }
    }

    public func states(of jobs: [PoolJob]) throws -> [String: (state: PoolJob.State, reason: String)] {
        let out = try runCommand("squeue", ["-h", "-r", "--name=\(jobName)", "-o", "%i|%T|%r"])
        var states: [String: (PoolJob.State, String)] = [:]
        for line in out.split(separator: "\n") {
            let f = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard f.count >= 3 else { continue }
            switch f[1] {
            case "PENDING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED": states[f[0]] = (.pending, f[2] == "None" ? "" : f[2])
            case "RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING": states[f[0]] = (.running, "")
            default: states[f[0]] = (.ended, f[1].lowercased())
            }
        }
        return states
    }

    public func cancel(_ job: PoolJob) throws { _ = try runCommand("scancel", [job.id]) }
}

/// Worker jobs through any command: `launch` (with `{id}` for the worker id and `{endpoint}` for
/// the coordinator's address) starts one worker and stays in the foreground for its life (`ssh
/// node exec apsweep worker …`, `kubectl run --attach …`); `stop` (with `{id}`), when given,
/// ends one — otherwise its command is sent SIGTERM. A job is running while its command runs.
public final class ExecLauncher: WorkerLauncher {
    public let name = "exec"
    let launchTemplate: String
    let stopTemplate: String?
    let endpoint: String
    let logDirectory: String?
    private var processes: [String: Process] = [:]
    /// Jobs of an earlier coordinator (restored, not our children): running while their worker
    /// is registered (told by `registered`), ended once it has not been for `adoptionGraceMs`
    /// (a restarted coordinator gives them time to reconnect).
    public var registered: (String) -> Bool = { _ in false }
    public var adoptionGraceMs: Int64 = 30_000
    /// Set at the sweep's end, when every worker has been told Shutdown: a job that is not our
    /// child cannot be waited for, so it counts as ended.
    public var sweepOver = false
    private var unseenSince: [String: Int64] = [:]

    public init(launch: String, stop: String?, endpoint: String, logDirectory: String?) {
        launchTemplate = launch
        stopTemplate = stop
        self.endpoint = endpoint
        self.logDirectory = logDirectory
    }

    func fill(_ template: String, id: String) -> String {
        template.replacingOccurrences(of: "{id}", with: id).replacingOccurrences(of: "{endpoint}", with: endpoint)
    }

    public func launch(_ workers: [String]) throws -> [String] {
        for id in workers {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", fill(launchTemplate, id: id)]
            p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
            if let dir = logDirectory {
                let path = "\(dir)/\(id).log"
                _ = FileManager.default.createFile(atPath: path, contents: nil)
                p.standardOutput = FileHandle(forWritingAtPath: path)
                p.standardError = FileHandle(forWritingAtPath: path)
            } else {
                p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
                p.standardError = FileHandle(forWritingAtPath: "/dev/null")
            }
            do { try p.run() } catch { throw CommandError("cannot start /bin/sh -c \(fill(launchTemplate, id: id)): \(error)") }
            processes[id] = p
        }
        return workers
    }

    public func states(of jobs: [PoolJob]) throws -> [String: (state: PoolJob.State, reason: String)] {
        var out: [String: (PoolJob.State, String)] = [:]
        for j in jobs {
            if let p = processes[j.id] {
                if p.isRunning { out[j.id] = (.running, "") } else { processes[j.id] = nil }
            } else if sweepOver {
                continue
            } else if registered(j.worker) {
                unseenSince[j.id] = nil
                out[j.id] = (.running, "")
            } else {
                let since = unseenSince[j.id] ?? nowMs()
                unseenSince[j.id] = since
                if nowMs() - since < adoptionGraceMs { out[j.id] = (.running, "") }
            }
        }
        return out
    }

    public func cancel(_ job: PoolJob) throws {
        if let stop = stopTemplate {
            _ = try runCommand("/bin/sh", ["-c", fill(stop, id: job.id)])
        } else if let p = processes[job.id], p.isRunning {
            kill(p.processIdentifier, SIGTERM)
        }
    }
}
