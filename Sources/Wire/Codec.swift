import APSweepProtoC
import Foundation
import Messages

/// Why a frame could not be decoded. Every case says what to check.
public enum WireError: Error, Equatable, CustomStringConvertible {
    case frameTooLarge(size: Int, limit: Int)
    case undecodable(String)
    case emptyBody
    case encodingFailed(String)
    /// Decodable, but larger than the limits allow (records or values in one message).
    case limitExceeded(String)

    public var description: String {
        switch self {
        case let .frameTooLarge(size, limit): return "frame of \(size) bytes exceeds the \(limit)-byte limit; raise --max-frame on both sides or send smaller chunks"
        case let .undecodable(why): return "undecodable frame (\(why)); is the peer an apsweep process of a compatible version?"
        case .emptyBody: return "envelope without a message body; the peer speaks a newer protocol or is broken"
        case let .encodingFailed(why): return "cannot encode message: \(why)"
        case let .limitExceeded(why): return "message too large: \(why)"
        }
    }

    /// The Reject code a coordinator answers this error with.
    public var rejectCode: RejectCode {
        switch self {
        case .frameTooLarge, .limitExceeded: return .limitExceeded
        default: return .malformed
        }
    }
}

/// Bounds on what one decoded message may hold, checked on the C structs before Swift values are
/// made: no work is done on a number the peer chose until it is known to be small.
public struct DecodeLimits: Sendable {
    /// Epoch records in one Progress or Result.
    public var maxRecords = 100_000
    /// Metric values (plus one per record and metric set) in one message.
    public var maxValues = 2_000_000
    public init(maxRecords: Int = 100_000, maxValues: Int = 2_000_000) { self.maxRecords = maxRecords; self.maxValues = maxValues }
}

/// Encoding and decoding envelopes through protobuf-c (`Sources/APSweepProtoC`, generated from
/// Proto/apsweep.proto). Every C allocation made for encoding is released before `encode`
/// returns; decoded C messages are freed with `free_unpacked` on every path.
public enum Codec {
    /// The largest frame `decode` accepts by default (a 4 MiB BlobChunk plus headers fits).
    public static let defaultMaxFrameBytes = 16 << 20

    public static func encode(_ envelope: Envelope) throws -> [UInt8] {
        let arena = CArena()
        defer { arena.release() }
        let env: UnsafeMutablePointer<Apsweep__V1__Envelope> = arena.message(apsweep__v1__envelope__init)
        env.pointee.protocol_version = envelope.version
        env.pointee.sequence = envelope.sequence
        env.pointee.incarnation = envelope.incarnation
        try fill(env, envelope.message, arena)
        let size = withUnsafePointer(to: &env.pointee) { apsweep__v1__envelope__get_packed_size($0) }
        var out = [UInt8](repeating: 0, count: size)
        let written = out.withUnsafeMutableBufferPointer { buf in
            withUnsafePointer(to: &env.pointee) { apsweep__v1__envelope__pack($0, buf.baseAddress) }
        }
        guard written == size else { throw WireError.encodingFailed("packed \(written) of \(size) bytes") }
        return out
    }

