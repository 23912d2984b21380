import Analysis
import Foundation
import Journal
import Messages

/// The AP–PD correlations `apsweep status` shows, computed on a thread of their own from a
/// read-only connection to the journal, never on the coordinator's loop. They are recomputed
/// when the journal changed (SQLite's data_version), at most every `everyMs` and never sooner
/// than five times the last pass took after it: on a big journal (a pass over 2 million records
/// takes tens of seconds) the service uses at most a sixth of a core, the loop keeps the rest.
public final class CorrelationService: @unchecked Sendable {
    let path: String
    let everyMs: Int64
    let resamples: Int
    private let lock = NSLock()
    private var values: [CorrelationInfo]?
    private var damaged = 0
    private var atMs: Int64 = 0
    private var thread: Thread?
    private var stopping = false

    /// Past this many records a pass reads every k-th prune task, so that its cost (time and
    /// memory) stays bounded however large the sweep; each correlation's scope says so.
    let maxRecords: Int

    public init(journalPath: String, everyMs: Int64 = 10_000, resamples: Int = 200, maxRecords: Int = 250_000) {
        path = journalPath
        self.everyMs = everyMs
        self.resamples = resamples
        self.maxRecords = maxRecords
    }

    /// The latest correlations, how many stored records were damaged then, and when they were
    /// computed (nil before the first).
    public func latest() -> (correlations: [CorrelationInfo], damagedRecords: Int, atMs: Int64)? {
        lock.lock(); defer { lock.unlock() }
        return values.map { ($0, damaged, atMs) }
    }

    public func start() {
        let t = Thread { [self] in self.serve() }
        t.name = "apsweep-correlations"
        thread = t
        t.start()
    }

    public func stop() {
        lock.lock(); stopping = true; lock.unlock()
        while let t = thread, !t.isFinished { usleep(5000) }
    }

    var isStopping: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    private func serve() {
        var lastVersion: String?
        var journal: SweepJournal?
        // The first pass waits for the coordinator's own start (plan, journal, first leases).
        var next = nowMs() + 3000
        while !isStopping {
            if nowMs() >= next {
                let started = nowMs()
                next = started + everyMs
                defer { next = max(next, nowMs() + 5 * (nowMs() - started)) }
                if journal == nil { journal = try? SweepJournal.openForReading(path) }
                if let j = journal, let version = try? j.dataVersion(), version != lastVersion, let expected = try? j.expectedRecordCount(), expected > 0,
                   let computed = try? Self.compute(j, resamples: resamples, shouldStop: { [self] in self.isStopping },
                                                    sampleEvery: (expected + maxRecords - 1) / maxRecords) {
                    lastVersion = version
                    lock.lock(); values = computed.correlations; damaged = computed.damagedRecords; atMs = nowMs(); lock.unlock()
                }
            }
            usleep(100_000)
        }
        journal?.close()
    }

    /// AP2 and the main AP3 against PD_test (pooled and across configurations at the final epoch).
    public static func compute(_ journal: SweepJournal, resamples: Int, shouldStop: (() -> Bool)? = nil,
                               sampleEvery: Int = 1) throws -> (correlations: [CorrelationInfo], damagedRecords: Int) {
        let aggregation = try Aggregation(journal: journal, resamples: resamples, shouldStop: shouldStop, sampleEvery: sampleEvery)
        let correlations = aggregation.headline().map { r in
            var c = CorrelationInfo()
            c.metric = r.metric; c.target = r.target; c.method = r.method.rawValue
            c.scope = sampleEvery > 1 ? "\(r.scope), 1 prune task in \(sampleEvery)" : r.scope
            c.value = r.value; c.ciLow = r.low; c.ciHigh = r.high; c.points = UInt32(clamping: r.points)
            return c
        }
        return (correlations, aggregation.damaged.count)
    }
}
