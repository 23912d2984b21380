import ArgumentParser
import Foundation
import Simulation

/// Runs the scheduler's deterministic simulation over a range of seeds (what CI runs for seeds
/// 1…1000, here for as many more as you like) and prints coverage and speed.
struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "simulate",
        abstract: "Deterministic simulation of the coordinator's scheduler under injected faults (for developers).",
        discussion: """
            Each seed is one sweep over a simulated network and clock: messages delayed, reordered, duplicated and \
            dropped; workers crashed, restarted, partitioned, paused past their lease, leaving and joining; the \
            coordinator crashed at effect boundaries and restored from its journal; clock steps. The sweep's \
            invariants are checked after every journal batch and at the end. Exit status 1 if a seed breaks one; \
            each failing seed is printed with the command that replays it with its trace.
            """)
    @Option(help: "Seeds to run.") var seeds: UInt64 = 10_000
    @Option(help: "The first seed (CI runs 1…1000).") var first: UInt64 = 1001
    @Option(help: "Stop after this many failing seeds.") var maxFailures = 5

    func run() throws {
        let summary = simulateSeeds(first: first, count: seeds, maxFailures: maxFailures)
        print(summary.line)
        print("seeds from \(first); faults by kind: "
              + summary.faultKinds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        for (seed, violation) in summary.failures {
            print("FAILED seed \(seed): \(violation)\n  replay: \(SeedRunSummary.replay(seed))")
        }
        if !summary.failures.isEmpty { throw ExitCode(1) }
    }
}
