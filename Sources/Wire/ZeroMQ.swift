import CZeroMQ
import Foundation

/// A ZeroMQ failure, with the operation and libzmq's own message.
public struct ZMQError: Error, CustomStringConvertible, Equatable {
    public let operation: String
    public let code: Int32
    public var description: String { "\(operation): \(String(cString: zmq_strerror(code))) (errno \(code))" }

    static func last(_ operation: String) -> ZMQError { ZMQError(operation: operation, code: zmq_errno()) }
    /// The call was interrupted by a signal (SIGINT/SIGTERM); callers check their stop flag.
    public var interrupted: Bool { code == EINTR }
    /// Non-blocking send/receive found nothing to do.
    public var wouldBlock: Bool { code == EAGAIN }
    /// The context is being terminated.
    public var terminated: Bool { code == ETERM }
}

/// A ZeroMQ context: one per process, owns the I/O threads. `close()` (or deinit) terminates it;
/// sockets must be closed first (their linger decides how long pending messages may delay that).
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    private var closed = false
    private let lock = NSLock()

    public init(ioThreads: Int32 = 1) throws {
        guard let h = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
        handle = h
        zmq_ctx_set(h, ZMQ_IO_THREADS, ioThreads)
    }

    public func close() {
        lock.lock(); defer { lock.unlock() }
        guard !closed else { return }
        closed = true
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    deinit { close() }

    /// Whether this libzmq has CURVE security built in.
    public static var hasCurve: Bool { zmq_has("curve") != 0 }
    /// libzmq's version as "4.3.4".
    public static var version: String {
        var a: Int32 = 0, b: Int32 = 0, c: Int32 = 0
        zmq_version(&a, &b, &c)
        return "\(a).\(b).\(c)"
    }
}

/// Socket types apsweep uses.
public enum ZMQSocketType: Sendable {
    case router, dealer, rep, req
    var raw: Int32 {
        switch self {
        case .router: return ZMQ_ROUTER
        case .dealer: return ZMQ_DEALER
        case .rep: return ZMQ_REP
        case .req: return ZMQ_REQ
        }
    }
}

