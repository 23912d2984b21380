import Foundation
import Messages
import Wire

/// The coordinator's ROUTER socket on a thread of its own (ZeroMQ sockets belong to one thread).
/// It reads and decodes every frame as it arrives — so decoding runs next to the scheduler, on the
/// other core — and sends what the loop queued. Status requests skip the queue: the loop sees
/// them before any result that arrived earlier, so `apsweep status` is answered within one
/// message's handling however many results are waiting (ZeroMQ's fair queueing would otherwise
/// put it behind one message from every busy peer).
///
/// What waits is bounded: decoded messages by `maxDecodedBytes` of their frames (a decoded result
/// takes several times its frame's size), frames not yet decoded by `maxQueued` and
/// `maxQueuedBytes`; past those the thread stops decoding, then reading, and ZeroMQ's high-water
/// marks push back on the peers.
final class RouterThread: @unchecked Sendable {
    /// What the loop gets from the socket.
    enum Item {
        case incoming(Incoming)
        /// A queued send that did not leave (the peer is gone or not reading).
        case sendFailed(peer: [UInt8], message: Message, unreachable: Bool)
        /// A line for the coordinator's log (the loop owns the log).
        case log(String)
    }

    let endpoint: String
    let maxQueued: Int
    let maxQueuedBytes: Int
    let maxDecodedBytes: Int
    private let router: RouterEndpoint
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var urgent: [Item] = []
    /// Items with the bytes of their frames.
    private var inbox: [(item: Item, bytes: Int)] = []
    private var inboxHead = 0
    private var inboxBytes = 0
    private var outbox: [(peer: [UInt8], message: Message)] = []
    private var running = true
    private var sending = false
    // The wake-up pipe: written when the outbox gets work, polled next to the socket.
    private var wake: [Int32] = [-1, -1]
    private var thread: Thread?

    init(router: RouterEndpoint, maxQueued: Int = 20_000, maxQueuedBytes: Int = 256 << 20, maxDecodedBytes: Int = 16 << 20) throws {
        self.router = router
        self.maxQueued = maxQueued
        self.maxQueuedBytes = maxQueuedBytes
        self.maxDecodedBytes = maxDecodedBytes
        endpoint = router.endpoint
        guard pipe(&wake) == 0 else { throw WireError.encodingFailed("cannot create the socket thread's wake-up pipe") }
        _ = fcntl(wake[0], F_SETFL, O_NONBLOCK)
        _ = fcntl(wake[1], F_SETFL, O_NONBLOCK)
    }

    func start() {
        let t = Thread { [self] in self.serve() }
        t.name = "apsweep-router"
        thread = t
        t.start()
    }

    /// Sends what is queued (waiting at most `flushMs`), stops the thread and closes the socket.
    /// Called once, from the loop's thread.
    func stop(flushMs: Int64 = 1000) {
        guard wake[0] >= 0 else { return }
        let deadline = Date().addingTimeInterval(Double(flushMs) / 1000)
        condition.lock()
        while (!outbox.isEmpty || sending) && thread != nil && Date() < deadline { _ = condition.wait(until: min(deadline, Date().addingTimeInterval(0.01))) }
        running = false
        condition.unlock()
        poke()
        while let t = thread, !t.isFinished { usleep(1000) }
        thread = nil
        router.socket.close()
        close(wake[0]); close(wake[1])
        wake = [-1, -1]
    }

    // MARK: the loop's side

    /// The next item, status requests first; waits up to `timeoutMs` (0: none) when nothing is queued.
    func next(timeoutMs: Int) -> Item? {
        condition.lock()
        defer { condition.unlock() }
        if timeoutMs > 0 && urgent.isEmpty && inboxHead >= inbox.count {
            _ = condition.wait(until: Date().addingTimeInterval(Double(timeoutMs) / 1000))
        }
        if !urgent.isEmpty { return urgent.removeFirst() }
        guard inboxHead < inbox.count else { return nil }
        let (item, bytes) = inbox[inboxHead]
        inboxHead += 1
        inboxBytes -= bytes
        if inboxHead == inbox.count {
            inbox.removeAll(keepingCapacity: true)
            inboxHead = 0
        } else if inboxHead > 4096 && inboxHead * 2 > inbox.count {
            inbox.removeFirst(inboxHead)
            inboxHead = 0
        }
        return item
    }

