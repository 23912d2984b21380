import CZeroMQ
import Foundation

/// What a ROUTER endpoint received.
public enum Incoming: Sendable {
    /// A decoded envelope of our protocol version from the peer with this routing identity.
    case message(peer: [UInt8], Envelope)
    /// A frame that was refused (undecodable, wrong version, wrong framing); the peer was sent a
    /// Reject when it could be addressed. `reason` is for the log.
    case refused(peer: [UInt8], reason: String)
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

    /// Waits up to `timeoutMs` for one message; nil on timeout.
    public func receive(timeoutMs: Int) throws -> Incoming? {
        guard try socket.poll(timeoutMs: timeoutMs), let frames = try socket.receive(dontWait: true) else { return nil }
        guard frames.count == 2 else {
            refusedFrames += 1
            let peer = frames.first ?? []
            if !peer.isEmpty { try? reject(peer, "expected one envelope frame, got \(frames.count - 1)") }
            return .refused(peer: peer, reason: "expected one envelope frame, got \(frames.count - 1)")
        }
        let peer = frames[0]
        do {
            let envelope = try Codec.decode(frames[1], maxFrameBytes: maxFrameBytes)
            guard envelope.version == protocolVersion else {
                refusedFrames += 1
                let why = "protocol version \(envelope.version) is not supported (this coordinator speaks \(protocolVersion))"
                try? reject(peer, why)
                return .refused(peer: peer, reason: why)
            }
            return .message(peer: peer, envelope)
        } catch {
            refusedFrames += 1
            try? reject(peer, "\(error)")
            return .refused(peer: peer, reason: "\(error)")
        }
    }

    /// Sends `message` to `peer`. Throws when the peer is gone (EHOSTUNREACH) or its queue is full.
    public func send(_ message: Message, to peer: [UInt8]) throws {
        sequence += 1
        try socket.send([peer, try Codec.encode(Envelope(message, sequence: sequence))], dontWait: true)
    }

    private func reject(_ peer: [UInt8], _ reason: String) throws {
        try send(.reject(Reject(reason: reason, supportedVersion: protocolVersion)), to: peer)
    }
}

/// A worker's or status client's side: a DEALER socket speaking envelopes, reconnecting by itself.
public final class DealerEndpoint {
    public let socket: ZMQSocket
    public let maxFrameBytes: Int
    private var sequence: UInt64 = 0

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

    public func send(_ message: Message, version: UInt32 = protocolVersion) throws {
        sequence += 1
        try socket.send([try Codec.encode(Envelope(message, sequence: sequence, version: version))], dontWait: true)
    }

    /// Sends raw frames (tests of hostile input).
    public func sendRaw(_ frames: [[UInt8]]) throws { try socket.send(frames, dontWait: true) }

    /// Waits up to `timeoutMs` for an envelope, or until `wake` (a pipe's read end) is readable;
    /// nil when nothing arrived. Undecodable frames throw.
    public func receive(timeoutMs: Int, wake: Int32? = nil) throws -> Envelope? {
        if let wake {
            let (sockets, _) = try ZMQSocket.poll([socket], fds: [wake], timeoutMs: timeoutMs)
            guard sockets[0] else { return nil }
        } else {
            guard try socket.poll(timeoutMs: timeoutMs) else { return nil }
        }
        guard let frames = try socket.receive(dontWait: true) else { return nil }
        guard frames.count == 1 else { throw WireError.undecodable("expected one frame, got \(frames.count)") }
        return try Codec.decode(frames[0], maxFrameBytes: maxFrameBytes)
    }
}
