import Digest

/// Names (layers and metrics) as small integers, so that a stored record does not repeat
/// "ap3[gaussian:sigma2=1]" for every layer and epoch. The journal keeps the table; names are only
/// ever added.
public protocol NameTable: AnyObject {
    /// The id of `name`, adding it when it is new.
    func id(for name: String) -> UInt32
    /// The name of `id`, or nil when the table does not have it.
    func name(for id: UInt32) -> String?
}

/// A `NameTable` in memory (the journal preloads it from its `names` table).
public final class MemoryNameTable: NameTable {
    public private(set) var names: [String] = []
    private var ids: [String: UInt32] = [:]
    /// Names added since the last `takeAdded()`, for the journal to persist.
    private var added: [(UInt32, String)] = []

    public init(_ names: [(UInt32, String)] = []) {
        for (id, name) in names.sorted(by: { $0.0 < $1.0 }) where Int(id) == self.names.count {
            self.names.append(name)
            ids[name] = id
        }
    }

    public func id(for name: String) -> UInt32 {
        if let id = ids[name] { return id }
        let id = UInt32(names.count)
        names.append(name)
        ids[name] = id
        added.append((id, name))
        return id
    }

    public func name(for id: UInt32) -> String? { Int(id) < names.count ? names[Int(id)] : nil }

    /// Adds names another writer stored since this table was loaded (ids from `names.count` on,
    /// in order); returns how many were new.
    @discardableResult
    public func learn(_ pairs: [(UInt32, String)]) -> Int {
        let before = names.count
        for (id, name) in pairs.sorted(by: { $0.0 < $1.0 }) where Int(id) == names.count && ids[name] == nil {
            names.append(name)
            ids[name] = id
        }
        return names.count - before
    }

    public func takeAdded() -> [(UInt32, String)] {
        defer { added.removeAll() }
        return added
    }

    /// Forgets names added since the last `takeAdded()` (their transaction was rolled back).
    public func discardAdded() {
        for (id, name) in added.reversed() where Int(id) == names.count - 1 {
            names.removeLast()
            ids[name] = nil
        }
        added.removeAll()
    }
}

/// The journal's compact, checksummed encoding of one `EpochRecord` (format 1).
///
/// Layout: format byte (1); varint count S of scalars, then S little-endian Float64 in
/// `EpochRecord.fields` order; varint epoch; a flags byte (bit 0: a total is present); varint
/// count L of metric sets (the total first when present, then the layers); each set: varint name
/// id, varint count V, V × (varint name id, Float64); finally the CRC-32 of everything before it
/// (little-endian u32). About 0.5 KB for a LeNet-5 record with seven metrics per layer, against
/// 2.5 KB as JSON. Decoding checks the checksum and every count against the bytes left, so a
/// corrupt or hostile row yields an error, never a crash or a large allocation.
public enum RecordCoding {
    public static let format: UInt8 = 1

    public static func encode(_ r: EpochRecord, names: NameTable) -> [UInt8] {
        var out: [UInt8] = [format]
        out.reserveCapacity(64 + 10 * EpochRecord.fields.count)
        varint(UInt64(EpochRecord.fields.count), &out)
        for f in EpochRecord.fields { double(r[keyPath: f.keyPath], &out) }
        varint(UInt64(max(0, r.epoch)), &out)
        out.append(r.totalMetrics == nil ? 0 : 1)
        let sets = (r.totalMetrics.map { [$0] } ?? []) + r.layerMetrics
        varint(UInt64(sets.count), &out)
        for set in sets {
            varint(UInt64(names.id(for: set.key)), &out)
            varint(UInt64(set.values.count), &out)
            for (name, v) in set.values {
                varint(UInt64(names.id(for: name)), &out)
                double(v, &out)
            }
        }
        let crc = CRC32.of(out)
        withUnsafeBytes(of: crc.littleEndian) { out.append(contentsOf: $0) }
        return out
    }

