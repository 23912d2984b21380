import Foundation
import Synchronization

/// The helper threads behind the core's parallel loops (`Compute.parallel`).
///
/// A training step runs many parallel loops, some short: a LeNet-5 step at batch 128 has 23 of
/// about 250 µs on average, a ResNet-20 step 122. Handing each to Dispatch put the second core's
/// thread to sleep after every loop and woke it for the next: at 2 threads LeNet-5 used 1.5 of
/// its 2 cores and ran 1.1× its 1-thread speed. Here a helper that finishes a loop keeps
/// polling for the next one for `spin` before it blocks, as OpenMP runtimes do, so the loops of
/// one step find it awake.
///
/// One loop runs at a time. A loop started while another runs (a loop inside a loop, or two
/// threads training at once) goes to Dispatch instead, so nesting never deadlocks.
///
/// Claiming an iteration is one compare-and-swap on a word that holds the loop's generation, its
/// iteration count and the next unclaimed index. A helper can only claim from the loop it read
/// the generation of, and the caller returns only once every claimed iteration has finished, so
/// the body a helper calls is always alive.
final class ComputePool: @unchecked Sendable {
    static let shared = ComputePool()

    /// The helpers' thread name, as `top -H` and `perf report -s comm` show it.
    static let helperName = "apsweep-compute"

    /// How long an idle helper polls for the next loop before it sleeps.
    static let spin: UInt64 = 500_000   // ns

    /// generation (high 32 bits) | iterations (16 bits) | next index (16 bits).
    private let ticket = Atomic<UInt64>(0)
    private let finished = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    nonisolated(unsafe) private var body: ((Int) -> Void)?
    nonisolated(unsafe) private var helpers = 0
    private let lock = NSCondition()

    /// Runs `body(0 ..< iterations)`, each index once, on the calling thread and up to
    /// `threads − 1` helpers; returns when all have finished.
    func run(_ iterations: Int, threads: Int, _ body: (Int) -> Void) {
        guard iterations > 1, threads > 1, iterations < 1 << 16,
              busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            if iterations == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: iterations, execute: body) }
            return
        }
        defer { busy.store(false, ordering: .releasing) }
        while helpers < threads - 1 { startHelper() }
        withoutActuallyEscaping(body) { body in
            self.body = body
            finished.store(0, ordering: .relaxed)
            let generation = ((ticket.load(ordering: .relaxed) >> 32) &+ 1) & 0xFFFF_FFFF
            ticket.store(generation << 32 | UInt64(iterations) << 16, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                lock.lock()
                lock.broadcast()
                lock.unlock()
            }
            work(generation: generation)
            var polls = 0
            while finished.load(ordering: .acquiring) < iterations {
                polls += 1
                if polls & 1023 == 0 { sched_yield() }
            }
            self.body = nil
        }
    }

    /// Claims and runs iterations of loop `generation` until none is left.
    private func work(generation: UInt64) {
        var current = ticket.load(ordering: .acquiring)
        while current >> 32 == generation {
            let count = (current >> 16) & 0xFFFF, index = current & 0xFFFF
            if index >= count { return }
            let (exchanged, seen) = ticket.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            if !exchanged { current = seen; continue }
            body!(Int(index))
            finished.add(1, ordering: .releasing)
            current = ticket.load(ordering: .acquiring)
        }
    }

    private func startHelper() {
        helpers += 1
        let thread = Thread { [self] in
            // Named for top and perf (Foundation's Thread.name does not reach the OS thread here).
            _ = setThreadName(pthread_self(), ComputePool.helperName)
            helperLoop()
        }
        thread.stackSize = 8 << 20
        thread.start()
    }

    private func helperLoop() {
        var seen = ticket.load(ordering: .acquiring) >> 32
        while true {
            // Poll for the next loop, then sleep until one is announced.
            let deadline = DispatchTime.now().uptimeNanoseconds + Self.spin
            var polls = 0
            var generation = ticket.load(ordering: .acquiring) >> 32
            while generation == seen {
                polls += 1
                if polls & 255 == 0 && DispatchTime.now().uptimeNanoseconds > deadline {
                    lock.lock()
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    while ticket.load(ordering: .sequentiallyConsistent) >> 32 == seen { lock.wait() }
                    sleepers.subtract(1, ordering: .relaxed)
                    lock.unlock()
                }
                generation = ticket.load(ordering: .acquiring) >> 32
            }
            work(generation: generation)
            seen = generation
        }
    }
}

// glibc's pthread_setname_np is a GNU extension that Swift's Glibc module does not export.
@_silgen_name("pthread_setname_np") private func setThreadName(_ thread: pthread_t, _ name: UnsafePointer<CChar>) -> Int32
