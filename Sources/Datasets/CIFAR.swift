import Foundation

/// The binary versions of CIFAR-10 and CIFAR-100 (the `*-binary.tar.gz` downloads, unpacked).
///
/// CIFAR-10: `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`, records of 1 label byte
/// and 3,072 pixel bytes (R, G and B planes of 32×32). CIFAR-100: `train.bin` and `test.bin`,
/// records of a coarse label byte, a fine label byte and 3,072 pixel bytes.
public enum CIFAR: String, CaseIterable, Sendable {
    case cifar10, cifar100

    /// Per-channel statistics commonly used for normalisation (mean, std of pixel/255).
    public var standardNormalisation: (mean: [Float], std: [Float]) {
        switch self {
        case .cifar10: return ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])
        case .cifar100: return ([0.5071, 0.4865, 0.4409], [0.2673, 0.2564, 0.2762])
        }
    }

    /// Reads the train or test split from `directory`. For CIFAR-100, `coarse` picks the 20
    /// superclasses instead of the 100 fine classes.
    public func load(directory: String, train: Bool, coarse: Bool = false) throws -> LabeledImages {
        let names: [String]
        switch (self, train) {
        case (.cifar10, true): names = (1...5).map { "data_batch_\($0).bin" }
        case (.cifar10, false): names = ["test_batch.bin"]
        case (.cifar100, true): names = ["train.bin"]
        case (.cifar100, false): names = ["test.bin"]
        }
        let labelBytes = self == .cifar10 ? 1 : 2, record = labelBytes + 3072
        var pixels: [UInt8] = [], labels: [Int] = []
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw DatasetError.unreadable(path: path, reason: "not found or not readable (expected the binary version of \(rawValue))")
            }
            guard data.count > 0, data.count % record == 0 else {
                throw DatasetError.malformed(path: path, reason: "\(data.count) bytes is not a whole number of \(record)-byte \(rawValue) records (truncated?)")
            }
            let bytes = [UInt8](data)
            let classes = self == .cifar10 ? 10 : (coarse ? 20 : 100)
            for r in 0..<(bytes.count / record) {
                let base = r * record
                let label = Int(bytes[base + (self == .cifar100 && !coarse ? 1 : 0)])
                guard label < classes else {
                    throw DatasetError.malformed(path: path, reason: "record \(r) has label \(label), outside 0..<\(classes)")
                }
                labels.append(label)
                pixels.append(contentsOf: bytes[(base + labelBytes)..<(base + record)])
            }
        }
        let (mean, std) = standardNormalisation
        return try LabeledImages(imageShape: [3, 32, 32], pixels: pixels, labels: labels,
                                 classes: self == .cifar10 ? 10 : (coarse ? 20 : 100), mean: mean, std: std)
    }
}
