import Foundation
import Journal
import Scheduling
import XCTest

/// `apsweep coordinator --autoscale exec` on the real binary: a sweep that starts with no
/// workers gets them from the autoscaler, finishes, and leaves nothing running; a coordinator
/// SIGKILLed mid-sweep and restarted adopts the workers it launched instead of launching more.
final class AutoscaleTests: XCTestCase {
    var h: BinaryHarness!

    override func setUpWithError() throws {
        h = try BinaryHarness("autoscale")
        try XCTSkipUnless(h.available, "apsweep is not built next to the tests")
    }
    override func tearDown() { h.cleanUp() }

    func coordinatorArguments(_ file: String, port: Int) -> [String] {
        ["coordinator", file, "--journal", "\(h.dir)/run/sweep.db", "--bind", "tcp://127.0.0.1:\(port)", "--insecure",
         "--heartbeat-ms", "200", "--liveness-ms", "1500", "--lease-ms", "3000",
         "--autoscale", "exec", "--max-workers", "2", "--idle-timeout", "2", "--launch-interval", "1",
         "--advertise", "tcp://127.0.0.1:\(port)",
         "--launch", "exec \(h.binary.path) worker --connect {endpoint} --insecure --dataset fashion-mnist --data \(h.dir)/data --id {id} --cache \(h.dir)/cache-{id} --threads 1"]
    }

    /// Worker processes of this test still alive.
    func liveWorkers() -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap(Int32.init).filter { pid in
            guard let cmd = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) else { return false }
            return cmd.contains("worker") && cmd.contains(h.dir + "/cache-")
        }
    }

    func testASweepWithNoWorkersGetsThemAndLeavesNothingRunning() throws {
        let file = try h.sweep(sparsities: "[0.3, 0.6]", methods: "[lowest, random]")
        try FileManager.default.createDirectory(atPath: h.dir + "/run", withIntermediateDirectories: true)
        let port = try freePort()
        let out = try h.run(coordinatorArguments(file, port: port), timeout: 240)
        XCTAssertEqual(out.status, 0, out.stderr)
        XCTAssert(out.stderr.contains("autoscale:"), out.stderr)
        try h.read { j in
            XCTAssert(try j.tasks().allSatisfy { $0.row.state == .done })
            let launched = try j.events(kind: "autoscale-launched")
            XCTAssert((1...2).contains(launched.count), "launched \(launched.count), at most --max-workers 2")
            let ended = Set(try j.events(kind: "autoscale-ended").compactMap(\.worker))
            XCTAssertEqual(ended, Set(launched.compactMap(\.worker)), "every launched worker's end is journaled")
        }
        try h.waitUntil(10, "the launched workers to exit") { self.liveWorkers().isEmpty }
    }

    func testARestartedCoordinatorAdoptsItsWorkers() throws {
        let file = try h.sweep(baselineEpochs: 3, fineTuneEpochs: 80, sparsities: "[0.2, 0.4, 0.6]", methods: "[lowest, random]")
        try FileManager.default.createDirectory(atPath: h.dir + "/run", withIntermediateDirectories: true)
        let port = try freePort()
        let first = try h.start(coordinatorArguments(file, port: port))
        try h.waitUntil(120, "the autoscaler's workers to take tasks") {
            guard let j = self.h.journal() else { return false }
            defer { j.close() }
            return try j.events(kind: "autoscale-launched").count >= 2 && j.events(kind: "leased").count >= 2
        }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let before = liveWorkers()
        XCTAssertEqual(before.count, 2, "its workers outlive it")
        let second = try h.start(coordinatorArguments(file, port: port))
        try h.wait(second, timeout: 240)
        XCTAssertEqual(h.output(of: second).status, 0, h.output(of: second).stderr)
        XCTAssert(h.output(of: second).stderr.contains("adopting 2 job(s)"), h.output(of: second).stderr)
        try h.read { j in
            XCTAssert(try j.tasks().allSatisfy { $0.row.state == .done })
            XCTAssertEqual(try j.events(kind: "autoscale-launched").count, 2, "the restarted coordinator launched none: its two workers came back")
        }
        try h.waitUntil(10, "the adopted workers to exit at the sweep's end") { self.liveWorkers().isEmpty }
    }
}
