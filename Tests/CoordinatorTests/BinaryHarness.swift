import Foundation
import Journal
import Scheduling
import XCTest

/// Runs the real `apsweep` binary (built next to the tests) the way a user does, in a scratch
/// directory that also holds a small Fashion-MNIST-shaped data set (IDX files: 28×28, 10 classes,
/// 512 training and 128 test images), so that a whole `apsweep sweep` takes seconds. Every wait
/// has a deadline; every process started is killed at the end.
final class BinaryHarness {
    let dir: String
    let binary: URL
    var processes: [Process] = []

    init(_ name: String) throws {
        dir = NSTemporaryDirectory() + "apsweep-\(name)-\(getpid())-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("apsweep")
        try Self.writeIDX(dir + "/data", train: 512, test: 128)
    }

    var available: Bool { FileManager.default.isExecutableFile(atPath: binary.path) }

    /// A sweep file in the scratch directory.
    @discardableResult
    func sweep(_ name: String = "sweep.yaml", baselineEpochs: Int = 2, fineTuneEpochs: Int = 2, sparsities: String = "[0.3, 0.6]",
               methods: String = "[lowest, random]", trials: Int = 1, metrics: String = "[gaussian:sigma2=1]", maxAttempts: Int = 3) throws -> String {
        let path = dir + "/" + name
        try """
            name: integrity
            data: {dataset: fashion-mnist}
            models: [{architecture: lenet5, width: 0.25}]
            trials: \(trials)
            baseline: {epochs: \(baselineEpochs), batch: 64, lr: 0.05}
            prune: {methods: \(methods), sparsities: \(sparsities), fine_tune: {epochs: \(fineTuneEpochs), batch: 64}, metrics: \(metrics)}
            max_attempts: \(maxAttempts)
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `apsweep sweep FILE` on the scratch data, 2 local workers × 1 thread, in `run`.
    func sweepArguments(_ file: String, run: String = "run", extra: [String] = []) -> [String] {
        ["sweep", file, "--workers", "2", "--threads", "1", "--dir", dir + "/" + run, "--data", dir + "/data"] + extra
    }

    struct Output { var status: Int32; var stdout: String; var stderr: String }

    /// Starts `apsweep ARGS` with its output going to files (read with `output(of:)`).
    func start(_ arguments: [String], name: String = UUID().uuidString) throws -> Process {
        let p = Process()
        p.executableURL = binary
        p.arguments = arguments
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        FileManager.default.createFile(atPath: "\(dir)/\(name).out", contents: nil)
        FileManager.default.createFile(atPath: "\(dir)/\(name).err", contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: "\(dir)/\(name).out")
        p.standardError = FileHandle(forWritingAtPath: "\(dir)/\(name).err")
        try p.run()
        processes.append(p)
        outputs[ObjectIdentifier(p)] = name
        return p
    }
    private var outputs: [ObjectIdentifier: String] = [:]

    func output(of p: Process) -> Output {
        let name = outputs[ObjectIdentifier(p)] ?? ""
        return Output(status: p.isRunning ? -1 : p.terminationStatus,
                      stdout: (try? String(contentsOfFile: "\(dir)/\(name).out", encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOfFile: "\(dir)/\(name).err", encoding: .utf8)) ?? "")
    }

    /// Runs `apsweep ARGS` to its end (at most `timeout` seconds).
    func run(_ arguments: [String], timeout: Double = 180) throws -> Output {
        let p = try start(arguments)
        try wait(p, timeout: timeout)
        return output(of: p)
    }

    func wait(_ p: Process, timeout: Double) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            throw NSError(domain: "apsweep-test", code: 1, userInfo: [NSLocalizedDescriptionKey: "apsweep \(p.arguments ?? []) did not finish within \(timeout) s"])
        }
    }

    func waitUntil(_ seconds: Double, _ what: String, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? condition()) == true { return }
            usleep(50_000)
        }
        throw NSError(domain: "apsweep-test", code: 1, userInfo: [NSLocalizedDescriptionKey: "timed out after \(seconds) s waiting for \(what)"])
    }

    /// The journal of run directory `run`, read-only (nil while it does not exist yet).
    func journal(_ run: String = "run") -> SweepJournal? { try? SweepJournal.openForReading(dir + "/" + run + "/sweep.db") }

    /// Reads the journal once and closes it.
    func read<T>(_ run: String = "run", _ body: (SweepJournal) throws -> T) throws -> T {
        guard let j = journal(run) else { throw NSError(domain: "apsweep-test", code: 2, userInfo: [NSLocalizedDescriptionKey: "no journal in \(run)"]) }
        defer { j.close() }
        return try body(j)
    }

    /// The processes whose parent is `pid` (from /proc).
    static func children(of pid: Int32) -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap(Int32.init).filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == pid
        }
    }

    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(after: close)...].hasPrefix(" Z")
    }

    func cleanUp() {
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Fashion-MNIST-shaped IDX files: class k is a bright block in one of 10 places plus noise.
    static func writeIDX(_ directory: String, train: Int, test: Int) throws {
        var seed: UInt64 = 0x5EED
        func next() -> UInt8 { seed = seed &* 6364136223846793005 &+ 1442695040888963407; return UInt8(truncatingIfNeeded: seed >> 56) }
        func u32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
        for (prefix, n) in [("train", train), ("t10k", test)] {
            var images = u32(0x0803) + u32(n) + u32(28) + u32(28), labels = u32(0x0801) + u32(n)
            for i in 0..<n {
                let k = i % 10
                labels.append(UInt8(k))
                for y in 0..<28 {
                    for x in 0..<28 {
                        let inBlock = (x / 9 == k % 3) && (y / 9 == k / 3 % 3) || (k == 9 && x > 20)
                        images.append(inBlock ? 200 &+ next() % 55 : next() % 60)
                    }
                }
            }
            try Data(images).write(to: URL(fileURLWithPath: "\(directory)/\(prefix)-images-idx3-ubyte"))
            try Data(labels).write(to: URL(fileURLWithPath: "\(directory)/\(prefix)-labels-idx1-ubyte"))
        }
    }
}
