import NeuralCore

/// A small, learnable, fully deterministic image set for smoke tests and drills where real data
/// would only cost time: 12×12 grey images of noise in which class k (of 4) lights up quadrant k.
/// Named "synthetic"; a linear model separates it after a few epochs.
public enum SyntheticBlocks {
    public static func shard(train: Int = 400, test: Int = 100, seed: UInt64 = 1) throws -> Shard {
        func make(_ n: Int, _ seed: UInt64) throws -> LabeledImages {
            var rng = SeededGenerator(seed: seed)
            var pixels: [UInt8] = [], labels: [Int] = []
            pixels.reserveCapacity(n * 144)
            for _ in 0..<n {
                let k = Int(rng.next() % 4)
                labels.append(k)
                for y in 0..<12 {
                    for x in 0..<12 {
                        let lit = (y / 6) * 2 + (x / 6) == k
                        pixels.append(UInt8(Int(rng.next() % 60) + (lit ? 150 : 0)))
                    }
                }
            }
            return try LabeledImages(imageShape: [1, 12, 12], pixels: pixels, labels: labels, classes: 4, mean: [0.3], std: [0.3])
        }
        return Shard(name: "synthetic", train: try make(train, seed), test: try make(test, seed + 1))
    }
}
