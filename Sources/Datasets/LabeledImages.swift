import Foundation
import NeuralCore

/// A labelled image set held in memory as bytes, normalised on the way into a batch.
///
/// Pixels stay as UInt8 [N, C, H, W] (a quarter of Float32's memory); `Batches` converts each
/// batch as it is drawn, so an epoch never copies the whole set.
public struct LabeledImages: Sendable {
    /// [C, H, W] of one image.
    public let imageShape: [Int]
    public let pixels: [UInt8]
    public let labels: [Int]
    public let classes: Int
    /// Per-channel mean and standard deviation in pixel units / 255, applied as (x/255 − mean)/std.
    public var mean: [Float], std: [Float]

    public var count: Int { labels.count }

    public init(imageShape: [Int], pixels: [UInt8], labels: [Int], classes: Int, mean: [Float]? = nil, std: [Float]? = nil) throws {
        let per = imageShape.reduce(1, *)
        guard imageShape.count == 3, per > 0 else { throw DatasetError.mismatch("image shape must be [C, H, W], got \(imageShape)") }
        guard pixels.count == per * labels.count else {
            throw DatasetError.mismatch("\(labels.count) labels but \(pixels.count / per) images")
        }
        if let bad = labels.first(where: { $0 < 0 || $0 >= classes }) {
            throw DatasetError.mismatch("label \(bad) is outside 0..<\(classes)")
        }
        let mean = mean ?? Array(repeating: 0, count: imageShape[0])
        let std = std ?? Array(repeating: 1, count: imageShape[0])
        guard mean.count == imageShape[0], std.count == imageShape[0], mean.allSatisfy(\.isFinite), std.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw DatasetError.mismatch("normalisation needs one finite mean and one positive std per channel, got mean \(mean), std \(std)")
        }
        self.imageShape = imageShape
        self.pixels = pixels
        self.labels = labels
        self.classes = classes
        self.mean = mean
        self.std = std
    }

    /// A part of an already validated set: its sizes and labels need no checks.
    public init(partOf full: LabeledImages, pixels: [UInt8], labels: [Int]) {
        imageShape = full.imageShape
        self.pixels = pixels
        self.labels = labels
        classes = full.classes
        mean = full.mean
        std = full.std
    }

    /// The per-channel mean and standard deviation of the pixels (in units of 1/255), in Float64.
    public func channelStatistics() -> (mean: [Float], std: [Float]) {
        let c = imageShape[0], plane = imageShape[1] * imageShape[2]
        var sum = [Double](repeating: 0, count: c), sq = [Double](repeating: 0, count: c)
        pixels.withUnsafeBufferPointer { p in
            for i in 0..<count {
                for ch in 0..<c {
                    var s = 0, s2 = 0
                    let base = (i * c + ch) * plane
                    for j in 0..<plane { let v = Int(p[base + j]); s += v; s2 += v * v }
                    sum[ch] += Double(s); sq[ch] += Double(s2)
                }
            }
        }
        let n = Double(count * plane)
        let mean = sum.map { $0 / n / 255 }
        let std = zip(sq, mean).map { (($0.0 / n / 65025) - $0.1 * $0.1).squareRoot() }
        return (mean.map(Float.init), std.map(Float.init))
    }

    /// This set normalised with its own channel statistics.
    public func normalisedByItsStatistics() -> LabeledImages {
        var copy = self
        (copy.mean, copy.std) = channelStatistics()
        return copy
    }
}

/// The MNIST-format data sets apsweep reads from a directory of IDX files.
public enum IDXDataset: String, CaseIterable, Sendable {
    case mnist, fashionMNIST = "fashion-mnist"

    /// Where Debian's packages put the files (`dataset-fashion-mnist`).
    public var defaultDirectory: String {
        switch self {
        case .fashionMNIST: return "/usr/share/datasets/fashion-mnist"
        case .mnist: return "/usr/share/datasets/mnist"
        }
    }

    /// Normalisation constants commonly used for this set (mean, std of pixel/255).
    public var standardNormalisation: (Float, Float) {
        switch self {
        case .fashionMNIST: return (0.2860, 0.3530)
        case .mnist: return (0.1307, 0.3081)
        }
    }

    /// Loads the train or test split from `directory` (file names as distributed, with or
    /// without .gz), normalised with the standard constants.
    public func load(directory: String? = nil, train: Bool) throws -> LabeledImages {
        let dir = directory ?? defaultDirectory
        let prefix = train ? "train" : "t10k"
        func find(_ stem: String) throws -> String {
            let idx = stem == "images" ? "idx3" : "idx1"
            for name in ["\(prefix)-\(stem)-\(idx)-ubyte.gz", "\(prefix)-\(stem)-\(idx)-ubyte", "\(prefix)-\(stem).\(idx)-ubyte"] {
                let path = (dir as NSString).appendingPathComponent(name)
                if FileManager.default.fileExists(atPath: path) { return path }
            }
            let hint = self == .fashionMNIST ? " (apt-get install dataset-fashion-mnist, or pass the directory)" : ""
            throw DatasetError.unreadable(path: (dir as NSString).appendingPathComponent("\(prefix)-\(stem)-\(idx)-ubyte.gz"),
                                          reason: "not found\(hint)")
        }
        let imagePath = try find("images"), labelPath = try find("labels")
        let images = try IDXArray(path: imagePath), labels = try IDXArray(path: labelPath)
        guard images.shape.count == 3 else {
            throw DatasetError.malformed(path: imagePath, reason: "expected images of rank 3 [N, H, W], got dimensions \(images.shape)")
        }
        guard labels.shape.count == 1 else {
            throw DatasetError.malformed(path: labelPath, reason: "expected labels of rank 1 [N], got dimensions \(labels.shape)")
        }
        guard labels.shape[0] == images.shape[0] else {
            throw DatasetError.mismatch("\(labelPath) has \(labels.shape[0]) labels but \(imagePath) has \(images.shape[0]) images")
        }
        if let bad = labels.bytes.first(where: { $0 > 9 }) {
            throw DatasetError.malformed(path: labelPath, reason: "label \(bad) outside 0...9")
        }
        let (m, s) = standardNormalisation
        return try LabeledImages(imageShape: [1, images.shape[1], images.shape[2]], pixels: images.bytes,
                                 labels: labels.bytes.map(Int.init), classes: 10, mean: [m], std: [s])
    }
}
