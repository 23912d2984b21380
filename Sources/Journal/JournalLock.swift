import Foundation

/// The exclusive claim of one process on a journal: `flock` on `<journal>.lock`, which holds the
/// PID, host and start time of the holder. The kernel drops the lock when its process dies,
/// however it dies, so a stale lock file of a crashed run is taken over at once; a live holder
/// makes a second `sweep` or `coordinator` on the same journal stop before it touches anything.
/// (flock is local to a machine: on NFS, run one coordinator per journal by hand.)
public final class JournalLock {
    public let path: String
    private var fd: Int32

    /// Takes the lock of `journal`, or throws naming the process that holds it.
    public init(journal: String) throws {
        path = journal + ".lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw JournalError.locked("\(path): cannot create the lock file: \(String(cString: strerror(errno))); is the directory writable?")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            fd = -1
            throw JournalError.locked("\(journal) is in use by another apsweep (\(holder.isEmpty ? "holder unknown" : holder)); "
                                      + "stop it first, or give this run another journal")
        }
        let text = "pid \(getpid()) on \(ProcessInfo.processInfo.hostName) since \(ISO8601DateFormatter().string(from: Date()))\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    /// Releases the lock (the file stays; the next holder overwrites it).
    public func release() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
