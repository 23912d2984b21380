import CZeroMQ
import Foundation
import Messages

/// What a ROUTER endpoint received.
public enum Incoming: Sendable {
    /// A decoded envelope of our protocol version from the peer with this routing identity.
    case message(peer: [UInt8], Envelope)
    /// A frame that was refused (undecodable, wrong version, wrong framing, over a limit); the
    /// peer was sent a Reject with `code` when it could be addressed. `reason` is for the log.
    case refused(peer: [UInt8], code: RejectCode, reason: String)
}

/// What became of a send. Sends never block: a peer that is gone or whose queue is full (it does
/// not read) gets nothing, and the caller decides what that means.
public enum SendOutcome: Equatable, Sendable {
    case sent
    /// The peer's connection is gone (ROUTER_MANDATORY: EHOSTUNREACH).
    case unreachable
    /// The peer's queue is at its high-water mark (EAGAIN): it is not reading.
    case queueFull
}

/// The coordinator's side: a ROUTER socket speaking envelopes. Frames are
/// [peer identity, envelope]; DEALER peers send just [envelope] and ROUTER adds the identity.
public final class RouterEndpoint {
    public let socket: ZMQSocket
    public let maxFrameBytes: Int
    private var sequence: UInt64 = 0
    /// Frames refused so far.
    public private(set) var refusedFrames = 0

    public init(context: ZMQContext, bind endpoint: String, curve: CurveKeyPair? = nil, maxFrameBytes: Int = Codec.defaultMaxFrameBytes) throws {
        socket = try ZMQSocket(context, .router)
        self.maxFrameBytes = maxFrameBytes
        try socket.set(ZMQ_ROUTER_MANDATORY, Int32(1))   // sending to a gone peer fails instead of vanishing
        try socket.setHighWaterMarks(send: 10_000, receive: 10_000)
        try socket.setMaxMessageSize(Int64(maxFrameBytes) + 1024)
        if let curve { try socket.makeCurveServer(curve) }
        try socket.bind(endpoint)
    }

    /// The bound endpoint (with the port chosen for "tcp://…:*").
    public var endpoint: String { socket.lastEndpoint }

    /// Waits up to `timeoutMs` for one message; nil on timeout. Interrupted waits (a signal) return nil.
    public func receive(timeoutMs: Int, limits: DecodeLimits = DecodeLimits()) throws -> Incoming? {
        do {
            guard try socket.poll(timeoutMs: timeoutMs) else { return nil }
        } catch let e as ZMQError where e.interrupted {
            return nil
        }
        return try receiveNow(limits: limits)
    }

    /// The next queued message without waiting; nil when none is queued.
    public func receiveNow(limits: DecodeLimits = DecodeLimits()) throws -> Incoming? {
        guard let frames = try receiveFrames() else { return nil }
        return interpret(frames, limits: limits)
    }

    /// The next queued multipart message as raw frames, without waiting or decoding; nil when
    /// none is queued. `interpret` turns it into an `Incoming`.
    public func receiveFrames() throws -> [[UInt8]]? {
        do {
            return try socket.receive(dontWait: true)
        } catch let e as ZMQError where e.interrupted {
            return nil
        }
    }

    /// Decodes frames read by `receiveFrames`, answering what it refuses with a Reject.
    public func interpret(_ frames: [[UInt8]], limits: DecodeLimits = DecodeLimits()) -> Incoming {
        guard frames.count == 2 else {
            refusedFrames += 1
            let peer = frames.first ?? []
            let why = "expected one envelope frame, got \(frames.count - 1)"
            if !peer.isEmpty { _ = try? send(.reject(Reject(.malformed, why)), to: peer) }
            return .refused(peer: peer, code: .malformed, reason: why)
        }
        let peer = frames[0]
        do {
            let envelope = try Codec.decode(frames[1], maxFrameBytes: maxFrameBytes, limits: limits)
            guard envelope.version == protocolVersion else {
                refusedFrames += 1
                let why = "protocol version \(envelope.version) is not supported (this coordinator speaks \(protocolVersion))"
                _ = try? send(.reject(Reject(.versionUnsupported, why)), to: peer)
                return .refused(peer: peer, code: .versionUnsupported, reason: why)
            }
            return .message(peer: peer, envelope)
        } catch {
            refusedFrames += 1
            let code = (error as? WireError)?.rejectCode ?? .malformed
            _ = try? send(.reject(Reject(code, "\(error)")), to: peer)
            return .refused(peer: peer, code: code, reason: "\(error)")
        }
    }

