import CImageCodecs
import Foundation

/// A data set a lab keeps as image files: one sub-directory per class holding JPEG and PNG files
/// (torchvision's `ImageFolder` layout, and Tiny-ImageNet's train split). With `train/` and
/// `val/` (or `test/`) sub-directories those are the two splits; otherwise every fifth image of
/// each class (by sorted file name) is the test split. Classes are the sorted directory names.
///
/// Each image is decoded (libjpeg-turbo, libpng), converted to `channels` (1 grey, 3 RGB), its
/// shorter side resized to `size` (bilinear, as torchvision's `Resize(size)` without
/// antialiasing) and centre-cropped to size × size. Normalisation is the training split's own
/// per-channel mean and standard deviation. A file that cannot be decoded is an error naming it,
/// unless `skipCorrupt` is set: then it is left out and counted in `skipped`.
public struct ImageFolder: Sendable, Equatable {
    public var directory: String
    public var size: Int
    public var channels: Int
    public var skipCorrupt: Bool

    public init(directory: String, size: Int = 32, channels: Int = 3, skipCorrupt: Bool = false) {
        self.directory = directory
        self.size = size
        self.channels = channels
        self.skipCorrupt = skipCorrupt
    }

    /// The data set name a sweep and a worker use: `folder`, `folder:64`, `folder:64:gray`,
    /// `folder:skip-corrupt` … (the settings travel in the name, so every worker decodes alike;
    /// the fingerprint covers the decoded pixels).
    public var name: String {
        var parts = ["folder"]
        if size != 32 { parts.append(String(size)) }
        if channels == 1 { parts.append("gray") }
        if skipCorrupt { parts.append("skip-corrupt") }
        return parts.joined(separator: ":")
    }

    /// Parses a data set name of the form above; nil when it is not an image folder's.
    public static func settings(_ name: String) throws -> (size: Int, channels: Int, skipCorrupt: Bool)? {
        let parts = name.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.first == "folder" else { return nil }
        var size = 32, channels = 3, skip = false
        for p in parts.dropFirst() {
            if let n = Int(p) {
                guard (4...4096).contains(n) else { throw DatasetError.mismatch("\(name): an image size must be 4 to 4096 pixels, got \(n)") }
                size = n
            } else if p == "gray" || p == "grey" {
                channels = 1
            } else if p == "skip-corrupt" {
                skip = true
            } else {
                throw DatasetError.mismatch("\(name): unknown setting '\(p)'; write folder[:SIZE][:gray][:skip-corrupt], e.g. folder:64")
            }
        }
        return (size, channels, skip)
    }

    static let extensions: Set<String> = ["jpg", "jpeg", "png"]

    /// Images and their class index, for one split directory.
    func listing(_ dir: String, classes known: [String]? = nil) throws -> (classes: [String], files: [(path: String, label: Int)]) {
        let fm = FileManager.default
        guard let entries = try? fm.contentsOfDirectory(atPath: dir) else {
            throw DatasetError.unreadable(path: dir, reason: "not a readable directory; give a directory with one sub-directory of images per class")
        }
        let classes = known ?? entries.filter { e in
            var isDir: ObjCBool = false
            return !e.hasPrefix(".") && fm.fileExists(atPath: dir + "/" + e, isDirectory: &isDir) && isDir.boolValue
        }.sorted()
        guard !classes.isEmpty else {
            throw DatasetError.malformed(path: dir, reason: "holds no class directories; an image folder has one sub-directory of JPEG/PNG files per class")
        }
        var files: [(String, Int)] = []
        for (label, name) in classes.enumerated() {
            let classDir = dir + "/" + name
            let images = ((try? fm.contentsOfDirectory(atPath: classDir)) ?? [])
                .filter { !$0.hasPrefix(".") && Self.extensions.contains(($0 as NSString).pathExtension.lowercased()) }.sorted()
            guard !images.isEmpty else {
                throw DatasetError.malformed(path: classDir, reason: "class '\(name)' holds no .jpg, .jpeg or .png files; add images or remove the directory")
            }
            files += images.map { (classDir + "/" + $0, label) }
        }
        return (classes, files)
    }

