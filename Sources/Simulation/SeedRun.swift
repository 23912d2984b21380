import Foundation

/// What a range of seeds did: how many ran, how much they covered, which failed.
public struct SeedRunSummary: Sendable {
    public var seeds = 0, tasks = 0, coordinatorCrashes = 0, faults = 0
    /// Distinct `SimulationWorld.faultSchedule`s among the seeds.
    public var distinctSchedules = 0
    /// How often each fault kind happened, over all seeds.
    public var faultKinds: [String: Int] = [:]
    /// The failing seeds with their first violation (at most `maxFailures` of them).
    public var failures: [(seed: UInt64, violation: String)] = []
    public var seconds = 0.0

    public var seedsPerSecond: Double { seconds > 0 ? Double(seeds) / seconds : 0 }

    /// One line for a log: seeds, coverage and speed.
    public var line: String {
        String(format: "simulation: %d seeds, %d tasks, %d faults (%d coordinator crashes), %d distinct fault schedules, %d failing, in %.1f s (%.0f seeds/s)",
               seeds, tasks, faults, coordinatorCrashes, distinctSchedules, failures.count, seconds, seedsPerSecond)
    }

    /// The command that replays one seed with its trace.
    public static func replay(_ seed: UInt64) -> String { "APSWEEP_SIM_SEED=\(seed) swift test --filter SimulationTests" }
}

/// Runs seeds `first ..< first + count` on every core (each seed is deterministic on its own, so
/// the split changes nothing), stopping after `maxFailures` failing ones.
public func simulateSeeds(first: UInt64, count: UInt64, maxFailures: Int = 5) -> SeedRunSummary {
    let start = Date()
    let parts = Int(min(UInt64(max(1, ProcessInfo.processInfo.activeProcessorCount)), max(1, count)))
    let lock = NSLock()
    var partials: [(SeedRunSummary, Set<String>)] = []
    var failing = 0
    DispatchQueue.concurrentPerform(iterations: parts) { part in
        var summary = SeedRunSummary()
        var schedules = Set<String>()
        // Interleaved, so that slow and fast seeds spread evenly.
        var seed = first + UInt64(part)
        while seed < first + count {
            let world = SimulationWorld(seed: seed)
            let violations = world.run()
            summary.seeds += 1
            summary.tasks += world.plan.count
            summary.coordinatorCrashes += world.coordinatorCrashes
            summary.faults += world.faults.count
            for f in world.faults { summary.faultKinds[f, default: 0] += 1 }
            schedules.insert(world.faultSchedule)
            if let v = violations.first {
                summary.failures.append((seed, v))
                let enough = lock.withLock { failing += 1; return failing >= maxFailures }
                if enough { break }
            }
            seed += UInt64(parts)
        }
        lock.withLock { partials.append((summary, schedules)) }
    }
    var total = SeedRunSummary()
    var schedules = Set<String>()
    for (p, s) in partials {
        total.seeds += p.seeds
        total.tasks += p.tasks
        total.coordinatorCrashes += p.coordinatorCrashes
        total.faults += p.faults
        for (k, v) in p.faultKinds { total.faultKinds[k, default: 0] += v }
        total.failures += p.failures
        schedules.formUnion(s)
    }
    total.failures.sort { $0.seed < $1.seed }
    total.distinctSchedules = schedules.count
    total.seconds = Date().timeIntervalSince(start)
    return total
}
