import ArgumentParser
import Datasets
import Foundation

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Split data sets into shard files and show their fingerprints.",
        subcommands: [DataShard.self, DataInfo.self, DataSynthetic.self])
}

struct DataShard: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shard",
        abstract: "Write N shard files (training images i with i mod N = k, plus the whole test set) for copying to nodes.")

    @Option(help: "Data set: fashion-mnist, mnist, cifar10, cifar100.") var dataset = "fashion-mnist"
    @Option(help: "Directory holding the data set's files.") var data: String?
    @Option(help: "Number of shards.") var shards: Int
    @Option(help: "Directory for the shard files.") var out: String

    func validate() throws {
        guard shards >= 1 else { throw ValidationError("--shards must be at least 1") }
    }

    func run() throws {
        let source = try DataSource.parse(dataset, directory: data)
        let whole = try source.load()
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        print("\(source.name): \(whole.train.count) train, \(whole.test.count) test images → \(shards) shards (rule \(Shard.rule))")
        for k in 0..<shards {
            let shard = Shard(name: source.name, index: k, of: shards, train: whole.train, test: whole.test)
            let path = (out as NSString).appendingPathComponent("\(source.name)-\(k)-of-\(shards).apshard")
            try ShardFile.write(shard, to: path)
            print("\(path)  \(shard.train.count) train images  sha256 \(shard.fingerprint)")
        }
    }
}

struct DataInfo: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Print a data set's or shard file's sizes and fingerprint.")
    @Argument(help: "A data set name or an .apshard file.") var dataset = "fashion-mnist"
    @Option(help: "Directory holding the data set's files.") var data: String?

    func run() throws {
        let shard = try DataSource.parse(dataset, directory: data).load()
        print("name \(shard.name)  shard \(shard.index) of \(shard.count)  train \(shard.train.count)  test \(shard.test.count)  image \(shard.train.imageShape)  classes \(shard.train.classes)")
        print("sha256 \(shard.fingerprint)")
    }
}

struct DataSynthetic: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "synthetic",
        abstract: "Write the small synthetic data set (12×12, 4 classes) as a shard file, for drills and smoke tests.")
    @Option(help: "Output .apshard file.") var out: String
    @Option(help: "Training images.") var train = 400
    @Option(help: "Test images.") var test = 100
    @Option(help: "Seed (another seed gives other images, hence another fingerprint).") var seed: UInt64 = 1

    func validate() throws {
        guard train >= 1, train <= 10_000_000 else { throw ValidationError("--train must be in 1…10000000, got \(train)") }
        guard test >= 1, test <= 10_000_000 else { throw ValidationError("--test must be in 1…10000000, got \(test)") }
    }

    func run() throws {
        let shard = try SyntheticBlocks.shard(train: train, test: test, seed: seed)
        try ShardFile.write(shard, to: out)
        print("\(out): synthetic, \(train) train and \(test) test images, sha256 \(shard.fingerprint)")
    }
}
