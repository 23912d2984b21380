import Datasets
import Foundation
import NeuralCore
import XCTest

final class ShardAndCIFARTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "apsweep-shard-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func images(_ n: Int, seed: UInt64, shape: [Int] = [1, 4, 4], classes: Int = 10) throws -> LabeledImages {
        var rng = SeededGenerator(seed: seed)
        let per = shape.reduce(1, *)
        return try LabeledImages(imageShape: shape, pixels: (0..<(n * per)).map { _ in UInt8(truncatingIfNeeded: rng.next()) },
                                 labels: (0..<n).map { _ in Int(rng.next() % UInt64(classes)) }, classes: classes)
    }

    func testShardsFollowTheModRuleAndHaveStableDistinctFingerprints() throws {
        let train = try images(23, seed: 1), test = try images(5, seed: 2)
        let shards = (0..<4).map { Shard(name: "toy", index: $0, of: 4, train: train, test: test) }
        XCTAssertEqual(shards.map(\.train.count), [6, 6, 6, 5])
        XCTAssertEqual(shards[1].train.labels, stride(from: 1, to: 23, by: 4).map { train.labels[$0] })
        XCTAssertEqual(shards[2].train.pixels[0..<16], train.pixels[(2 * 16)..<(3 * 16)])
        XCTAssert(shards.allSatisfy { $0.test.count == 5 }, "every shard carries the whole test set")
        XCTAssertEqual(Set(shards.map(\.fingerprint)).count, 4, "fingerprints differ between shards")
        let again = Shard(name: "toy", index: 1, of: 4, train: train, test: test)
        XCTAssertEqual(again.fingerprint, shards[1].fingerprint, "stable across runs")
        XCTAssertEqual(shards[0].fingerprint.count, 64)
        // One changed pixel changes the fingerprint.
        var pixels = train.pixels
        pixels[0] ^= 1
        let altered = try LabeledImages(imageShape: train.imageShape, pixels: pixels, labels: train.labels, classes: 10)
        XCTAssertNotEqual(Shard(name: "toy", index: 0, of: 4, train: altered, test: test).fingerprint, shards[0].fingerprint)
    }

    func testShardFileRoundTripAndCorruption() throws {
        let shard = Shard(name: "toy", index: 2, of: 3, train: try images(30, seed: 3), test: try images(7, seed: 4))
        let path = (dir as NSString).appendingPathComponent("toy.apshard")
        try ShardFile.write(shard, to: path)
        let back = try ShardFile.read(path: path)
        XCTAssertEqual(back.fingerprint, shard.fingerprint)
        XCTAssertEqual(back.train.pixels, shard.train.pixels)
        XCTAssertEqual(back.test.labels, shard.test.labels)
        XCTAssertEqual([back.index, back.count], [2, 3])
        // Flip one byte in the pixels: the fingerprint check refuses the file.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 50] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ShardFile.read(path: path)) { XCTAssert("\($0)".contains("does not match its fingerprint"), "\($0)") }
        // A flipped digit of the stored normalisation (mean/std) changes training: the
        // fingerprint covers it, so the file is refused too.
        try ShardFile.write(Shard(name: "toy", index: 2, of: 3, train: try images(30, seed: 3).normalisedByItsStatistics(), test: try images(7, seed: 4)), to: path)
        var text = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let header = String(decoding: text[12..<min(text.count, 600)], as: UTF8.self)
        let at = try XCTUnwrap(header.range(of: "\"mean\":[0.")).upperBound
        let offset = 12 + header.utf8.distance(from: header.startIndex, to: at) + 1
        text[offset] = text[offset] == UInt8(ascii: "1") ? UInt8(ascii: "2") : UInt8(ascii: "1")
        try Data(text).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ShardFile.read(path: path)) { XCTAssert("\($0)".contains("does not match its fingerprint"), "\($0)") }
        try Data(bytes.prefix(40)).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ShardFile.read(path: path)) { XCTAssert("\($0)".contains("toy.apshard: not a valid apsweep shard file"), "\($0)") }
        try Data("hello".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ShardFile.read(path: path)) { XCTAssert("\($0)".contains("APSHARD1"), "\($0)") }
    }

    func testCIFAR10AndCIFAR100BinaryReaders() throws {
        func record(_ labels: [UInt8], fill: UInt8) -> [UInt8] { labels + [UInt8](repeating: fill, count: 3072) }
        var batch: [UInt8] = []
        for i in 0..<3 { batch += record([UInt8(i)], fill: UInt8(i * 10)) }
        for i in 1...5 { try Data(batch).write(to: URL(fileURLWithPath: "\(dir!)/data_batch_\(i).bin")) }
        try Data(record([9], fill: 200)).write(to: URL(fileURLWithPath: "\(dir!)/test_batch.bin"))
        let c10 = try CIFAR.cifar10.load(directory: dir, train: true)
        XCTAssertEqual(c10.count, 15)
        XCTAssertEqual(c10.imageShape, [3, 32, 32])
        XCTAssertEqual(Array(c10.labels.prefix(3)), [0, 1, 2])
        XCTAssertEqual(c10.pixels[3072], 10)
        XCTAssertEqual(try CIFAR.cifar10.load(directory: dir, train: false).labels, [9])

        try Data(record([3, 77], fill: 5) + record([19, 99], fill: 6)).write(to: URL(fileURLWithPath: "\(dir!)/train.bin"))
        XCTAssertEqual(try CIFAR.cifar100.load(directory: dir, train: true).labels, [77, 99])
        XCTAssertEqual(try CIFAR.cifar100.load(directory: dir, train: true, coarse: true).labels, [3, 19])
        XCTAssertEqual(try CIFAR.cifar100.load(directory: dir, train: true).classes, 100)

        try Data(batch.dropLast(7)).write(to: URL(fileURLWithPath: "\(dir!)/data_batch_3.bin"))
        XCTAssertThrowsError(try CIFAR.cifar10.load(directory: dir, train: true)) {
            XCTAssert("\($0)".contains("data_batch_3.bin: 9212 bytes is not a whole number of 3073-byte"), "\($0)")
        }
        XCTAssertThrowsError(try CIFAR.cifar100.load(directory: dir, train: false)) { XCTAssert("\($0)".contains("test.bin"), "\($0)") }
    }

    func testFittingAndAugmentation() throws {
        // One 2×2 image with pixels 10, 20, 30, 40; mean 0, std 1 so values are pixel/255.
        let set = try LabeledImages(imageShape: [1, 2, 2], pixels: [10, 20, 30, 40], labels: [1], classes: 2)
        let fitted = Batches(set, batchSize: 1, shuffleSeed: nil, outputShape: [3, 4, 4]).makeIterator().next()!.images
        XCTAssertEqual(fitted.shape, [1, 3, 4, 4])
        for c in 0..<3 {   // centred: rows 1–2, columns 1–2; the channel repeated
            XCTAssertEqual(fitted.scalars[c * 16 + 5], 10 / 255, accuracy: 1e-7)
            XCTAssertEqual(fitted.scalars[c * 16 + 10], 40 / 255, accuracy: 1e-7)
            XCTAssertEqual(fitted.scalars[c * 16 + 0], 0)
        }
        // Augmentation keeps the pixel multiset inside the canvas (shift ≤ padding keeps all here)
        // and is reproducible for a (seed, epoch).
        let big = try images(64, seed: 5, shape: [1, 8, 8])
        let a1 = Array(Batches(big, batchSize: 64, shuffleSeed: 3, epoch: 2, augmentation: Augmentation(cropPadding: 2)).makeIterator().next()!.images.scalars)
        let a2 = Array(Batches(big, batchSize: 64, shuffleSeed: 3, epoch: 2, augmentation: Augmentation(cropPadding: 2)).makeIterator().next()!.images.scalars)
        let plain = Array(Batches(big, batchSize: 64, shuffleSeed: 3, epoch: 2).makeIterator().next()!.images.scalars)
        XCTAssertEqual(a1, a2)
        XCTAssertNotEqual(a1, plain)
        // A flip-only augmentation permutes pixels within rows: row sums are unchanged.
        let flipped = Batches(big, batchSize: 64, shuffleSeed: 3, augmentation: Augmentation(cropPadding: 0)).makeIterator().next()!.images
        let unflipped = Batches(big, batchSize: 64, shuffleSeed: 3).makeIterator().next()!.images
        var mirrored = 0
        for row in 0..<(64 * 8) {
            let f = Array(flipped.scalars[(row * 8)..<(row * 8 + 8)]), u = Array(unflipped.scalars[(row * 8)..<(row * 8 + 8)])
            XCTAssert(f == u || f == u.reversed())
            if f != u { mirrored += 1 }
        }
        XCTAssert(mirrored > 100 && mirrored < 412, "about half of the images mirrored: \(mirrored / 8) of 64")
    }
}
