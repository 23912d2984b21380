@testable import Datasets
import Foundation
import XCTest

/// Image folders: decoding against PIL (the fixture of Scripts/gen_image_fixtures.py: what
/// torchvision's loader sees), the folder layouts, and the files a lab's folder really holds — a
/// corrupt one, a grey image in a colour set, a class with no images.
final class ImageFolderTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "imagefolder-\(getpid())-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func fixture(_ name: String) throws -> String {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures/images")).path
    }

    func testDecodedPixelsAreWhatPILDecodes() throws {
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: try fixture("pixels.json")))) as? [String: [String: Any]])
        for (name, e) in expected.sorted(by: { $0.key < $1.key }) {
            for (channels, key) in [(3, "rgb"), (1, "gray")] {
                let (pixels, w, h) = try ImageFolder.decodePixels(try fixture(name), channels: channels)
                XCTAssertEqual(w, e["width"] as? Int, name)
                XCTAssertEqual(h, e["height"] as? Int, name)
                let pil = try XCTUnwrap(e[key] as? [Int])
                XCTAssertEqual(pixels.count, pil.count, "\(name) \(key)")
                let worst = zip(pixels, pil).map { abs(Int($0) - $1) }.max() ?? 0
                // PNG is lossless: exact. JPEG: the same libjpeg-turbo algorithms (PIL bundles
                // its own build), within one level.
                XCTAssertLessThanOrEqual(worst, name.hasSuffix(".png") ? 0 : 1, "\(name) as \(key): largest difference from PIL \(worst)")
            }
        }
    }

    func testResizeKeepsAConstantImageAndCropsTheCentre() {
        let flat = [UInt8](repeating: 77, count: 10 * 4 * 3)
        XCTAssertEqual(ImageFolder.resizeAndCrop(flat, width: 10, height: 4, channels: 3, size: 8), [UInt8](repeating: 77, count: 3 * 64))
        // A wide image whose left half is black and right half white: the centre crop of the
        // resized image is half and half, the boundary in the middle.
        var halves = [UInt8](repeating: 0, count: 16 * 4)
        for y in 0..<4 { for x in 8..<16 { halves[y * 16 + x] = 255 } }
        let out = ImageFolder.resizeAndCrop(halves, width: 16, height: 4, channels: 1, size: 4)
        XCTAssertEqual(out.count, 16)
        XCTAssertEqual(Array(out[0..<4]), [0, 0, 255, 255])
    }

    /// A folder as a lab has one: two classes, PNG and JPEG, a grey image among colour ones.
    func makeFolder(_ root: String, perClass: Int = 5) throws {
        for (c, cls) in ["cat", "dog"].enumerated() {
            try FileManager.default.createDirectory(atPath: "\(root)/\(cls)", withIntermediateDirectories: true)
            let sources = ["rgb.png", "photo.jpg", "gray.png", "rgba.png", "gray.jpg"]
            for i in 0..<perClass {
                let source = sources[(i + c) % sources.count]
                try FileManager.default.copyItem(atPath: try fixture(source), toPath: "\(root)/\(cls)/\(i)-\(source)")
            }
        }
    }

    func testAFolderOfClassesIsSplitAndDecodedToTheModelsInput() throws {
        try makeFolder(dir)
        try "not a photo".write(toFile: "\(dir)/cat/notes.txt", atomically: true, encoding: .utf8)   // not an image: ignored
        let (shard, skipped) = try ImageFolder(directory: dir, size: 16).load()
        XCTAssertEqual(skipped, [])
        XCTAssertEqual(shard.train.imageShape, [3, 16, 16])
        XCTAssertEqual(shard.train.classes, 2)
        XCTAssertEqual(shard.train.count, 8, "every fifth image of each class is the test split")
        XCTAssertEqual(shard.test.count, 2)
        XCTAssertEqual(Set(shard.test.labels), [0, 1])
        XCTAssertEqual(shard.test.mean, shard.train.mean, "the test split is normalised with the training split's statistics")
        // A grey file in a colour set: its three planes are equal.
        let grey = try ImageFolder.decodeFile(try fixture("gray.png"), channels: 3, size: 16)
        XCTAssertEqual(Array(grey[0..<256]), Array(grey[256..<512]))
        XCTAssertEqual(Array(grey[0..<256]), Array(grey[512..<768]))
        // The fingerprint covers the decoded pixels: another image changes it.
        let before = shard.fingerprint
        try FileManager.default.removeItem(atPath: "\(dir)/cat/0-rgb.png")
        try FileManager.default.copyItem(atPath: try fixture("photo.jpg"), toPath: "\(dir)/cat/0-rgb.png")
        XCTAssertNotEqual(try ImageFolder(directory: dir, size: 16).load().shard.fingerprint, before)
    }

    func testTrainAndValDirectoriesAreTheSplits() throws {
        try makeFolder(dir + "/train", perClass: 4)
        try makeFolder(dir + "/val", perClass: 2)
        let source = try DataSource.parse("folder:8:gray", directory: dir)
        XCTAssertEqual(source.name, "folder:8:gray")
        let shard = try source.load()
        XCTAssertEqual(shard.train.imageShape, [1, 8, 8])
        XCTAssertEqual(shard.train.count, 8)
        XCTAssertEqual(shard.test.count, 4)
    }

    func testACorruptFileIsNamedOrSkippedWhenAsked() throws {
        try makeFolder(dir)
        let bad = "\(dir)/dog/broken.jpg"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try fixture("photo.jpg"))))
        bytes = Array(bytes.prefix(bytes.count * 4 / 5))   // a truncated download (libjpeg would fill it with grey)
        try Data(bytes).write(to: URL(fileURLWithPath: bad))
        try Data("<html>404</html>".utf8).write(to: URL(fileURLWithPath: "\(dir)/dog/page.png"))
        XCTAssertThrowsError(try ImageFolder(directory: dir, size: 8).load()) { error in
            XCTAssert("\(error)".contains(bad) || "\(error)".contains("\(self.dir)/dog/page.png"), "\(error)")
        }
        let (shard, skipped) = try DataSource.parse("folder:8:skip-corrupt", directory: dir).folderLoad()
        XCTAssertEqual(skipped.count, 2, "\(skipped)")
        XCTAssert(skipped.contains { $0.contains("page.png") && $0.contains("neither a JPEG nor a PNG") }, "\(skipped)")
        XCTAssert(skipped.contains { $0.contains("broken.jpg") && $0.contains("damaged or truncated JPEG") }, "\(skipped)")
        XCTAssertEqual(shard.train.count + shard.test.count, 10)
    }

    func testAClassWithNoImagesAndAMissingFolderAreNamed() throws {
        try makeFolder(dir)
        try FileManager.default.createDirectory(atPath: "\(dir)/empty", withIntermediateDirectories: true)
        XCTAssertThrowsError(try ImageFolder(directory: dir).load()) {
            XCTAssert("\($0)".contains("\(self.dir)/empty: class 'empty' holds no .jpg, .jpeg or .png files"), "\($0)")
        }
        XCTAssertThrowsError(try ImageFolder(directory: dir + "/nowhere").load()) { XCTAssert("\($0)".contains("not a readable directory"), "\($0)") }
        XCTAssertThrowsError(try DataSource.parse("folder:big", directory: dir)) { XCTAssert("\($0)".contains("unknown setting 'big'"), "\($0)") }
        XCTAssertThrowsError(try DataSource.parse("folder", directory: nil)) { XCTAssert("\($0)".contains("--data DIR"), "\($0)") }
    }
}

extension DataSource {
    /// The image folder's shard and skipped files (tests).
    func folderLoad() throws -> (Shard, [String]) {
        guard case let .folder(f) = self else { throw DatasetError.mismatch("not a folder") }
        return try f.load()
    }
}
