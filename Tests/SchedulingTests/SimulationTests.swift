import Foundation
import XCTest

/// Deterministic simulation of the coordinator (the real `Scheduler`) and its workers (the real
/// `WorkerSession`) under injected faults; see `SimulationWorld` for the faults and `Oracle` for
/// the invariants. A failing seed prints the command that replays it.
///
///   APSWEEP_SIM_SEED=N swift test --filter SimulationTests     replay one seed, with its trace
///   APSWEEP_SIM_SEEDS=N  (or Scripts/simulate N)               N seeds after the fixed CI set
final class SimulationTests: XCTestCase {
    func testFixedSeedsKeepEveryInvariant() throws {
        let env = ProcessInfo.processInfo.environment
        if let one = env["APSWEEP_SIM_SEED"].flatMap(UInt64.init) {
            let world = SimulationWorld(seed: one, keepTrace: true)
            let violations = world.run()
            if !violations.isEmpty { print(world.trace.suffix(400).joined(separator: "\n")) }
            XCTAssertEqual(violations, [], "seed \(one)")
            return
        }
        let first = UInt64(env["APSWEEP_SIM_FIRST"] ?? "") ?? 1
        let count = UInt64(env["APSWEEP_SIM_SEEDS"] ?? "") ?? 1000
        let start = Date()
        var failures = 0, crashes = 0, tasks = 0
        for seed in first..<(first + count) {
            let world = SimulationWorld(seed: seed)
            let violations = world.run()
            crashes += world.coordinatorCrashes
            tasks += world.plan.count
            if !violations.isEmpty {
                failures += 1
                XCTFail("\(violations.first!)\n  replay: APSWEEP_SIM_SEED=\(seed) swift test --filter SimulationTests")
                if failures >= 5 { break }
            }
        }
        let seconds = Date().timeIntervalSince(start)
        print(String(format: "simulation: %d seeds (%d…%d), %d tasks, %d coordinator crashes, in %.1f s (%.0f seeds/s)",
                     Int(count), Int(first), Int(first + count - 1), tasks, crashes, seconds, Double(count) / seconds))
    }
}
