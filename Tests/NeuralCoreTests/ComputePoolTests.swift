@testable import NeuralCore
import Foundation
import Synchronization
import XCTest

/// `Compute.parallel`'s pool: every index runs once per loop, iterations really run at the same
/// time on the pool's own helper (polling, and after it went to sleep), and loops inside loops
/// or on two threads at once complete instead of deadlocking.
final class ComputePoolTests: XCTestCase {
    override func tearDown() {
        Compute.threads = 1
    }

    /// 20,000 loops back to back with 2–9 iterations and 2–4 threads: each index exactly once.
    func testEveryIndexRunsOncePerLoop() {
        var rng = SeededGenerator(seed: 7)
        let counts = Mutex([Int](repeating: 0, count: 16))
        for loop in 0..<20_000 {
            let n = 2 + Int(rng.next() % 8)
            Compute.threads = 2 + Int(rng.next() % 3)
            Compute.parallel(n) { i in counts.withLock { $0[i] += 1 } }
            let ran = counts.withLock { c in defer { c = [Int](repeating: 0, count: 16) }; return c }
            for i in 0..<16 where ran[i] != (i < n ? 1 : 0) {
                return XCTFail("loop \(loop): index \(i) of \(n) ran \(ran[i]) times")
            }
        }
    }

    /// Index 0 waits for index 1 to start: it can only finish if the two run at the same time.
    /// Run back to back (the helper is polling) and after pauses longer than its polling window
    /// (the helper has gone to sleep and must be woken).
    func testTwoIterationsRunAtTheSameTimeWhetherTheHelperPollsOrSleeps() {
        Compute.threads = 2
        for pause in [0, 0, 0, 2_000, 2_000] {   // µs; the pool polls for 500 µs
            usleep(UInt32(pause))
            let started = Atomic<Bool>(false)
            let met = Atomic<Bool>(false)
            let onHelper = Atomic<Bool>(false)
            Compute.parallel(2) { i in
                if Self.threadName() == ComputePool.helperName { onHelper.store(true, ordering: .relaxed) }
                if i == 1 { started.store(true, ordering: .releasing); return }
                let deadline = Date().addingTimeInterval(10)
                while !started.load(ordering: .acquiring) && Date() < deadline {}
                met.store(started.load(ordering: .acquiring), ordering: .relaxed)
            }
            XCTAssertTrue(met.load(ordering: .relaxed), "after a pause of \(pause) µs, index 0 never saw index 1 start")
            // One of the two ran on the pool's helper, not on a Dispatch thread.
            XCTAssertTrue(onHelper.load(ordering: .relaxed), "after a pause of \(pause) µs, no iteration ran on the pool's helper")
        }
    }

    /// The calling OS thread's name.
    static func threadName() -> String {
        var name = [CChar](repeating: 0, count: 64)
        _ = threadGetName(pthread_self(), &name, name.count)
        return String(cString: name)
    }

    /// A loop inside a loop, and loops started from two threads at once, each run every index.
    func testNestedAndConcurrentLoopsComplete() {
        Compute.threads = 2
        let inner = Atomic<Int>(0)
        Compute.parallel(3) { _ in
            Compute.parallel(4) { _ in inner.add(1, ordering: .relaxed) }
        }
        XCTAssertEqual(inner.load(ordering: .relaxed), 12)

        let total = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            for _ in 0..<2_000 { Compute.parallel(3) { _ in total.add(1, ordering: .relaxed) } }
        }
        XCTAssertEqual(total.load(ordering: .relaxed), 12_000)
    }
}

// A GNU extension that Swift's Glibc module does not export.
@_silgen_name("pthread_getname_np") private func threadGetName(_ thread: pthread_t, _ name: UnsafeMutablePointer<CChar>, _ size: Int) -> Int32
