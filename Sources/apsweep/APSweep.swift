import ArgumentParser
import Foundation
import Experiment
import NeuralCore
import Records

@main
struct APSweep: ParsableCommand {
    static let version = apsweepVersion
    static let configuration = CommandConfiguration(
        commandName: "apsweep",
        abstract: "Prune networks, fine-tune them, and measure AP2 / AP3 against the performance difference.",
        version: version,
        subcommands: [SweepCommand.self, CoordinatorCommand.self, WorkerCommand.self, StatusCommand.self, ReportCommand.self, PlanCommand.self, Train.self, Eval.self, Prune.self, Metrics.self, RunTask.self, DataCommand.self, Keys.self, Bench.self, Simulate.self, Info.self])

    static func main() {
        // Line-buffered output, so logs piped to a file or a job scheduler appear as they happen.
        setvbuf(stdout, nil, _IOLBF, 0)
        do {
            var command = try parseAsRoot(nil)
            try command.run()
        } catch let e as ExitCodeError {
            if let m = e.message { printError("apsweep: \(m)") }
            Foundation.exit(e.code)
        } catch {
            exit(withError: error)
        }
    }
}

/// Options every compute command shares.
struct ComputeOptions: ParsableArguments {
    @Option(help: "Threads for BLAS and apsweep's own loops (default: all cores).")
    var threads: Int?

    func apply() throws {
        try BLAS.load()
        Allocator.keepFreedMemory()
        let n = threads ?? ProcessInfo.processInfo.activeProcessorCount
        guard n >= 1 else { throw ValidationError("--threads must be at least 1, got \(n)") }
        BLAS.threads = n
        Compute.threads = n
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version, the BLAS kernels in use and the models available.")
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.apply()
        print("apsweep \(APSweep.version)")
        print(BLAS.summary)
        if !Compute.compiledFor.isEmpty { print("compiled for \(Compute.compiledFor) CPUs (APSWEEP_CPU at build time)") }
        print("models: \(Architecture.allCases.map(\.rawValue).joined(separator: ", "))")
    }
}

/// Writes a line to standard error.
func printError(_ message: String) {
    FileHandle.standardError.write((message + "\n").data(using: .utf8)!)
}

/// Whether standard output is a terminal (progress bars) or a pipe/file (plain lines).
var stdoutIsTerminal: Bool { isatty(STDOUT_FILENO) != 0 }

/// A failure to report as `Error: <message>` without the usage text (that is for bad arguments).
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