    /// Whether an envelope frame carries a StatusRequest, from its top-level fields only (no
    /// decoding): the coordinator answers those ahead of queued results. A frame that is not
    /// well-formed protobuf says false here and is refused when decoded.
    public static func isStatusRequest(_ frame: [UInt8]) -> Bool {
        var i = 0
        func varint() -> UInt64? {
            var v: UInt64 = 0, shift: UInt64 = 0
            while i < frame.count && shift < 64 {
                let b = frame[i]
                i += 1
                v |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return v }
                shift += 7
            }
            return nil
        }
        while i < frame.count {
            guard let tag = varint() else { return false }
            let field = tag >> 3
            switch tag & 7 {
            case 0: guard varint() != nil else { return false }
            case 1: i += 8
            case 5: i += 4
            case 2:
                guard let n = varint(), n <= UInt64(frame.count - i) else { return false }
                if field == UInt64(APSWEEP__V1__ENVELOPE__BODY_STATUS_REQUEST.rawValue) { return true }
                i += Int(n)
            default: return false
            }
            // The body (fields 10 and up) is one of the oneof; the header fields come first.
            if field >= 10 { return false }
        }
        return false
    }

    public static func decode(_ bytes: [UInt8], maxFrameBytes: Int = defaultMaxFrameBytes, limits: DecodeLimits = DecodeLimits()) throws -> Envelope {
        try bytes.withUnsafeBufferPointer { try decode(UnsafeRawBufferPointer($0), maxFrameBytes: maxFrameBytes, limits: limits) }
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer, maxFrameBytes: Int = defaultMaxFrameBytes, limits: DecodeLimits = DecodeLimits()) throws -> Envelope {
        guard bytes.count <= maxFrameBytes else { throw WireError.frameTooLarge(size: bytes.count, limit: maxFrameBytes) }
        guard let env = apsweep__v1__envelope__unpack(nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            throw WireError.undecodable("not a valid apsweep.v1.Envelope of \(bytes.count) bytes")
        }
        defer { apsweep__v1__envelope__free_unpacked(env, nil) }
        try checkSize(env.pointee, limits)
        let message = try read(env.pointee)
        return Envelope(message, sequence: env.pointee.sequence, version: env.pointee.protocol_version, incarnation: env.pointee.incarnation)
    }
}

/// C memory for one encoding; everything is freed by `release()`.
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        let p = malloc(max(1, bytes))!
        blocks.append(p)
        return p
    }

    /// A protobuf-c message initialised by its generated `_init`.
    func message<T>(_ initialise: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let p = allocate(MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: 1)
        initialise(p)
        return p
    }

    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        let utf8 = Array(s.utf8CString)
        let p = allocate(utf8.count).bindMemory(to: CChar.self, capacity: utf8.count)
        p.update(from: utf8, count: utf8.count)
        return p
    }

    func strings(_ items: [String]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        guard !items.isEmpty else { return (0, nil) }
        let p = allocate(items.count * MemoryLayout<UnsafeMutablePointer<CChar>?>.stride).bindMemory(to: UnsafeMutablePointer<CChar>?.self, capacity: items.count)
        for (i, s) in items.enumerated() { p[i] = string(s) }
        return (items.count, p)
    }

    func pointers<T>(_ items: [UnsafeMutablePointer<T>]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<T>?>?) {
        guard !items.isEmpty else { return (0, nil) }
        let p = allocate(items.count * MemoryLayout<UnsafeMutablePointer<T>?>.stride).bindMemory(to: UnsafeMutablePointer<T>?.self, capacity: items.count)
        for (i, item) in items.enumerated() { p[i] = item }
        return (items.count, p)
    }

    func binary(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        let p = allocate(bytes.count).bindMemory(to: UInt8.self, capacity: max(1, bytes.count))
        p.update(from: bytes, count: bytes.count)
        return ProtobufCBinaryData(len: bytes.count, data: p)
    }

    func release() {
        for p in blocks { free(p) }
        blocks.removeAll()
    }
}

/// A C string field as a Swift String (NULL reads as "").
func text(_ p: UnsafeMutablePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }

func textArray(_ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> [String] {
    guard let p else { return [] }
    return (0..<n).map { text(p[$0]) }
}

func items<T, R>(_ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?, _ convert: (T) throws -> R) throws -> [R] {
    guard let p else { return [] }
    return try (0..<n).map { i in
        guard let item = p[i] else { throw WireError.undecodable("a repeated message element is missing") }
        return try convert(item.pointee)
    }
}

func bytes(_ b: ProtobufCBinaryData) -> [UInt8] {
    guard b.len > 0, let d = b.data else { return [] }
    return Array(UnsafeBufferPointer(start: d, count: b.len))
}