/// A ZeroMQ socket. Not thread-safe (as libzmq's sockets): use each from one thread at a time.
public final class ZMQSocket: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    private var open = true

    public init(_ context: ZMQContext, _ type: ZMQSocketType) throws {
        guard let h = zmq_socket(context.handle, type.raw) else { throw ZMQError.last("zmq_socket") }
        handle = h
        try set(ZMQ_LINGER, Int32(0))   // never hang at exit on undeliverable messages
    }

    deinit { close() }

    public func close() {
        guard open else { return }
        open = false
        zmq_close(handle)
    }

    // MARK: options

    public func set(_ option: Int32, _ value: Int32) throws {
        var v = value
        if zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size) != 0 { throw ZMQError.last("zmq_setsockopt(\(option))") }
    }

    public func set(_ option: Int32, _ value: Int64) throws {
        var v = value
        if zmq_setsockopt(handle, option, &v, MemoryLayout<Int64>.size) != 0 { throw ZMQError.last("zmq_setsockopt(\(option))") }
    }

    public func set(_ option: Int32, bytes: [UInt8]) throws {
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        if rc != 0 { throw ZMQError.last("zmq_setsockopt(\(option))") }
    }

    public func set(_ option: Int32, string: String) throws { try set(option, bytes: Array(string.utf8)) }

    /// Send/receive high-water marks (messages queued per peer before sends block or drop).
    public func setHighWaterMarks(send: Int32, receive: Int32) throws {
        try set(ZMQ_SNDHWM, send)
        try set(ZMQ_RCVHWM, receive)
    }

    /// libzmq's own ZMTP heartbeats: ping every `interval` ms, drop the connection after `timeout`
    /// ms without traffic. They detect dead TCP peers; apsweep's protocol heartbeats detect stuck
    /// processes on top of that.
    public func setTransportHeartbeat(intervalMs: Int32, timeoutMs: Int32) throws {
        try set(ZMQ_HEARTBEAT_IVL, intervalMs)
        try set(ZMQ_HEARTBEAT_TIMEOUT, timeoutMs)
        try set(ZMQ_HEARTBEAT_TTL, timeoutMs)
    }

    /// Reconnect backoff: first retry after `initialMs`, doubling up to `maxMs`.
    public func setReconnect(initialMs: Int32, maxMs: Int32) throws {
        try set(ZMQ_RECONNECT_IVL, initialMs)
        try set(ZMQ_RECONNECT_IVL_MAX, maxMs)
    }

    /// The largest message libzmq accepts (larger ones drop the connection).
    public func setMaxMessageSize(_ bytes: Int64) throws { try set(ZMQ_MAXMSGSIZE, bytes) }

    public func setRoutingID(_ id: String) throws { try set(ZMQ_ROUTING_ID, string: id) }

    // MARK: CURVE

    /// Makes this socket a CURVE server with `keys`; clients must know its public key. With a ZAP
    /// handler running in the same context, only allow-listed client keys get in.
    public func makeCurveServer(_ keys: CurveKeyPair) throws {
        try set(ZMQ_CURVE_SERVER, Int32(1))
        try set(ZMQ_CURVE_SECRETKEY, string: keys.secretKey)
        try set(ZMQ_ZAP_DOMAIN, string: "apsweep")
    }

    /// Makes this socket a CURVE client of the server with public key `serverKey`.
    public func makeCurveClient(_ keys: CurveKeyPair, serverKey: String) throws {
        try set(ZMQ_CURVE_SERVERKEY, string: serverKey)
        try set(ZMQ_CURVE_PUBLICKEY, string: keys.publicKey)
        try set(ZMQ_CURVE_SECRETKEY, string: keys.secretKey)
    }

    // MARK: endpoints

    public func bind(_ endpoint: String) throws {
        if zmq_bind(handle, endpoint) != 0 { throw ZMQError.last("bind \(endpoint) (endpoints look like tcp://*:5555; is the port in use?)") }
    }

    /// The endpoint actually bound (resolves "tcp://127.0.0.1:*" to the chosen port).
    public var lastEndpoint: String {
        var buffer = [CChar](repeating: 0, count: 256)
        var size = buffer.count
        zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size)
        return String(cString: buffer)
    }

    public func connect(_ endpoint: String) throws {
        if zmq_connect(handle, endpoint) != 0 { throw ZMQError.last("connect \(endpoint) (endpoints look like tcp://host:5555)") }
    }

    public func disconnect(_ endpoint: String) { zmq_disconnect(handle, endpoint) }

    // MARK: messages

    /// Sends all frames as one multipart message. With `dontWait`, throws `wouldBlock` instead of
    /// blocking at the high-water mark.
    public func send(_ frames: [[UInt8]], dontWait: Bool = false) throws {
        for (i, frame) in frames.enumerated() {
            var flags: Int32 = i < frames.count - 1 ? ZMQ_SNDMORE : 0
            if dontWait { flags |= ZMQ_DONTWAIT }
            let rc = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
            if rc < 0 { throw ZMQError.last("send") }
        }
    }

    /// Receives one multipart message; nil when `dontWait` and nothing is waiting.
    public func receive(dontWait: Bool = false) throws -> [[UInt8]]? {
        var frames: [[UInt8]] = []
        while true {
            var msg = zmq_msg_t()
            zmq_msg_init(&msg)
            defer { zmq_msg_close(&msg) }
            if zmq_msg_recv(&msg, handle, dontWait && frames.isEmpty ? ZMQ_DONTWAIT : 0) < 0 {
                let error = ZMQError.last("receive")
                if error.wouldBlock && frames.isEmpty { return nil }
                throw error
            }
            let size = zmq_msg_size(&msg)
            let data = zmq_msg_data(&msg)!
            frames.append(Array(UnsafeRawBufferPointer(start: data, count: size)))
            if zmq_msg_more(&msg) == 0 { return frames }
        }
    }

    /// Waits up to `timeoutMs` (−1: forever) for a message; true when one can be received.
    public func poll(timeoutMs: Int) throws -> Bool {
        try ZMQSocket.poll([self], timeoutMs: timeoutMs).first ?? false
    }

    /// Polls sockets and plain file descriptors (pipes) for input; returns which are readable.
    public static func poll(_ sockets: [ZMQSocket], fds: [Int32], timeoutMs: Int) throws -> (sockets: [Bool], fds: [Bool]) {
        var items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
            + fds.map { zmq_pollitem_t(socket: nil, fd: $0, events: Int16(ZMQ_POLLIN), revents: 0) }
        let rc = zmq_poll(&items, Int32(items.count), timeoutMs)
        if rc < 0 { throw ZMQError.last("poll") }
        let ready = items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
        return (Array(ready[0..<sockets.count]), Array(ready[sockets.count...]))
    }

    /// Polls several sockets for input; returns which are readable.
    public static func poll(_ sockets: [ZMQSocket], timeoutMs: Int) throws -> [Bool] {
        var items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
        let rc = zmq_poll(&items, Int32(items.count), timeoutMs)
        if rc < 0 { throw ZMQError.last("poll") }
        return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
    }
}

