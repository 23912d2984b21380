import ArgumentParser
import Autoscaling
import Coordinator
import Foundation
import Journal

/// `--autoscale slurm|exec` and its settings (`apsweep coordinator`).
struct AutoscaleOptions: ParsableArguments {
    enum Launcher: String, ExpressibleByArgument, CaseIterable { case slurm, exec }

    @Option(help: "Grow and shrink the worker pool: slurm (sbatch/squeue/scancel) or exec (--launch/--stop commands).")
    var autoscale: Launcher?
    @Option(help: "Worker jobs held at most (pending and running).") var maxWorkers = 16
    @Option(help: "Worker jobs kept at least while the sweep runs.") var minWorkers = 0
    @Option(help: "Seconds a worker of ours may idle with nothing queued before it is released.") var idleTimeout = 60.0
    @Option(help: "Seconds a job may stay pending before status and the journal say so (it is not resubmitted).") var pendingLimit = 600.0
    @Option(help: "Seconds between two launch decisions (each launches at most 8 workers): a busy controller is not flooded.")
    var launchInterval = 10.0
    @Option(parsing: .unconditional, help: "Extra sbatch arguments for worker jobs (partition, time, account, cpus-per-task, mem), as one string.")
    var sbatchArgs = ""
    @Option(help: "The worker job script sbatch submits (default: Cluster/slurm/worker.sbatch next to the binary's checkout, or $APSWEEP_WORKER_SCRIPT).")
    var workerScript: String?
    @Option(parsing: .unconditional, help: "exec: the command that starts one worker and stays in the foreground ({id}: worker id, {endpoint}: the coordinator's address).")
    var launch: String?
    @Option(parsing: .unconditional, help: "exec: the command that ends one worker ({id}); default: SIGTERM to its --launch command.")
    var stop: String?
    @Option(help: "The address workers connect to (default: tcp://<this host>:<bound port>).") var advertise: String?

    func validate() throws {
        guard let autoscale else {
            if launch != nil || stop != nil { throw ValidationError("--launch and --stop need --autoscale exec") }
            return
        }
        guard maxWorkers >= 1, minWorkers >= 0, minWorkers <= maxWorkers else { throw ValidationError("need 0 ≤ --min-workers ≤ --max-workers and --max-workers ≥ 1") }
        guard idleTimeout > 0, pendingLimit > 0, launchInterval > 0 else {
            throw ValidationError("--idle-timeout, --pending-limit and --launch-interval must be > 0 seconds")
        }
        if autoscale == .exec && launch == nil { throw ValidationError("--autoscale exec needs --launch \"CMD\" (with {id} for the worker id)") }
    }

    var config: AutoscaleConfig {
        var c = AutoscaleConfig()
        c.maxWorkers = maxWorkers
        c.minWorkers = minWorkers
        c.idleTimeoutMs = Int64(idleTimeout * 1000)
        c.pendingLimitMs = Int64(pendingLimit * 1000)
        c.decisionIntervalMs = Int64(launchInterval * 1000)
        return c
    }

    /// The address workers are given: --advertise, or this host's name with the bound port.
    func endpoint(bound: String) -> String {
        if let advertise { return advertise }
        let port = bound.split(separator: ":").last.map(String.init) ?? "5555"
        return "tcp://\(ProcessInfo.processInfo.hostName):\(port)"
    }

    /// The service for `coordinator`, adopting the jobs an earlier coordinator on this journal
    /// launched; nil without --autoscale.
    func service(journal: SweepJournal, sweepID: String, boundEndpoint: String, runDirectory: String,
                 security: SecurityOptions) throws -> AutoscaleService? {
        guard let autoscale else { return nil }
        let endpoint = self.endpoint(bound: boundEndpoint)
        // Launches before ends (a job's end always follows its launch).
        let events = try journal.events(kind: "autoscale-launched") + journal.events(kind: "autoscale-ended")
        let launcher: WorkerLauncher
        let logs = runDirectory + "/workers"
        try? FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        switch autoscale {
        case .slurm:
            var env = ["APSWEEP_COORDINATOR": endpoint, "RUN_DIR": runDirectory,
                       "APSWEEP": URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path]
            // Under CURVE the job script takes a worker key from $RUN_DIR/keys/workers (as with
            // coordinator.sbatch) and needs the coordinator's public key.
            if let key = security.key { env["APSWEEP_COORDINATOR_PUB"] = (key as NSString).deletingPathExtension + ".pub" }
            let script = workerScript ?? ProcessInfo.processInfo.environment["APSWEEP_WORKER_SCRIPT"] ?? Self.defaultWorkerScript()
            guard FileManager.default.fileExists(atPath: script) else {
                throw CLIError("--autoscale slurm: no worker job script at \(script); give --worker-script (Cluster/slurm/worker.sbatch)")
            }
            launcher = SlurmLauncher(script: script, sbatchArguments: sbatchArgs.split(separator: " ").map(String.init),
                                     environment: env, jobName: "apsweep-\(sweepID)", logDirectory: logs)
        case .exec:
            launcher = ExecLauncher(launch: launch!, stop: stop, endpoint: endpoint, logDirectory: logs)
        }
        return AutoscaleService(launcher: launcher, config: config, restoring: events)
    }

    /// Cluster/slurm/worker.sbatch of the checkout the binary was built in (.build/<config>/apsweep).
    static func defaultWorkerScript() -> String {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = url.appendingPathComponent("Cluster/slurm/worker.sbatch").path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            url = url.deletingLastPathComponent()
        }
        return "Cluster/slurm/worker.sbatch"
    }
}
