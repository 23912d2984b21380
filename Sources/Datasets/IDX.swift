import CZlib
import Foundation

/// Errors reading a data set; each names the file and what is wrong.
public enum DatasetError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case malformed(path: String, reason: String)
    case mismatch(String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "\(path): \(reason)"
        case let .malformed(path, reason): return "\(path): \(reason)"
        case let .mismatch(why): return why
        }
    }
}

/// Reads a whole file through zlib: gzip-compressed files are inflated, others read as they are.
/// A truncated gzip stream is an error, not a short read.
public func readMaybeGzipped(_ path: String) throws -> [UInt8] {
    guard FileManager.default.isReadableFile(atPath: path) else {
        throw DatasetError.unreadable(path: path, reason: "no such file, or not readable")
    }
    guard let file = gzopen(path, "rb") else {
        throw DatasetError.unreadable(path: path, reason: "cannot open: \(String(cString: strerror(errno)))")
    }
    defer { gzclose(file) }
    gzbuffer(file, 1 << 18)
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
        if n < 0 {
            var code: Int32 = 0
            let message = String(cString: gzerror(file, &code))
            throw DatasetError.malformed(path: path, reason: "cannot decompress (\(message)); is it a complete gzip file?")
        }
        if n == 0 { break }
        out.append(contentsOf: chunk[0..<Int(n)])
    }
    // gzread reports a truncated stream as end of file; gzerror tells the difference.
    var code: Int32 = 0
    let message = String(cString: gzerror(file, &code))
    if code != Z_OK && code != Z_STREAM_END {
        throw DatasetError.malformed(path: path, reason: "cannot decompress (\(message)); the gzip file is truncated or corrupt")
    }
    return out
}

/// An IDX file (the MNIST format): magic 0x00 0x00 type rank, big-endian u32 dimensions, data.
public struct IDXArray: Sendable {
    /// The dimensions, e.g. [60000, 28, 28].
    public var shape: [Int]
    /// The raw unsigned bytes (type 0x08, the only type MNIST-style data sets use).
    public var bytes: [UInt8]

    /// Parses an IDX file of unsigned bytes, gzip-compressed or not.
    public init(path: String) throws {
        let raw = try readMaybeGzipped(path)
        func fail(_ why: String) -> DatasetError { .malformed(path: path, reason: "not an IDX file of unsigned bytes: \(why)") }
        guard raw.count >= 4 else { throw fail("only \(raw.count) bytes") }
        guard raw[0] == 0, raw[1] == 0 else { throw fail(String(format: "wrong magic %02x %02x (expected 00 00)", raw[0], raw[1])) }
        guard raw[2] == 0x08 else { throw fail(String(format: "element type 0x%02x (apsweep reads 0x08, unsigned byte)", raw[2])) }
        let rank = Int(raw[3])
        guard rank >= 1, rank <= 4 else { throw fail("rank \(rank) (expected 1 to 4)") }
        guard raw.count >= 4 + 4 * rank else { throw fail("truncated in its dimensions") }
        var shape: [Int] = []
        for d in 0..<rank {
            let o = 4 + 4 * d
            shape.append(Int(raw[o]) << 24 | Int(raw[o + 1]) << 16 | Int(raw[o + 2]) << 8 | Int(raw[o + 3]))
        }
        let count = shape.reduce(1, *)
        let have = raw.count - 4 - 4 * rank
        guard have == count else {
            throw fail("dimensions \(shape) need \(count) bytes of data, the file has \(have)\(have < count ? " (truncated?)" : "")")
        }
        self.shape = shape
        self.bytes = Array(raw[(4 + 4 * rank)...])
    }
}