/// A CURVE key pair in Z85 text (40 characters each).
public struct CurveKeyPair: Sendable, Equatable, Codable {
    public let publicKey: String
    public let secretKey: String

    public init(publicKey: String, secretKey: String) throws {
        guard publicKey.utf8.count == 40, secretKey.utf8.count == 40 else {
            throw CurveKeyError.malformed("CURVE keys are 40 Z85 characters each")
        }
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// A fresh key pair from libzmq (libsodium).
    public static func generate() throws -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        if zmq_curve_keypair(&pub, &sec) != 0 { throw ZMQError.last("zmq_curve_keypair (is libzmq built with CURVE?)") }
        return try CurveKeyPair(publicKey: String(cString: pub), secretKey: String(cString: sec))
    }

    /// Writes `NAME.key` (secret, mode 0600, both keys) and `NAME.pub` (public key only).
    public func write(to basePath: String) throws {
        let secret = "# apsweep CURVE key pair: keep secret\npublic-key = \(publicKey)\nsecret-key = \(secretKey)\n"
        FileManager.default.createFile(atPath: basePath + ".key", contents: Data(secret.utf8), attributes: [.posixPermissions: 0o600])
        try ("public-key = \(publicKey)\n").write(toFile: basePath + ".pub", atomically: true, encoding: .utf8)
    }

    /// Reads a `.key` file written by `write(to:)`.
    public static func read(keyFile path: String) throws -> CurveKeyPair {
        let fields = try CurveKeyPair.fields(path)
        guard let pub = fields["public-key"], let sec = fields["secret-key"] else {
            throw CurveKeyError.malformed("\(path): needs public-key and secret-key lines (make one with apsweep keys)")
        }
        return try CurveKeyPair(publicKey: pub, secretKey: sec)
    }

    /// Reads the public key of a `.pub` (or `.key`) file.
    public static func readPublicKey(_ path: String) throws -> String {
        guard let pub = try fields(path)["public-key"], pub.utf8.count == 40 else {
            throw CurveKeyError.malformed("\(path): no 40-character public-key line")
        }
        return pub
    }

    static func fields(_ path: String) throws -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw CurveKeyError.malformed("\(path): cannot read the key file") }
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 { out[parts[0]] = parts[1] }
        }
        return out
    }
}

public enum CurveKeyError: Error, CustomStringConvertible, Equatable {
    case malformed(String)
    public var description: String { if case let .malformed(m) = self { return m }; return "" }
}

/// A ZAP handler (RFC 27) in its own thread: admits CURVE clients whose public key is on the
/// allow-list and refuses all others. It serves every CURVE server socket of its context.
public final class ZAPAuthenticator: @unchecked Sendable {
    private let socket: ZMQSocket
    private let allowed: Set<String>
    private var thread: Thread?
    private let stopFlag = ManagedAtomicFlag()
    /// Clients refused so far, for tests and status.
    public private(set) var refusals = 0

    /// `allowedPublicKeys` in Z85.
    public init(context: ZMQContext, allowedPublicKeys: Set<String>) throws {
        socket = try ZMQSocket(context, .rep)
        try socket.bind("inproc://zeromq.zap.01")
        allowed = allowedPublicKeys
    }

    public func start() {
        let t = Thread { [self] in self.serve() }
        t.name = "apsweep-zap"
        thread = t
        t.start()
    }

    public func stop() {
        stopFlag.set()
        while thread != nil && !(thread!.isFinished) { usleep(1000) }
        socket.close()
    }

    private func serve() {
        while !stopFlag.isSet {
            guard (try? socket.poll(timeoutMs: 100)) == true, let request = try? socket.receive() else { continue }
            // Frames: version, request id, domain, address, identity, mechanism, credentials…
            guard request.count >= 6 else { continue }
            let version = request[0], requestID = request[1]
            let mechanism = String(decoding: request[5], as: UTF8.self)
            var ok = false
            if mechanism == "CURVE", request.count >= 7, request[6].count == 32 {
                ok = allowed.contains(z85Encode(request[6]))
            }
            if !ok { refusals += 1 }
            try? socket.send([version, requestID, Array((ok ? "200" : "400").utf8), Array((ok ? "OK" : "key not on the allow-list").utf8),
                              ok ? Array("worker".utf8) : [], []])
        }
    }
}

/// Z85 text of 32 key bytes (libzmq's zmq_z85_encode).
public func z85Encode(_ bytes: [UInt8]) -> String {
    var out = [CChar](repeating: 0, count: bytes.count * 5 / 4 + 1)
    _ = bytes.withUnsafeBufferPointer { zmq_z85_encode(&out, $0.baseAddress, $0.count) }
    return String(cString: out)
}

/// A flag set once from any thread.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}
