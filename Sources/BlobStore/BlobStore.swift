import Digest
import Foundation

/// A blob store failure. Every case names the file and what to do.
public enum BlobError: Error, CustomStringConvertible, Equatable {
    case io(String)
    /// The disk is full: nothing half-written is kept.
    case diskFull(String)
    case corrupt(String)
    public var description: String {
        switch self { case let .io(m), let .diskFull(m), let .corrupt(m): return m }
    }
}

/// Content-addressed files (checkpoints): a blob's name is the SHA-256 of its bytes. The
/// coordinator stores baselines here and serves them; a worker keeps its cache here. Writes go to
/// a `.part` file and are renamed into place only once their hash is verified; reads for use are
/// verified too, so a flipped bit in a stored or cached checkpoint is found, not used.
public final class BlobStore {
    public let directory: String

    public init(directory: String) throws {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw BlobError.io("\(directory): cannot create the blob directory: \(error.localizedDescription)")
        }
    }

    public func path(_ hash: String) -> String { (directory as NSString).appendingPathComponent(hash) }

    public func contains(_ hash: String) -> Bool { SHA256Hasher.isHexDigest(hash) && FileManager.default.fileExists(atPath: path(hash)) }

    public func size(_ hash: String) -> UInt64? {
        ((try? FileManager.default.attributesOfItem(atPath: path(hash)))?[.size] as? NSNumber)?.uint64Value
    }

    /// Verified files by (size, modification time): a blob served chunk by chunk is hashed once.
    private var verified: [String: (UInt64, Date)] = [:]

    /// Whether blob `hash` is present and its bytes still hash to its name. A corrupt one is
    /// moved aside (`<hash>.corrupt`) so that it is fetched or made again.
    public func verify(_ hash: String) -> Bool {
        guard contains(hash), let attributes = try? FileManager.default.attributesOfItem(atPath: path(hash)),
              let size = (attributes[.size] as? NSNumber)?.uint64Value, let modified = attributes[.modificationDate] as? Date else { return false }
        if let v = verified[hash], v.0 == size, v.1 == modified { return true }
        guard let actual = try? Self.hash(file: path(hash)) else { return false }
        if actual == hash {
            verified[hash] = (size, modified)
            return true
        }
        verified[hash] = nil
        try? FileManager.default.removeItem(atPath: path(hash) + ".corrupt")
        try? FileManager.default.moveItem(atPath: path(hash), toPath: path(hash) + ".corrupt")
        return false
    }

    /// The SHA-256 of a file, read in 1 MiB pieces.
    public static func hash(file: String) throws -> String {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BlobError.io("\(file): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let h = SHA256Hasher()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw BlobError.io("\(file): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            buffer.withUnsafeBytes { h.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return h.hexDigest()
    }

    /// Reads up to `maxBytes` of blob `hash` from `offset`.
    public func read(_ hash: String, offset: UInt64, maxBytes: Int) throws -> (data: [UInt8], total: UInt64) {
        let fd = open(path(hash), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BlobError.io("\(path(hash)): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw BlobError.io("\(path(hash)): \(String(cString: strerror(errno)))") }
        let total = UInt64(st.st_size)
        let count = Int(min(UInt64(max(0, maxBytes)), total - min(total, offset)))
        var data = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = data.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n < 0 { if errno == EINTR { continue }; throw BlobError.io("\(path(hash)): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            done += n
        }
        return (Array(data[0..<done]), total)
    }

    /// Writes `bytes` as a blob (atomically) and returns its hash.
    @discardableResult
    public func store(_ bytes: [UInt8]) throws -> String {
        let hash = SHA256Hasher.hex(bytes)
        if verify(hash) { return hash }
        let part = path(hash) + ".part-\(getpid())"
        try Self.write(bytes, to: part, offset: 0, truncate: true)
        try finish(part: part, hash: hash)
        return hash
    }

    // MARK: uploads and downloads in chunks

    /// A blob arriving in chunks, hashed as it comes.
    final class Partial {
        let part: String
        var hasher = SHA256Hasher()
        var received: UInt64 = 0
        init(part: String) { self.part = part }
    }
    private var partials: [String: Partial] = [:]

    /// Appends a chunk of blob `hash` sent by `source` at `offset` (offset 0 starts over). When
    /// `last`, the blob's hash is checked and it is moved into place: true. Chunks out of order
    /// throw; a blob whose bytes do not match its hash is thrown away and throws `.corrupt`.
    @discardableResult
    public func append(_ data: [UInt8], hash: String, source: String, offset: UInt64, last: Bool) throws -> Bool {
        let key = source + "/" + hash
        if offset == 0 {
            partials[key] = Partial(part: path(hash) + ".part-" + source.replacingOccurrences(of: "/", with: "_"))
        }
        guard let p = partials[key], p.received == offset else {
            partials[key] = nil
            throw BlobError.io("\(hash.prefix(12)): chunk at offset \(offset) does not continue the transfer")
        }
        do {
            try Self.write(data, to: p.part, offset: offset, truncate: offset == 0)
        } catch {
            partials[key] = nil
            try? FileManager.default.removeItem(atPath: p.part)
            throw error
        }
        data.withUnsafeBytes { p.hasher.update($0) }
        p.received += UInt64(data.count)
        guard last else { return false }
        partials[key] = nil
        let actual = p.hasher.hexDigest()
        guard actual == hash else {
            try? FileManager.default.removeItem(atPath: p.part)
            throw BlobError.corrupt("\(hash.prefix(12)): the content arrived does not match its hash (got \(actual.prefix(12)))")
        }
        try finish(part: p.part, hash: hash)
        return true
    }

    /// Forgets a transfer in progress.
    public func abandon(hash: String, source: String) {
        if let p = partials.removeValue(forKey: source + "/" + hash) { try? FileManager.default.removeItem(atPath: p.part) }
    }

    private func finish(part: String, hash: String) throws {
        if rename(part, path(hash)) != 0 {
            let why = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: part)
            throw BlobError.io("\(path(hash)): cannot move the verified blob into place: \(why)")
        }
        if let attributes = try? FileManager.default.attributesOfItem(atPath: path(hash)),
           let size = (attributes[.size] as? NSNumber)?.uint64Value, let modified = attributes[.modificationDate] as? Date {
            verified[hash] = (size, modified)
        }
    }

    /// Writes `bytes` at `offset` of `file` with POSIX calls, so that a full disk is an error
    /// naming the file (Foundation's FileHandle.write traps instead).
    static func write(_ bytes: [UInt8], to file: String, offset: UInt64, truncate: Bool) throws {
        let fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0o644)
        guard fd >= 0 else { throw error(file) }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done)) }
            if n < 0 { if errno == EINTR { continue }; throw error(file) }
            done += n
        }
    }

    static func error(_ file: String) -> BlobError {
        let code = errno
        if code == ENOSPC || code == EDQUOT {
            return .diskFull("\(file): the disk is full (\(String(cString: strerror(code)))); free space and run the same command again")
        }
        return .io("\(file): \(String(cString: strerror(code)))")
    }
}