    /// Queues `message` for `peer`; the socket thread sends it. A send that fails comes back as
    /// `.sendFailed`.
    func send(_ message: Message, to peer: [UInt8]) {
        condition.lock()
        let wasEmpty = outbox.isEmpty
        outbox.append((peer, message))
        condition.unlock()
        if wasEmpty { poke() }
    }

    /// Messages waiting for the loop (status requests included).
    var queued: Int {
        condition.lock(); defer { condition.unlock() }
        return urgent.count + inbox.count - inboxHead
    }

    private func poke() {
        var byte: UInt8 = 1
        _ = write(wake[1], &byte, 1)
    }

    // MARK: the socket's thread

    // Frames read but not decoded yet (the socket thread's alone): reading is cheap, so the
    // thread reads everything queued at once — a status request among them is found by its
    // first bytes and goes ahead — and decodes the rest in slices of ~2 ms between sends.
    private var raw: [[[UInt8]]] = []
    private var rawHead = 0
    private var rawBytes = 0

    private func serve() {
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            condition.lock()
            let live = running
            let room = raw.count - rawHead < maxQueued && rawBytes < maxQueuedBytes
            let decodable = inboxBytes < maxDecodedBytes
            condition.unlock()
            guard live else { return }
            let pending = rawHead < raw.count && decodable
            let readable: Bool
            do {
                let r = try ZMQSocket.poll(room ? [router.socket] : [], fds: [wake[0]], timeoutMs: pending ? 0 : room && decodable ? 50 : 2)
                readable = r.sockets.first ?? false
            } catch {
                // EINTR (a signal) and the like: try again.
                continue
            }
            while read(wake[0], &buffer, buffer.count) > 0 {}
            sendQueued()
            if readable { readQueued() }
            if decodable { decodeSome(forMs: 2) }
        }
    }

    private func sendQueued() {
        condition.lock()
        let work = outbox
        outbox.removeAll(keepingCapacity: true)
        sending = !work.isEmpty
        condition.unlock()
        guard !work.isEmpty else { return }
        var back: [Item] = []
        for (peer, message) in work {
            do {
                let outcome = try router.send(message, to: peer)
                if outcome != .sent { back.append(.sendFailed(peer: peer, message: message, unreachable: outcome == .unreachable)) }
            } catch {
                back.append(.log("cannot encode \(message.name): \(error)"))
            }
        }
        condition.lock()
        sending = false
        inbox += back.map { ($0, 0) }
        condition.broadcast()
        condition.unlock()
    }

    /// Reads every queued frame (as far as the bounds allow); status requests are decoded and
    /// handed over at once.
    private func readQueued() {
        var status: [Item] = []
        while raw.count - rawHead < maxQueued && rawBytes < maxQueuedBytes {
            let frames: [[UInt8]]?
            do { frames = try router.receiveFrames() } catch {
                status.append(.log("receive: \(error)"))
                break
            }
            guard let frames else { break }
            if frames.count == 2 && Codec.isStatusRequest(frames[1]) {
                status.append(.incoming(router.interpret(frames)))
                continue
            }
            raw.append(frames)
            rawBytes += frames.reduce(0) { $0 + $1.count }
        }
        guard !status.isEmpty else { return }
        condition.lock()
        urgent += status
        condition.broadcast()
        condition.unlock()
    }

    private var queuedDecodedBytes: Int { condition.lock(); defer { condition.unlock() }; return inboxBytes }

    /// Decodes read frames for about `ms`, handing each to the loop as it is done.
    private func decodeSome(forMs ms: Double) {
        let start = DispatchTime.now().uptimeNanoseconds
        while rawHead < raw.count && Double(DispatchTime.now().uptimeNanoseconds - start) < ms * 1e6 && queuedDecodedBytes < maxDecodedBytes {
            let frames = raw[rawHead]
            raw[rawHead] = []
            rawHead += 1
            let bytes = frames.reduce(0) { $0 + $1.count }
            rawBytes -= bytes
            let item = Item.incoming(router.interpret(frames))
            condition.lock()
            inbox.append((item, bytes))
            inboxBytes += bytes
            condition.broadcast()
            condition.unlock()
        }
        if rawHead == raw.count {
            raw.removeAll(keepingCapacity: true)
            rawHead = 0
        } else if rawHead > 4096 && rawHead * 2 > raw.count {
            raw.removeFirst(rawHead)
            rawHead = 0
        }
    }
}
