import Digest
import Foundation

/// Splitting a data set over workers, and the content fingerprint that proves two workers hold the
/// same data.
///
/// **Rule** (`mod-v1`): shard k of N holds the training images whose index i in the original file
/// order satisfies i mod N = k, in that order; every shard carries the complete test set, so that
/// test accuracies (and PD_test) are comparable across shards. Round-robin keeps each shard's class
/// mix close to the whole set's even when a file is sorted by class.
///
/// **Fingerprint** (v2): SHA-256 over a domain tag, the rule, the name and index, then for the
/// training part and the test part: the image shape, count and classes, the normalisation (mean
/// and std per channel, as Float32 bit patterns), the pixels and the labels — every byte that can
/// change a result — as lowercase hex. It depends only on the content, not on file names or
/// formats: the same shard read from IDX files or from a shard file has the same fingerprint.
public struct Shard: Sendable {
    public let name: String
    public let index: Int, count: Int
    public let train: LabeledImages, test: LabeledImages
    public let fingerprint: String

    /// The whole data set as one shard (index 0 of 1).
    public init(name: String, train: LabeledImages, test: LabeledImages) {
        self.init(name: name, index: 0, of: 1, train: train, test: test)
    }

    /// Shard `index` of `count` of (train, test), by the rule above.
    public init(name: String, index: Int, of count: Int, train full: LabeledImages, test: LabeledImages) {
        precondition(count >= 1 && index >= 0 && index < count, "shard \(index) of \(count)")
        self.name = name
        self.index = index
        self.count = count
        self.test = test
        if count == 1 {
            train = full
        } else {
            let per = full.imageShape.reduce(1, *)
            var pixels: [UInt8] = [], labels: [Int] = []
            pixels.reserveCapacity(full.pixels.count / count + per)
            for i in stride(from: index, to: full.count, by: count) {
                pixels.append(contentsOf: full.pixels[(i * per)..<((i + 1) * per)])
                labels.append(full.labels[i])
            }
            train = LabeledImages(partOf: full, pixels: pixels, labels: labels)
        }
        fingerprint = Shard.fingerprint(name: name, index: index, count: count, train: train, test: test)
    }

    init(name: String, index: Int, count: Int, train: LabeledImages, test: LabeledImages, fingerprint: String) {
        self.name = name; self.index = index; self.count = count
        self.train = train; self.test = test; self.fingerprint = fingerprint
    }

    /// The rule's name as it enters the fingerprint.
    public static let rule = "mod-v1"

    static func fingerprint(name: String, index: Int, count: Int, train: LabeledImages, test: LabeledImages) -> String {
        let h = SHA256Hasher()
        h.update("apsweep-shard-v2\n\(rule)\n\(name)\n\(index)/\(count)\n")
        for part in [train, test] {
            h.update("\(part.imageShape) \(part.count) \(part.classes)\n")
            for v in part.mean + part.std { h.update(littleEndian: v.bitPattern) }
            h.update(part.pixels)
            h.update(part.labels.map { UInt8(truncatingIfNeeded: $0) })
            if part.classes > 256 { h.update(part.labels.map { UInt8(truncatingIfNeeded: $0 >> 8) }) }
        }
        return h.hexDigest()
    }

    /// A short form for tables: the first 12 hex digits.
    public var shortFingerprint: String { String(fingerprint.prefix(12)) }
}

/// The shard file: one file a lab copies to a node.
///
/// Layout: the 8 bytes `APSHARD1`, a little-endian u32 header length, a JSON header (name, index,
/// count, rule, fingerprint, and per part: image shape, count, classes, mean, std), then for the
/// train part and the test part: pixels (u8) and labels (u8, or u16 little-endian above 256
/// classes). Reading recomputes the fingerprint and refuses a file whose content does not match.
public enum ShardFile {
    static let magic = Array("APSHARD1".utf8)

