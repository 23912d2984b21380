import ArgumentParser
import Foundation
import Messages
import Records
import Wire

/// Round trips and codec throughput of the wire layer.
struct BenchWire: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wire",
        abstract: "Lock-step Assign → Result round trips per second between two processes over loopback (CURVE off and on), and encode + decode MB/s.")
    @Option(help: "Seconds per measurement.") var seconds = 3.0
    @Option(help: "Internal: run as the peer, connected to this endpoint.") var peer: String?
    @Option(help: "Internal: the server's public key (CURVE peer).") var serverKey: String?
    @Option(help: "Internal: the peer's key file (CURVE peer).") var keyFile: String?

    func run() throws {
        if let peer { return try runPeer(peer) }
        print("apsweep bench wire: libzmq \(ZMQContext.version), CURVE \(ZMQContext.hasCurve ? "available" : "missing")")
        try codecThroughput()
        for curve in [false, true] where !curve || ZMQContext.hasCurve {
            let rate = try roundTrips(curve: curve)
            print(String(format: "round trips (Assign → Result, lock-step, 2 processes, loopback, CURVE %@): %.0f /s", curve ? "on" : "off", rate))
        }
    }

    private func sampleResult() -> TaskResult {
        var r = TaskResult()
        r.taskID = String(repeating: "a", count: 64)
        var rec = EpochRecord(epoch: 1)
        rec.layerMetrics = (0..<16).map { l in MetricValues(key: "features.\(l).weight", values: (0..<8).map { ("m\($0)", Double($0) * 0.5) }) }
        rec.totalMetrics = MetricValues(key: "total", values: (0..<8).map { ("m\($0)", 1) })
        r.records = Array(repeating: rec, count: 21)
        return r
    }

    private func codecThroughput() throws {
        let cases: [(String, Envelope)] = [
            ("Result, 21 epochs × 16 layers × 8 metrics", Envelope(.result(sampleResult()))),
            ("BlobChunk of 4 MiB", Envelope(.blobChunk(BlobChunk(hash: "h", offset: 0, totalSize: 4 << 20, data: [UInt8](repeating: 7, count: 4 << 20), last: true)))),
        ]
        for (name, envelope) in cases {
            var bytes = 0, rounds = 0
            let start = Date()
            while Date().timeIntervalSince(start) < seconds / 2 || rounds < 3 {
                let frame = try Codec.encode(envelope)
                _ = try Codec.decode(frame)
                bytes += frame.count
                rounds += 1
            }
            let elapsed = Date().timeIntervalSince(start)
            print(String(format: "encode + decode %@: %.0f MB/s (%d bytes per frame)", name, Double(bytes) / elapsed / 1e6, bytes / rounds))
        }
    }

    private func roundTrips(curve: Bool) throws -> Double {
        let context = try ZMQContext()
        defer { context.close() }
        let serverKeys = curve ? try CurveKeyPair.generate() : nil
        let peerKeys = curve ? try CurveKeyPair.generate() : nil
        var auth: ZAPAuthenticator?
        if let peerKeys {
            auth = try ZAPAuthenticator(context: context, allowedPublicKeys: [peerKeys.publicKey])
            auth!.start()
        }
        defer { auth?.stop() }
        let router = try RouterEndpoint(context: context, bind: "tcp://127.0.0.1:*", curve: serverKeys)
        defer { router.socket.close() }
        var arguments = ["bench", "wire", "--peer", router.endpoint]
        var keyPath: String?
        if let serverKeys, let peerKeys {
            keyPath = NSTemporaryDirectory() + "apsweep-bench-\(getpid())"
            try peerKeys.write(to: keyPath!)
            arguments += ["--server-key", serverKeys.publicKey, "--key-file", keyPath! + ".key"]
        }
        defer { if let keyPath { try? FileManager.default.removeItem(atPath: keyPath + ".key"); try? FileManager.default.removeItem(atPath: keyPath + ".pub") } }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        process.arguments = arguments
        try process.run()
        defer { process.terminate(); process.waitUntilExit() }
        // Wait for the peer's Ready.
        var peer: [UInt8] = []
        let deadline = Date().addingTimeInterval(10)
        while peer.isEmpty {
            guard Date() < deadline else { throw CLIError("the benchmark peer did not connect within 10 s") }
            if case let .message(p, envelope)? = try router.receive(timeoutMs: 200), case .ready = envelope.message { peer = p }
        }
        var assign = Assign()
        assign.taskID = String(repeating: "b", count: 64); assign.specFormat = "apsweep.task.v1+json"; assign.spec = Array(repeating: 32, count: 600)
        var count = 0
        let start = Date()
        while Date().timeIntervalSince(start) < seconds {
            try router.send(.assign(assign), to: peer)
            guard case .message(_, let reply)? = try router.receive(timeoutMs: 5000), case .result = reply.message else {
                throw CLIError("the benchmark peer stopped answering")
            }
            count += 1
        }
        let rate = Double(count) / Date().timeIntervalSince(start)
        try router.send(.shutdown(Shutdown(reason: "benchmark done")), to: peer)
        return rate
    }

    private func runPeer(_ endpoint: String) throws {
        let context = try ZMQContext()
        defer { context.close() }
        var curve: (keys: CurveKeyPair, serverKey: String)?
        if let serverKey, let keyFile { curve = (try CurveKeyPair.read(keyFile: keyFile), serverKey) }
        let dealer = try DealerEndpoint(context: context, connect: endpoint, curve: curve)
        defer { dealer.socket.close() }
        try dealer.send(.ready(Ready(slots: 1)))
        var result = TaskResult()
        result.records = [EpochRecord(epoch: 1)]
        while true {
            guard let envelope = try dealer.receive(timeoutMs: 30_000) else { return }
            switch envelope.message {
            case let .assign(a):
                result.taskID = a.taskID
                try dealer.send(.result(result))
            case .shutdown:
                return
            default:
                continue
            }
        }
    }
}
