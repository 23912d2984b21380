import Analysis
import Foundation
import Journal
import Messages

/// The AP–PD correlations `apsweep status` shows, computed on a thread of their own from a
/// read-only connection to the journal, never on the coordinator's loop. They are recomputed
/// when the journal changed (SQLite's data_version) and at most every `everyMs`.
public final class CorrelationService: @unchecked Sendable {
    let path: String
    let everyMs: Int64
    let resamples: Int
    private let lock = NSLock()
    private var values: [CorrelationInfo]?
    private var atMs: Int64 = 0
    private var thread: Thread?
    private var stopping = false

    public init(journalPath: String, everyMs: Int64 = 10_000, resamples: Int = 200) {
        path = journalPath
        self.everyMs = everyMs
        self.resamples = resamples
    }

    /// The latest correlations and when they were computed (nil before the first).
    public func latest() -> ([CorrelationInfo], Int64)? {
        lock.lock(); defer { lock.unlock() }
        return values.map { ($0, atMs) }
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
        var next = Int64(0)
        while !isStopping {
            if nowMs() >= next {
                next = nowMs() + everyMs
                if journal == nil { journal = try? SweepJournal.openForReading(path) }
                if let j = journal, let version = try? j.dataVersion(), version != lastVersion, let computed = try? Self.compute(j, resamples: resamples) {
                    lastVersion = version
                    lock.lock(); values = computed; atMs = nowMs(); lock.unlock()
                }
            }
            usleep(100_000)
        }
        journal?.close()
    }

    /// AP2 and the main AP3 against PD_test (pooled and across configurations at the final epoch).
    public static func compute(_ journal: SweepJournal, resamples: Int) throws -> [CorrelationInfo] {
        try Aggregation(journal: journal, resamples: resamples).headline().map { r in
            var c = CorrelationInfo()
            c.metric = r.metric; c.target = r.target; c.method = r.method.rawValue; c.scope = r.scope
            c.value = r.value; c.ciLow = r.low; c.ciHigh = r.high; c.points = UInt32(clamping: r.points)
            return c
        }
    }
}
