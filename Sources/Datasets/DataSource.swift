import Foundation

/// Where a task's data comes from: a named data set in a directory, or a shard file.
public enum DataSource: Sendable, Equatable {
    case idx(IDXDataset, directory: String?)
    case cifar(CIFAR, directory: String)
    case folder(ImageFolder)
    case shardFile(String)

    /// Parses a `--dataset` value: `fashion-mnist`, `mnist`, `cifar10`, `cifar100`, an image
    /// folder (`folder[:SIZE][:gray][:skip-corrupt]`, see `ImageFolder`), or a path to an
    /// `.apshard` file. `directory` overrides where a named set is read from.
    public static func parse(_ text: String, directory: String?) throws -> DataSource {
        if text.hasSuffix(".apshard") { return .shardFile(text) }
        if let f = try ImageFolder.settings(text) {
            guard let directory else { throw DatasetError.mismatch("\(text): give the image folder with --data DIR (one sub-directory per class)") }
            return .folder(ImageFolder(directory: directory, size: f.size, channels: f.channels, skipCorrupt: f.skipCorrupt))
        }
        if let idx = IDXDataset(rawValue: text) { return .idx(idx, directory: directory) }
        if let cifar = CIFAR(rawValue: text) {
            guard let directory else {
                throw DatasetError.mismatch("\(text) has no Debian package: download the binary version, unpack it, and pass its directory with --data")
            }
            return .cifar(cifar, directory: directory)
        }
        throw DatasetError.mismatch("unknown data set '\(text)': use fashion-mnist, mnist, cifar10, cifar100, folder[:SIZE][:gray] (with --data DIR) or a path to an .apshard file")
    }

    /// The data set's name as it enters fingerprints ("fashion-mnist").
    public var name: String {
        switch self {
        case let .idx(set, _): return set.rawValue
        case let .cifar(set, _): return set.rawValue
        case let .folder(f): return f.name
        case let .shardFile(path): return path
        }
    }

    /// Reads the data once to prove it is there and readable (the sweep command checks this
    /// before it journals a plan); returns its training and test sizes.
    @discardableResult
    public func check() throws -> (train: Int, test: Int) {
        let shard = try load()
        guard shard.train.count > 0 else { throw DatasetError.mismatch("\(name) has no training images") }
        guard shard.test.count > 0 else { throw DatasetError.mismatch("\(name) has no test images") }
        return (shard.train.count, shard.test.count)
    }

    /// Loads the train and test parts as one shard (the whole set), or the shard file's content.
    public func load() throws -> Shard {
        switch self {
        case let .idx(set, directory):
            return Shard(name: set.rawValue, train: try set.load(directory: directory, train: true),
                         test: try set.load(directory: directory, train: false))
        case let .cifar(set, directory):
            return Shard(name: set.rawValue, train: try set.load(directory: directory, train: true),
                         test: try set.load(directory: directory, train: false))
        case let .folder(f):
            let (shard, skipped) = try f.load()
            // Asked for with :skip-corrupt; still said, so a lab sees how much it lost.
            if let first = skipped.first {
                FileHandle.standardError.write(Data("apsweep: \(f.directory): skipped \(skipped.count) unreadable image(s) (\(f.name)), e.g. \(first)\n".utf8))
            }
            return shard
        case let .shardFile(path):
            return try ShardFile.read(path: path)
        }
    }
}
