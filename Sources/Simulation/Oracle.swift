import Messages
import Scheduling

/// Checks every committed journal batch against the sweep's invariants, from its own fold of the
/// operations (not from the scheduler's memory):
/// - a finished task is never leased again, and a task never has two live leases;
/// - a result is stored only for an open task, and a task becomes DONE at most once;
/// - a lease that ends counted against the task ends only when its worker really failed (crashed,
///   cut off or paused during the lease) or the task raised — so a coordinator restart, a
///   hand-back or a lost message never costs an attempt;
/// - after a crash the restored state is exactly the committed one.
struct Oracle {
    var states: [TaskState] = []
    var rows: [TaskRow] = []
    /// Live leases: task → (attempt, worker, started at).
    var open: [Int: (attempt: Int, worker: String, at: Int64)] = [:]
    var doneOnce = Set<Int>()
    var tasks: [PlannedTask] = []

    mutating func start(tasks: [PlannedTask], rows: [TaskRow]) {
        self.tasks = tasks
        self.rows = rows
        states = rows.map(\.state)
    }

    mutating func check(_ ops: [JournalOp], world: SimulationWorld) {
        func fail(_ why: String) { world.violations.append("seed \(world.seed) at \(world.now) ms: \(why)") }
        for op in ops {
            switch op {
            case let .lease(l):
                if states[l.task].isFinished { fail("\(tasks[l.task].id) is \(states[l.task].rawValue) and was leased again (attempt \(l.attempt) to \(l.worker))") }
                if let o = open[l.task] { fail("\(tasks[l.task].id) leased to \(l.worker) while \(o.worker)'s lease (attempt \(o.attempt)) is live") }
                open[l.task] = (l.attempt, l.worker, world.now)
            case let .endLease(task, attempt, outcome):
                guard let o = open[task], o.attempt == attempt else {
                    if outcome != .done { fail("\(tasks[task].id): ended lease attempt \(attempt) that is not live") }
                    continue
                }
                open[task] = nil
                if outcome.countsAgainstTask {
                    let raised = world.raised.contains("\(tasks[task].id)#\(attempt)")
                    let faulty = world.hadFault(o.worker, from: o.at - 1, to: world.now)
                    if !raised && !faulty {
                        fail("\(tasks[task].id) attempt \(attempt) on \(o.worker) ended '\(outcome.rawValue)' and was counted, but the worker had no fault and the task did not raise")
                    }
                }
            case let .records(task, _, replace):
                if replace && states[task].isFinished { fail("a result was stored for \(tasks[task].id), which is already \(states[task].rawValue)") }
            case let .task(index, row):
                if row.state == .done {
                    if !doneOnce.insert(index).inserted { fail("\(tasks[index].id) became DONE twice") }
                }
                if row.state == .leased && open[index] == nil { fail("\(tasks[index].id) is LEASED without a live lease") }
                if row.state != .leased, let o = open[index] { fail("\(tasks[index].id) is \(row.state.rawValue) while \(o.worker)'s lease is live") }
                if row.state == .failed && row.failures < world.config.maxAttempts && row.handbacks <= world.config.maxHandbacks {
                    let dep = tasks[index].dependsOn.flatMap { d in tasks.firstIndex { $0.id == d } }
                    if dep.map({ states[$0] != .failed }) ?? true, row.lastError?.contains("baseline") != true {
                        fail("\(tasks[index].id) FAILED after \(row.failures) failure(s) of \(world.config.maxAttempts): \(row.lastError ?? "")")
                    }
                }
                states[index] = row.state
                rows[index] = row
            default:
                break
            }
        }
    }

    /// After a restart: the journal holds exactly what was committed.
    mutating func restored(_ state: JournalState, journal: MemoryJournal, now: Int64, world: SimulationWorld) {
        if state.rows != rows {
            let i = state.rows.indices.first { state.rows[$0] != rows[$0] } ?? 0
            world.violations.append("seed \(world.seed): the restored row of \(tasks[i].id) differs from the committed one")
        }
        // A restart forgets nothing: the leases live in the journal are the oracle's.
        let live = Set(state.leases.filter { $0.outcome == nil }.map { "\($0.task)#\($0.attempt)" })
        let mine = Set(open.map { "\($0.key)#\($0.value.attempt)" })
        if live != mine { world.violations.append("seed \(world.seed): live leases after the restart \(live.sorted()) are not the committed \(mine.sorted())") }
    }
}