    public static func write(_ shard: Shard, to path: String) throws {
        func part(_ p: LabeledImages) -> [String: Any] {
            ["shape": p.imageShape, "count": p.count, "classes": p.classes, "mean": p.mean.map(Double.init), "std": p.std.map(Double.init)]
        }
        let header: [String: Any] = ["name": shard.name, "index": shard.index, "count": shard.count, "rule": Shard.rule,
                                     "fingerprint": shard.fingerprint, "train": part(shard.train), "test": part(shard.test)]
        let json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        var out = Data(magic)
        withUnsafeBytes(of: UInt32(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for p in [shard.train, shard.test] {
            out.append(contentsOf: p.pixels)
            if p.classes > 256 {
                for l in p.labels { withUnsafeBytes(of: UInt16(l).littleEndian) { out.append(contentsOf: $0) } }
            } else {
                out.append(contentsOf: p.labels.map { UInt8($0) })
            }
        }
        try out.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    public static func read(path: String) throws -> Shard {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DatasetError.unreadable(path: path, reason: "no such shard file, or not readable")
        }
        func fail(_ why: String) -> DatasetError { .malformed(path: path, reason: "not a valid apsweep shard file: \(why)") }
        let bytes = [UInt8](data)
        guard bytes.count >= 12, Array(bytes[0..<8]) == magic else { throw fail("missing the APSHARD1 magic") }
        let n = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        guard 12 + n <= bytes.count,
              let header = try? JSONSerialization.jsonObject(with: Data(bytes[12..<(12 + n)])) as? [String: Any],
              let name = header["name"] as? String, let index = header["index"] as? Int, let count = header["count"] as? Int,
              let fingerprint = header["fingerprint"] as? String,
              let trainInfo = header["train"] as? [String: Any], let testInfo = header["test"] as? [String: Any] else {
            throw fail("the header is truncated or not the expected JSON")
        }
        guard header["rule"] as? String == Shard.rule else {
            throw fail("split rule \(header["rule"] ?? "none") is not \(Shard.rule); rewrite it with this apsweep version")
        }
        var offset = 12 + n
        func part(_ info: [String: Any], _ what: String) throws -> LabeledImages {
            guard let shape = info["shape"] as? [Int], let m = info["count"] as? Int, let classes = info["classes"] as? Int,
                  let mean = info["mean"] as? [Double], let std = info["std"] as? [Double], shape.count == 3 else {
                throw fail("the \(what) part's description is incomplete")
            }
            let pixelCount = shape.reduce(1, *) * m, labelWidth = classes > 256 ? 2 : 1
            guard offset + pixelCount + labelWidth * m <= bytes.count else { throw fail("truncated in the \(what) part") }
            let pixels = Array(bytes[offset..<(offset + pixelCount)])
            offset += pixelCount
            var labels: [Int] = []
            labels.reserveCapacity(m)
            for i in 0..<m {
                labels.append(labelWidth == 1 ? Int(bytes[offset + i]) : Int(bytes[offset + 2 * i]) | Int(bytes[offset + 2 * i + 1]) << 8)
            }
            offset += labelWidth * m
            do {
                return try LabeledImages(imageShape: shape, pixels: pixels, labels: labels, classes: classes,
                                         mean: mean.map(Float.init), std: std.map(Float.init))
            } catch { throw fail("the \(what) part: \(error)") }
        }
        let train = try part(trainInfo, "train"), test = try part(testInfo, "test")
        guard offset == bytes.count else { throw fail("\(bytes.count - offset) unexpected bytes after the test part") }
        let actual = Shard.fingerprint(name: name, index: index, count: count, train: train, test: test)
        guard actual == fingerprint else {
            throw fail("content does not match its fingerprint (recorded \(fingerprint.prefix(12)), computed \(actual.prefix(12))); the file is corrupt")
        }
        return Shard(name: name, index: index, count: count, train: train, test: test, fingerprint: fingerprint)
    }
}