    public static func decode(_ bytes: [UInt8], names: NameTable) throws -> EpochRecord {
        guard bytes.count >= 5 else { throw RecordError("a stored record of \(bytes.count) bytes is too short") }
        let body = bytes.count - 4
        let stored = UInt32(bytes[body]) | UInt32(bytes[body + 1]) << 8 | UInt32(bytes[body + 2]) << 16 | UInt32(bytes[body + 3]) << 24
        let actual = bytes.withUnsafeBytes { CRC32.of(UnsafeRawBufferPointer(rebasing: $0[0..<body])) }
        guard stored == actual else { throw RecordError("checksum mismatch (stored \(hex(stored)), computed \(hex(actual))): the record is corrupt") }
        var reader = Reader(bytes: bytes, end: body)
        guard try reader.byte() == format else { throw RecordError("record format \(bytes[0]) is not \(format); a newer apsweep wrote it") }
        let scalars = try reader.count(limit: 1 << 10, size: 8)
        var r = EpochRecord(epoch: 0)
        for i in 0..<scalars {
            let v = try reader.double()
            if i < EpochRecord.fields.count { r[keyPath: EpochRecord.fields[i].keyPath] = v }
        }
        for i in scalars..<max(scalars, EpochRecord.fields.count) { r[keyPath: EpochRecord.fields[i].keyPath] = .nan }
        let epoch = try reader.varint()
        guard epoch <= 1 << 31 else { throw RecordError("epoch \(epoch) is out of range") }
        r.epoch = Int(epoch)
        let hasTotal = try reader.byte() & 1 == 1
        let sets = try reader.count(limit: 1 << 20, size: 2)
        for s in 0..<sets {
            let key = try name(try reader.varint(), names)
            let n = try reader.count(limit: 1 << 20, size: 9)
            var values: [(String, Double)] = []
            values.reserveCapacity(n)
            for _ in 0..<n { values.append((try name(try reader.varint(), names), try reader.double())) }
            let set = MetricValues(key: key, values: values)
            if s == 0 && hasTotal { r.totalMetrics = set } else { r.layerMetrics.append(set) }
        }
        guard reader.offset == body else { throw RecordError("\(body - reader.offset) unexpected bytes after the record") }
        return r
    }

    static func name(_ id: UInt64, _ names: NameTable) throws -> String {
        guard id <= UInt64(UInt32.max), let n = names.name(for: UInt32(id)) else { throw RecordError("unknown name id \(id)") }
        return n
    }

    static func hex(_ v: UInt32) -> String { String(v, radix: 16) }

    static func varint(_ v: UInt64, _ out: inout [UInt8]) {
        var v = v
        while v >= 0x80 {
            out.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    static func double(_ v: Double, _ out: inout [UInt8]) {
        withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) }
    }

    struct Reader {
        let bytes: [UInt8]
        let end: Int
        var offset = 0

        init(bytes: [UInt8], end: Int) { self.bytes = bytes; self.end = end }

        mutating func byte() throws -> UInt8 {
            guard offset < end else { throw RecordError("truncated record") }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func varint() throws -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true {
                let b = try byte()
                guard shift < 64 else { throw RecordError("malformed varint") }
                v |= UInt64(b & 0x7f) << shift
                if b < 0x80 { return v }
                shift += 7
            }
        }

        /// A count of items that take at least `size` bytes each: refused when the bytes left
        /// cannot hold that many (no allocation is sized from an unchecked number).
        mutating func count(limit: Int, size: Int) throws -> Int {
            let n = try varint()
            guard n <= UInt64(limit), Int(n) * size <= end - offset else { throw RecordError("a count of \(n) does not fit the record") }
            return Int(n)
        }

        mutating func double() throws -> Double {
            guard offset + 8 <= end else { throw RecordError("truncated record") }
            var bits: UInt64 = 0
            for i in 0..<8 { bits |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
            offset += 8
            return Double(bitPattern: bits)
        }
    }
}