    /// The train and test splits, decoded, with how many files were skipped as corrupt.
    public func load() throws -> (shard: Shard, skipped: [String]) {
        let fm = FileManager.default
        var trainFiles: [(path: String, label: Int)], testFiles: [(path: String, label: Int)], classes: [String]
        let testDir = ["val", "test"].map { directory + "/" + $0 }.first { fm.fileExists(atPath: $0) }
        if fm.fileExists(atPath: directory + "/train"), let testDir {
            let train = try listing(directory + "/train")
            classes = train.classes
            trainFiles = train.files
            testFiles = try listing(testDir, classes: classes).files
        } else {
            let all = try listing(directory)
            classes = all.classes
            trainFiles = []; testFiles = []
            var seen = [Int](repeating: 0, count: classes.count)
            for f in all.files {
                if seen[f.label] % 5 == 4 { testFiles.append(f) } else { trainFiles.append(f) }
                seen[f.label] += 1
            }
        }
        var skipped: [String] = []
        let train = try decode(trainFiles, classes: classes.count, skipped: &skipped)
        let statistics = train.channelStatistics()
        let normalisedTrain = try LabeledImages(imageShape: train.imageShape, pixels: train.pixels, labels: train.labels, classes: classes.count,
                                                mean: statistics.mean, std: statistics.std.map { max($0, 1e-6) })
        let test = try decode(testFiles, classes: classes.count, skipped: &skipped)
        let normalisedTest = try LabeledImages(imageShape: test.imageShape, pixels: test.pixels, labels: test.labels, classes: classes.count,
                                               mean: normalisedTrain.mean, std: normalisedTrain.std)
        return (Shard(name: name, train: normalisedTrain, test: normalisedTest), skipped)
    }

    func decode(_ files: [(path: String, label: Int)], classes: Int, skipped: inout [String]) throws -> LabeledImages {
        let per = channels * size * size
        var pixels = [UInt8](), labels = [Int]()
        pixels.reserveCapacity(files.count * per)
        for f in files {
            do {
                pixels += try Self.decodeFile(f.path, channels: channels, size: size)
                labels.append(f.label)
            } catch let e as DatasetError where skipCorrupt {
                skipped.append("\(e)")
            }
        }
        guard !labels.isEmpty else { throw DatasetError.mismatch("\(directory): no readable images in a split") }
        return try LabeledImages(imageShape: [channels, size, size], pixels: pixels, labels: labels, classes: classes)
    }

    /// One file, decoded, resized and cropped: channels × size × size bytes, planar.
    public static func decodeFile(_ path: String, channels: Int, size: Int) throws -> [UInt8] {
        let (raw, w, h) = try decodePixels(path, channels: channels)
        return resizeAndCrop(raw, width: w, height: h, channels: channels, size: size)
    }

    /// The decoded pixels as the file holds them: height × width × channels, interleaved.
    public static func decodePixels(_ path: String, channels: Int) throws -> (pixels: [UInt8], width: Int, height: Int) {
        guard let data = FileManager.default.contents(atPath: path) else { throw DatasetError.unreadable(path: path, reason: "cannot be read") }
        var out: UnsafeMutablePointer<UInt8>?
        var w: Int32 = 0, h: Int32 = 0
        var message = [CChar](repeating: 0, count: 512)
        let status = data.withUnsafeBytes { buffer in
            apsweep_image_decode(buffer.bindMemory(to: UInt8.self).baseAddress, buffer.count, Int32(channels), &out, &w, &h, &message, message.count)
        }
        guard status == 0, let out else {
            throw DatasetError.malformed(path: path, reason: String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        defer { apsweep_image_free(out) }
        return (Array(UnsafeBufferPointer(start: out, count: Int(w) * Int(h) * channels)), Int(w), Int(h))
    }

    /// Shorter side to `size` (bilinear, half-pixel centres, no antialiasing), then the central
    /// size × size; interleaved input, planar output.
    static func resizeAndCrop(_ src: [UInt8], width: Int, height: Int, channels: Int, size: Int) -> [UInt8] {
        let scale = Double(size) / Double(min(width, height))
        let rw = max(size, Int((Double(width) * scale).rounded())), rh = max(size, Int((Double(height) * scale).rounded()))
        let left = (rw - size) / 2, top = (rh - size) / 2
        var out = [UInt8](repeating: 0, count: channels * size * size)
        let sx = Double(width) / Double(rw), sy = Double(height) / Double(rh)
        for y in 0..<size {
            let fy = max(0, (Double(y + top) + 0.5) * sy - 0.5)
            let y0 = min(height - 1, Int(fy)), y1 = min(height - 1, y0 + 1), wy = fy - Double(y0)
            for x in 0..<size {
                let fx = max(0, (Double(x + left) + 0.5) * sx - 0.5)
                let x0 = min(width - 1, Int(fx)), x1 = min(width - 1, x0 + 1), wx = fx - Double(x0)
                for c in 0..<channels {
                    func p(_ xx: Int, _ yy: Int) -> Double { Double(src[(yy * width + xx) * channels + c]) }
                    let v = (p(x0, y0) * (1 - wx) + p(x1, y0) * wx) * (1 - wy) + (p(x0, y1) * (1 - wx) + p(x1, y1) * wx) * wy
                    out[(c * size + y) * size + x] = UInt8(min(255, max(0, v.rounded())))
                }
            }
        }
        return out
    }
}
