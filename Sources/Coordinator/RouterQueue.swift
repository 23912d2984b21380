import Foundation
import Messages
import Wire

/// The coordinator's ROUTER socket with a queue in front of it. Whenever the loop asks for the
/// next message, every frame ZeroMQ holds is moved into the queue first — reading a frame is
/// cheap, decoding it is not — and status requests among them, found by their first bytes, are
/// handed out before anything queued. So `apsweep status` is answered within one message's
/// handling however many results wait (ZeroMQ's fair queueing alone would put it behind one
/// message from every busy peer). Every other frame is decoded and handled in arrival order; a
/// peer's messages are never reordered.
///
/// What waits is bounded (`maxQueued` frames, `maxQueuedBytes`): past that the queue stops
/// reading and ZeroMQ's high-water marks push back on the peers.
final class RouterQueue {
    let router: RouterEndpoint
    let maxQueued: Int
    let maxQueuedBytes: Int
    private var urgent: [Incoming] = []
    private var queue: [[[UInt8]]] = []
    private var head = 0
    private var queuedBytes = 0
    /// Lines for the coordinator's log (receive errors).
    private(set) var problems: [String] = []

    init(router: RouterEndpoint, maxQueued: Int = 20_000, maxQueuedBytes: Int = 256 << 20) {
        self.router = router
        self.maxQueued = maxQueued
        self.maxQueuedBytes = maxQueuedBytes
    }

    var endpoint: String { router.endpoint }

    /// Frames read but not handled yet (status requests included).
    var queued: Int { urgent.count + queue.count - head }

    /// The next message, status requests first; waits up to `timeoutMs` (0: not at all) when
    /// nothing is queued or waiting in the socket. Interrupted waits (a signal) return nil.
    func next(timeoutMs: Int) -> Incoming? {
        fill()
        if urgent.isEmpty && head >= queue.count && timeoutMs > 0 {
            guard (try? router.socket.poll(timeoutMs: timeoutMs)) == true else { return nil }
            fill()
        }
        if !urgent.isEmpty { return urgent.removeFirst() }
        guard head < queue.count else { return nil }
        let frames = queue[head]
        queue[head] = []
        head += 1
        queuedBytes -= frames.reduce(0) { $0 + $1.count }
        if head == queue.count {
            queue.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 4096 && head * 2 > queue.count {
            queue.removeFirst(head)
            head = 0
        }
        return router.interpret(frames)
    }

    /// Lines to log since the last call.
    func takeProblems() -> [String] {
        defer { problems.removeAll() }
        return problems
    }

    /// Sends without blocking (see `RouterEndpoint.send`).
    func send(_ message: Message, to peer: [UInt8]) throws -> SendOutcome { try router.send(message, to: peer) }

    /// Moves every frame the socket holds into the queue, as far as the bounds allow.
    private func fill() {
        while queue.count - head < maxQueued && queuedBytes < maxQueuedBytes {
            let frames: [[UInt8]]?
            do { frames = try router.receiveFrames() } catch {
                problems.append("receive: \(error)")
                return
            }
            guard let frames else { return }
            if frames.count == 2 && Codec.isStatusRequest(frames[1]) {
                urgent.append(router.interpret(frames))
                continue
            }
            queue.append(frames)
            queuedBytes += frames.reduce(0) { $0 + $1.count }
        }
    }

    func close() { router.socket.close() }
}
