import Foundation
import Simulation
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
        let summary = simulateSeeds(first: first, count: count)
        for (seed, violation) in summary.failures { XCTFail("\(violation)\n  replay: \(SeedRunSummary.replay(seed))") }
        // The fixed set must keep exercising every kind of fault.
        for kind in ["worker-crash", "partition", "pause", "pause-past-lease", "leave", "join", "clock-forward", "clock-back",
                     "coordinator-crash-before-commit", "coordinator-crash-after-0-sends"] where count >= 1000 {
            XCTAssertGreaterThan(summary.faultKinds[kind] ?? 0, 10, "fault kind \(kind)")
        }
        print(summary.line)
    }
}

import Journal
import Scheduling

/// The SQLite journal keeps exactly what the in-memory model keeps: the batches a simulated
/// sweep committed (crashes, retries, uploads and all), applied to a real journal, load back to
/// the same rows, leases, pins, blobs and records.
final class JournalEquivalenceTests: XCTestCase {
    func testSQLiteJournalEqualsTheModelOnSimulatedSweeps() throws {
        for seed: UInt64 in [3, 17, 29, 41, 77] {
            let world = SimulationWorld(seed: seed)
            XCTAssertEqual(world.run(), [], "seed \(seed)")
            let path = NSTemporaryDirectory() + "apsweep-equivalence-\(getpid())-\(seed).db"
            defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
            let sqlite = try SweepJournal.openForWriting(path)
            defer { sqlite.close() }
            let initial = world.initialState
            try sqlite.storePlan(initial.tasks, pins: initial.pins, sweepText: "", sweepID: initial.sweepID)
            for batch in world.journal.committed { try sqlite.apply(batch) }
            let a = try sqlite.load(), b = try world.journal.load()
            XCTAssertEqual(a.rows, b.rows, "seed \(seed): rows")
            let order = { (x: LeaseRow, y: LeaseRow) in (x.task, x.attempt) < (y.task, y.attempt) }
            XCTAssertEqual(a.leases.sorted(by: order), b.leases.sorted(by: order), "seed \(seed): leases")
            XCTAssertEqual(a.pins, b.pins, "seed \(seed): pins")
            XCTAssertEqual(a.blobs, b.blobs, "seed \(seed): blobs")
            for i in a.tasks.indices {
                let (records, damaged) = try sqlite.records(ofTask: i)
                XCTAssertEqual(damaged, [])
                XCTAssertEqual(records, world.journal.records(of: i), "seed \(seed): records of \(a.tasks[i].id)")
            }
            XCTAssertEqual(try sqlite.events().count, world.journal.events.count + 1, "seed \(seed): events (+ the plan's)")
        }
    }
}
