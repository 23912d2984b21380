/// A FIFO of items with lazy deletion: entries that are no longer valid are skipped (and dropped)
/// when they reach the front, so removing an item from the middle costs nothing.
struct LazyQueue<Element> {
    private var items: [Element] = []
    private var head = 0

    var isEmpty: Bool { head >= items.count }

    mutating func push(_ e: Element) { items.append(e) }

    /// Drops invalid entries at the front; returns the first valid one without removing it.
    mutating func front(_ valid: (Element) -> Bool) -> Element? {
        while head < items.count {
            if valid(items[head]) { return items[head] }
            head += 1
        }
        compact()
        return nil
    }

    /// The first valid entry that `accept` takes, looking at most `limit` valid entries deep;
    /// the accepted entry is removed, invalid ones met on the way are dropped.
    mutating func take(limit: Int = 32, valid: (Element) -> Bool, accept: (Element) -> Bool) -> Element? {
        var seen = 0, i = head
        while i < items.count && seen < limit {
            let e = items[i]
            if !valid(e) {
                if i == head { head += 1 }
                i += 1
                continue
            }
            seen += 1
            if accept(e) {
                if i == head { head += 1 } else { items.remove(at: i) }
                compact()
                return e
            }
            i += 1
        }
        compact()
        return nil
    }

    private mutating func compact() {
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
    }
}

/// The scheduler's matching of waiting tasks with free workers, indexed by the data a task
/// needs: a worker that can take no waiting task costs nothing per step, and a new task looks
/// only at the workers holding its data.
struct Dispatcher {
    /// Waiting tasks by the data they need (nil: no data), in the order they became waiting.
    private var ready: [DataKey?: LazyQueue<Int>] = [:]
    /// Free workers by the data they hold, with the generation their registration was made in.
    private var idle: [DataKey?: LazyQueue<(worker: String, generation: Int)>] = [:]
    private(set) var queued = Set<Int>()

    mutating func addTask(_ t: Int, key: DataKey?) {
        guard queued.insert(t).inserted else { return }
        ready[key, default: LazyQueue()].push(t)
    }

    /// The first waiting task for `key` that `valid` accepts, preferring one `avoid` does not
    /// reject within the first few; removed from the queue.
    mutating func takeTask(key: DataKey?, valid: (Int) -> Bool, prefer: (Int) -> Bool) -> Int? {
        // The queue is moved out while it is searched: a closure that captured a copy of
        // `queued` would make the removal below copy the whole set (O(tasks) per dispatch).
        guard var queue = ready.removeValue(forKey: key) else { return nil }
        var t = queue.take(valid: { queued.contains($0) && valid($0) }, accept: prefer)
        if t == nil { t = queue.take(limit: 1, valid: { queued.contains($0) && valid($0) }, accept: { _ in true }) }
        ready[key] = queue
        if let t { queued.remove(t) }
        return t
    }

    /// Forgets a task that stopped waiting (leased by another path, finished, failed).
    mutating func removeTask(_ t: Int) { queued.remove(t) }

    mutating func addIdle(_ worker: String, generation: Int, keys: [DataKey?]) {
        for k in keys { idle[k, default: LazyQueue()].push((worker, generation)) }
    }

    /// A free worker registered under `key` that `valid` accepts, preferring one `prefer` accepts.
    mutating func takeWorker(key: DataKey?, valid: (String, Int) -> Bool, prefer: (String) -> Bool) -> String? {
        guard idle[key] != nil else { return nil }
        let isValid: ((worker: String, generation: Int)) -> Bool = { valid($0.worker, $0.generation) }
        if let e = idle[key]!.take(valid: isValid, accept: { prefer($0.worker) }) { return e.worker }
        return idle[key]!.take(limit: 1, valid: isValid, accept: { _ in true })?.worker
    }

    /// Whether a valid free worker is registered under `key` besides the ones `exclude` names.
    mutating func hasWorker(key: DataKey?, valid: (String, Int) -> Bool, other: (String) -> Bool) -> Bool {
        guard idle[key] != nil else { return false }
        var found = false
        _ = idle[key]!.take(valid: { valid($0.worker, $0.generation) }, accept: { e in
            if other(e.worker) { found = true }
            return false
        })
        return found
    }
}
