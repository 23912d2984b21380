import ArgumentParser
import Foundation
import Messages
import Wire

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status",
        abstract: "Show a running sweep: task counts with progress and ETA, workers, recent failures.")
    @Option(help: "The coordinator's endpoint.") var connect: String
    @Flag(help: "Redraw every second (in place on a terminal, plain lines otherwise).") var watch = false
    @Flag(help: "Print the status as JSON (one object per poll).") var json = false
    @Option(help: "Seconds to wait for an answer.") var timeout = 3.0
    @OptionGroup var security: SecurityOptions

    func validate() throws {
        try security.validate(coordinator: false)
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        installStopHandlers()
        let context = try ZMQContext()
        defer { context.close() }
        var curve: (keys: CurveKeyPair, serverKey: String)?
        if let key = security.key, let peer = security.peerKeys { curve = (try CurveKeyPair.read(keyFile: key), try CurveKeyPair.readPublicKey(peer)) }
        let dealer = try DealerEndpoint(context: context, connect: connect, curve: curve)
        defer { dealer.socket.close() }
        var first = true
        repeat {
            try dealer.send(.statusRequest(StatusRequest(includeCorrelations: true, maxFailures: 5)))
            let deadline = Date().addingTimeInterval(timeout)
            var reply: StatusReply?
            while reply == nil && Date() < deadline && stopSignal == 0 {
                if case let .statusReply(r)? = try dealer.receive(timeoutMs: 100)?.message { reply = r }
            }
            guard let reply else {
                if stopSignal != 0 { return }
                throw CLIError("no answer from \(connect) within \(String(format: "%.0f", timeout)) s: is a coordinator running there? (check --connect, the firewall, and CURVE keys)")
            }
            if json {
                print(String(decoding: try JSONSerialization.data(withJSONObject: StatusCommand.jsonObject(reply), options: [.sortedKeys]), as: UTF8.self))
            } else {
                let text = StatusCommand.render(reply)
                if watch && stdoutIsTerminal {
                    print("\u{1B}[H\u{1B}[2J" + text, terminator: "")
                } else {
                    if !first { print("") }
                    print(text, terminator: "")
                }
            }
            first = false
            if watch {
                let until = Date().addingTimeInterval(1)
                while Date() < until && stopSignal == 0 { usleep(50_000) }
            }
        } while watch && stopSignal == 0
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "–" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m" : (s >= 60 ? "\(s / 60)m\(String(format: "%02d", s % 60))s" : "\(s)s")
    }

    static func render(_ r: StatusReply) -> String {
        let c = r.counts ?? TaskCounts()
        let finished = Double(c.done + c.failed), total = Double(max(1, c.total))
        let width = 30, filled = Int(Double(width) * finished / total)
        var out = "sweep \(r.sweepID)  up \(duration(Double(r.uptimeMs) / 1000))\n"
        out += "[\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(Int(100 * finished / total))%  "
        out += "\(c.done)/\(c.total) done  \(c.running) running  \(c.queued) queued  \(c.stale) stale  \(c.failed) failed  \(c.blocked) blocked  ETA \(r.etaSeconds < 0 ? "–" : duration(r.etaSeconds))\n"
        out += "workers (\(r.workers.count)):\n"
        out += "  " + ["id", "host", "cores", "state", "task", "epoch", "heartbeat", "done"].map { $0.padding(toLength: 14, withPad: " ", startingAt: 0) }.joined() + "\n"
        for w in r.workers {
            let cells = [w.workerID, w.host, "\(w.cores)", w.state, String(w.currentTask.prefix(12)), w.currentTask.isEmpty ? "" : "\(w.epoch)",
                         String(format: "%.1fs ago", Double(w.heartbeatAgeMs) / 1000), "\(w.tasksDone)"]
            out += "  " + cells.map { String($0.prefix(13)).padding(toLength: 14, withPad: " ", startingAt: 0) }.joined() + "\n"
        }
        if !r.recentFailures.isEmpty {
            out += "recent failures (newest first):\n"
            for f in r.recentFailures { out += "  \(f.taskID.prefix(12)) attempt \(f.attempt) on \(f.workerID): \(f.reason)\n" }
        }
        for k in r.correlations {
            // Not defined yet (too few points, or constant values): said, not printed as nan.
            let value = k.value.isFinite ? String(format: "%.3f", k.value) : "–"
            let interval = k.ciLow.isFinite && k.ciHigh.isFinite ? String(format: " [%.3f, %.3f]", k.ciLow, k.ciHigh) : ""
            out += "  \(k.metric) ~ \(k.target) (\(k.method), \(k.scope)): \(value)\(interval) n=\(Int(k.points))\(k.value.isFinite ? "" : " (too few points)")\n"
        }
        if let p = r.pool {
            out += "pool (\(p.launcher)): wanted \(p.wanted), submitted \(p.submitted), pending \(p.pending)"
                + (p.pendingReasons.isEmpty ? "" : " (\(p.pendingReasons.joined(separator: ", ")))")
                + ", running \(p.running), draining \(p.draining)\n"
            if !p.lastDecision.isEmpty { out += "  last decision: \(p.lastDecision)\n" }
        }
        if r.lateResultsDropped > 0 { out += "late results dropped: \(r.lateResultsDropped)\n" }
        if r.damagedRecords > 0 {
            out += "WARNING: \(r.damagedRecords) stored record(s) failed their checksum and are left out of the correlations; `apsweep report \(r.journal.isEmpty ? "JOURNAL" : r.journal)` names them\n"
        }
        return out
    }

    static func jsonObject(_ r: StatusReply) -> [String: Any] {
        let c = r.counts ?? TaskCounts()
        return ["sweep_id": r.sweepID, "uptime_ms": r.uptimeMs, "eta_seconds": r.etaSeconds, "late_results_dropped": r.lateResultsDropped,
                "tasks": ["total": c.total, "done": c.done, "running": c.running, "queued": c.queued, "stale": c.stale, "failed": c.failed, "blocked": c.blocked],
                "workers": r.workers.map { ["id": $0.workerID, "host": $0.host, "cores": $0.cores, "state": $0.state, "task": $0.currentTask,
                                            "epoch": $0.epoch, "heartbeat_age_ms": $0.heartbeatAgeMs, "tasks_done": $0.tasksDone] },
                "recent_failures": r.recentFailures.map { ["task": $0.taskID, "worker": $0.workerID, "reason": $0.reason, "attempt": $0.attempt, "at_ms": $0.atUnixMs] },
                "pool": r.pool.map { p -> Any in ["launcher": p.launcher, "wanted": p.wanted, "submitted": p.submitted, "pending": p.pending, "running": p.running,
                                                  "draining": p.draining, "pending_reasons": p.pendingReasons, "last_decision": p.lastDecision] } ?? NSNull(),
                "workers_total": r.workersTotal, "journal": r.journal, "damaged_records": r.damagedRecords, "correlations_age_ms": r.correlationsAgeMs,
                "correlations": r.correlations.map { ["metric": $0.metric, "target": $0.target, "method": $0.method, "scope": $0.scope, "value": finite($0.value),
                                                      "ci_low": finite($0.ciLow), "ci_high": finite($0.ciHigh), "points": $0.points] }]
    }

    /// JSON has no NaN: an undefined correlation (too few points) is null.
    static func finite(_ x: Double) -> Any { x.isFinite ? x : NSNull() }
}
