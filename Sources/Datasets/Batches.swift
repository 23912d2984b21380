import NeuralCore

/// Mini-batches over a `LabeledImages`, in a seeded random order (or in order), converted to
/// normalised Float32 one batch at a time.
///
/// The order for epoch e is a Fisher–Yates shuffle from `SeededGenerator(seed).derived(e)`, so it
/// depends only on (seed, epoch): the same on every machine and after a restart.
public struct Batches: Sequence {
    public let data: LabeledImages
    public let batchSize: Int
    public let order: [Int]
    /// Keep the last batch even when it is smaller than `batchSize`.
    public let keepPartial: Bool

    public init(_ data: LabeledImages, batchSize: Int, shuffleSeed: UInt64?, epoch: Int = 0, keepPartial: Bool = true) {
        precondition(batchSize > 0, "batch size must be positive")
        self.data = data
        self.batchSize = batchSize
        self.keepPartial = keepPartial
        var order = Array(0..<data.count)
        if let seed = shuffleSeed {
            var rng = SeededGenerator(seed: seed).derived(UInt64(epoch))
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
        }
        self.order = order
    }

    /// The number of batches an epoch yields.
    public var count: Int { keepPartial ? (data.count + batchSize - 1) / batchSize : data.count / batchSize }

    public func makeIterator() -> AnyIterator<(images: Tensor, labels: [Int])> {
        var start = 0
        let per = data.imageShape.reduce(1, *), c = data.imageShape[0], plane = per / c
        // Lookup tables: byte value → normalised float, per channel.
        let tables: [[Float]] = (0..<c).map { ch in (0..<256).map { (Float($0) / 255 - data.mean[ch]) / data.std[ch] } }
        return AnyIterator {
            let remaining = data.count - start
            guard remaining > 0, keepPartial || remaining >= batchSize else { return nil }
            let n = Swift.min(batchSize, remaining)
            var labels = [Int](repeating: 0, count: n)
            let images = Tensor(shape: [n] + data.imageShape, unsafeUninitialized: { out in
                data.pixels.withUnsafeBufferPointer { px in
                    for b in 0..<n {
                        let index = order[start + b]
                        labels[b] = data.labels[index]
                        for ch in 0..<c {
                            let table = tables[ch]
                            let src = px.baseAddress! + index * per + ch * plane, dst = out + b * per + ch * plane
                            for j in 0..<plane { dst[j] = table[Int(src[j])] }
                        }
                    }
                }
            })
            start += n
            return (images, labels)
        }
    }
}