    /// Sends `message` to `peer` without blocking. Throws only when the message cannot be encoded.
    @discardableResult
    public func send(_ message: Message, to peer: [UInt8]) throws -> SendOutcome {
        sequence += 1
        let frame = try Codec.encode(Envelope(message, sequence: sequence))
        do {
            try socket.send([peer, frame], dontWait: true)
            return .sent
        } catch let e as ZMQError {
            if e.wouldBlock { return .queueFull }
            if e.code == EHOSTUNREACH { return .unreachable }
            if e.interrupted {
                // A signal arrived mid-send: try once more.
                do { try socket.send([peer, frame], dontWait: true); return .sent } catch { return .unreachable }
            }
            return .unreachable
        }
    }
}

/// A worker's or status client's side: a DEALER socket speaking envelopes, reconnecting by itself.
public final class DealerEndpoint {
    public let socket: ZMQSocket
    public let maxFrameBytes: Int
    private var sequence: UInt64 = 0
    /// Put into every envelope sent (a worker's process incarnation).
    public var incarnation: UInt64 = 0

    public init(context: ZMQContext, connect endpoint: String, identity: String? = nil, curve: (keys: CurveKeyPair, serverKey: String)? = nil,
                maxFrameBytes: Int = Codec.defaultMaxFrameBytes, reconnectMs: (Int32, Int32) = (100, 5000)) throws {
        socket = try ZMQSocket(context, .dealer)
        self.maxFrameBytes = maxFrameBytes
        if let identity { try socket.setRoutingID(identity) }
        try socket.setHighWaterMarks(send: 10_000, receive: 10_000)
        try socket.setMaxMessageSize(Int64(maxFrameBytes) + 1024)
        try socket.setReconnect(initialMs: reconnectMs.0, maxMs: reconnectMs.1)
        // Messages sent before the connection is up (or while it is re-established) wait in the
        // socket's queue, bounded by the high-water mark.
        if let curve { try socket.makeCurveClient(curve.keys, serverKey: curve.serverKey) }
        try socket.connect(endpoint)
    }

    /// Sends without blocking; false when the queue to the coordinator is full (nothing was sent).
    @discardableResult
    public func send(_ message: Message, version: UInt32 = protocolVersion) throws -> Bool {
        sequence += 1
        do {
            try socket.send([try Codec.encode(Envelope(message, sequence: sequence, version: version, incarnation: incarnation))], dontWait: true)
            return true
        } catch let e as ZMQError where e.wouldBlock || e.interrupted {
            return false
        }
    }

    /// Sends raw frames (tests of hostile input).
    public func sendRaw(_ frames: [[UInt8]]) throws { try socket.send(frames, dontWait: true) }

    /// Waits up to `timeoutMs` for an envelope, or until `wake` (a pipe's read end) is readable;
    /// nil when nothing arrived. Undecodable frames throw.
    public func receive(timeoutMs: Int, wake: Int32? = nil) throws -> Envelope? {
        do {
            if let wake {
                let (sockets, _) = try ZMQSocket.poll([socket], fds: [wake], timeoutMs: timeoutMs)
                guard sockets[0] else { return nil }
            } else {
                guard try socket.poll(timeoutMs: timeoutMs) else { return nil }
            }
        } catch let e as ZMQError where e.interrupted {
            return nil
        }
        let received: [[UInt8]]?
        do { received = try socket.receive(dontWait: true) } catch let e as ZMQError where e.interrupted { return nil }
        guard let frames = received else { return nil }
        guard frames.count == 1 else { throw WireError.undecodable("expected one frame, got \(frames.count)") }
        return try Codec.decode(frames[0], maxFrameBytes: maxFrameBytes)
    }
}
