import Datasets
import Foundation
import NeuralCore
import XCTest

/// IDX files made by the test itself: plain and gzip (through the system's gzip), good and broken.
final class IDXTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "apsweep-idx-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func idx(_ dims: [Int], _ body: [UInt8], magic: [UInt8]? = nil) -> [UInt8] {
        var out = magic ?? [0, 0, 8, UInt8(dims.count)]
        for d in dims { out += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
        return out + body
    }

    @discardableResult
    func write(_ name: String, _ bytes: [UInt8], gzip: Bool = false) throws -> String {
        let path = (dir as NSString).appendingPathComponent(name)
        try Data(bytes).write(to: URL(fileURLWithPath: gzip ? String(path.dropLast(3)) : path))
        if gzip {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/gzip")
            p.arguments = ["-f", String(path.dropLast(3))]
            try p.run()
            p.waitUntilExit()
        }
        return path
    }

    func message(_ body: () throws -> Any) -> String {
        do { _ = try body(); return "no error" } catch { return "\(error)" }
    }

    func testReadsPlainAndGzippedFiles() throws {
        let pixels = (0..<(3 * 2 * 2)).map { UInt8($0 * 20) }
        let plain = try write("train-images-idx3-ubyte", idx([3, 2, 2], pixels))
        let gz = try write("t10k-images-idx3-ubyte.gz", idx([3, 2, 2], pixels), gzip: true)
        for path in [plain, gz] {
            let a = try IDXArray(path: path)
            XCTAssertEqual(a.shape, [3, 2, 2])
            XCTAssertEqual(a.bytes, pixels)
        }
    }

    func testLoadsADirectoryAsADataSetAndBatchesIt() throws {
        let n = 10
        let pixels = (0..<(n * 4 * 4)).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let labels = (0..<n).map { UInt8($0 % 10) }
        for split in ["train", "t10k"] {
            try write("\(split)-images-idx3-ubyte.gz", idx([n, 4, 4], pixels), gzip: true)
            try write("\(split)-labels-idx1-ubyte.gz", idx([n], labels), gzip: true)
        }
        let set = try IDXDataset.fashionMNIST.load(directory: dir, train: true)
        XCTAssertEqual(set.count, n)
        XCTAssertEqual(set.imageShape, [1, 4, 4])
        let batches = Batches(set, batchSize: 4, shuffleSeed: 9, epoch: 0)
        XCTAssertEqual(batches.count, 3)
        var seen: [Int] = []
        for (x, y) in batches {
            XCTAssertEqual(x.shape.dropFirst(), [1, 4, 4])
            seen += y
        }
        XCTAssertEqual(seen.sorted(), labels.map(Int.init).sorted(), "every image exactly once per epoch")
        XCTAssertEqual(Batches(set, batchSize: 4, shuffleSeed: 9).order, batches.order, "same seed and epoch, same order")
        XCTAssertNotEqual(Batches(set, batchSize: 4, shuffleSeed: 9, epoch: 1).order, batches.order, "another epoch, another order")
        // Normalisation: (p/255 − mean)/std with Fashion-MNIST's constants.
        let first = Batches(set, batchSize: 1, shuffleSeed: nil).makeIterator().next()!.images
        XCTAssertEqual(first.scalars[1], (7 / 255 - 0.2860) / 0.3530, accuracy: 1e-6)
    }

    func testMalformedFilesNameTheFileAndTheProblem() throws {
        let wrongMagic = try write("a", idx([2], [1, 2], magic: [1, 2, 8, 1]))
        XCTAssert(message { try IDXArray(path: wrongMagic) }.contains("a: not an IDX file of unsigned bytes: wrong magic 01 02"))
        let truncated = try write("b", idx([2, 3, 3], [UInt8](repeating: 1, count: 10)))
        XCTAssert(message { try IDXArray(path: truncated) }.contains("need 18 bytes of data, the file has 10 (truncated?)"))
        let float = try write("c", [0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0])
        XCTAssert(message { try IDXArray(path: float) }.contains("element type 0x0d"))
        let notGzip = try write("d.gz", [0x1F, 0x8B, 8, 0, 0, 0])   // a gzip header and nothing else
        XCTAssert(message { try IDXArray(path: notGzip) }.contains("d.gz"), message { try IDXArray(path: notGzip) })
        let missing = (dir as NSString).appendingPathComponent("nothing")
        XCTAssert(message { try IDXArray(path: missing) }.contains("nothing: no such file"))
        // A gzip stream cut in half.
        let full = try write("e.gz", idx([100, 10, 10], (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }), gzip: true)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: full))
        let cut = try write("f.gz", Array(bytes.prefix(bytes.count / 2)))
        XCTAssert(message { try IDXArray(path: cut) }.contains("f.gz"), message { try IDXArray(path: cut) })
    }

    func testWrongDimensionsAreNamed() throws {
        try write("train-images-idx3-ubyte", idx([12], [UInt8](repeating: 0, count: 12)))   // rank 1 "images"
        try write("train-labels-idx1-ubyte", idx([12], [UInt8](repeating: 0, count: 12)))
        XCTAssert(message { try IDXDataset.mnist.load(directory: self.dir, train: true) }.contains("expected images of rank 3 [N, H, W], got dimensions [12]"))
        try write("train-images-idx3-ubyte", idx([2, 2, 3], [UInt8](repeating: 0, count: 12)))
        try write("train-labels-idx1-ubyte", idx([2, 1], [0, 1]))
        XCTAssert(message { try IDXDataset.mnist.load(directory: self.dir, train: true) }.contains("expected labels of rank 1 [N]"))
    }

    func testLabelCountMismatchIsAnError() throws {
        try write("train-images-idx3-ubyte", idx([3, 2, 2], [UInt8](repeating: 0, count: 12)))
        try write("train-labels-idx1-ubyte", idx([2], [0, 1]))
        XCTAssert(message { try IDXDataset.mnist.load(directory: self.dir, train: true) }.contains("has 2 labels but"))
    }

    /// Debian's dataset-fashion-mnist, when installed: 60,000 + 10,000 images, mean pixel ≈ 72.94.
    func testFashionMNISTFromDebianPackage() throws {
        let dirPath = IDXDataset.fashionMNIST.defaultDirectory
        try XCTSkipUnless(FileManager.default.fileExists(atPath: dirPath), "dataset-fashion-mnist is not installed")
        let train = try IDXDataset.fashionMNIST.load(train: true), test = try IDXDataset.fashionMNIST.load(train: false)
        XCTAssertEqual(train.count, 60_000)
        XCTAssertEqual(test.count, 10_000)
        let (mean, _) = train.channelStatistics()
        XCTAssertEqual(Double(mean[0]) * 255, 72.94, accuracy: 0.01)
        XCTAssertEqual(Set(train.labels).count, 10)
    }
}
