import NeuralCore

/// Random augmentation for small images, as torchvision's RandomCrop(size, padding) followed by
/// RandomHorizontalFlip(): shift by up to `cropPadding` pixels in each direction (uncovered pixels
/// are 0, black, before normalisation) and mirror with probability ½.
public struct Augmentation: Sendable, Equatable {
    public var cropPadding: Int
    public var horizontalFlip: Bool
    public init(cropPadding: Int = 4, horizontalFlip: Bool = true) {
        self.cropPadding = cropPadding
        self.horizontalFlip = horizontalFlip
    }
}

/// Mini-batches over a `LabeledImages`, in a seeded random order (or in order), converted to
/// normalised Float32 one batch at a time.
///
/// The order for epoch e is a Fisher–Yates shuffle from `SeededGenerator(seed).derived(e)`, so it
/// depends only on (seed, epoch): the same on every machine and after a restart. Augmentation draws
/// come from a separate stream of the same seed and epoch. Images can be fitted to a model's input
/// on the way: a smaller image is centred on a zero (black) canvas (28×28 → 32×32), a larger one
/// is centre-cropped, and one channel is repeated to fill three.
public struct Batches: Sequence {
    public let data: LabeledImages
    public let batchSize: Int
    public let order: [Int]
    /// Keep the last batch even when it is smaller than `batchSize`.
    public let keepPartial: Bool
    public let augmentation: Augmentation?
    /// [C, H, W] of the produced images.
    public let outputShape: [Int]
    private let augmentSeed: UInt64

    /// Throws unless images of `data` can be fed to a model taking `inputShape` (same channels,
    /// or grey images repeated into any channel count; sizes are padded or cropped) with at
    /// least one output per class.
    public static func check(_ data: LabeledImages, fit inputShape: [Int], classes: Int, model: String) throws {
        guard data.classes <= classes else {
            throw DatasetError.mismatch("\(model) has \(classes) outputs; the data has \(data.classes) classes: give the model classes: \(data.classes)")
        }
        guard inputShape.count == 3, inputShape[0] == data.imageShape[0] || data.imageShape[0] == 1 else {
            throw DatasetError.mismatch("\(model) takes \(inputShape.map(String.init).joined(separator: "×")) inputs; the data's images are \(data.imageShape.map(String.init).joined(separator: "×")) (another channel count): give the model input_shape [\(data.imageShape[0]), H, W]")
        }
    }

    public init(_ data: LabeledImages, batchSize: Int, shuffleSeed: UInt64?, epoch: Int = 0, keepPartial: Bool = true,
                augmentation: Augmentation? = nil, outputShape: [Int]? = nil) {
        precondition(batchSize > 0, "batch size must be positive")
        self.data = data
        self.batchSize = batchSize
        self.keepPartial = keepPartial
        self.augmentation = augmentation
        self.outputShape = outputShape ?? data.imageShape
        precondition(self.outputShape.count == 3 && (self.outputShape[0] == data.imageShape[0] || data.imageShape[0] == 1),
                     "cannot fit images of shape \(data.imageShape) to \(self.outputShape)")
        var order = Array(0..<data.count)
        if let seed = shuffleSeed {
            var rng = SeededGenerator(seed: seed).derived(UInt64(epoch))
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
        }
        self.order = order
        var stream = SeededGenerator(seed: (shuffleSeed ?? 0) ^ 0xA5A5_5A5A).derived(UInt64(epoch))
        augmentSeed = stream.next()
    }

    /// The number of batches an epoch yields.
    public var count: Int { keepPartial ? (data.count + batchSize - 1) / batchSize : data.count / batchSize }

    public func makeIterator() -> AnyIterator<(images: Tensor, labels: [Int])> {
        var start = 0
        let inShape = data.imageShape, outShape = outputShape
        let (ci, hi, wi) = (inShape[0], inShape[1], inShape[2])
        let (co, ho, wo) = (outShape[0], outShape[1], outShape[2])
        let per = ci * hi * wi, outPer = co * ho * wo
        let plain = inShape == outShape && augmentation == nil
        // Lookup tables: byte value → normalised float, per input channel.
        let data = self.data
        let tables: [[Float]] = (0..<ci).map { ch in (0..<256).map { (Float($0) / 255 - data.mean[ch]) / data.std[ch] } }
        var rng = SeededGenerator(seed: augmentSeed)
        let order = self.order, batchSize = self.batchSize, keepPartial = self.keepPartial
        let augmentation = self.augmentation
        return AnyIterator {
            let remaining = data.count - start
            guard remaining > 0, keepPartial || remaining >= batchSize else { return nil }
            let n = Swift.min(batchSize, remaining)
            var labels = [Int](repeating: 0, count: n)
            let images = Tensor(shape: [n] + outShape, unsafeUninitialized: { out in
                data.pixels.withUnsafeBufferPointer { px in
                    for b in 0..<n {
                        let index = order[start + b]
                        labels[b] = data.labels[index]
                        let src = px.baseAddress! + index * per, dst = out + b * outPer
                        if plain {
                            for ch in 0..<ci {
                                let table = tables[ch]
                                for j in 0..<(hi * wi) { dst[ch * hi * wi + j] = table[Int(src[ch * hi * wi + j])] }
                            }
                            continue
                        }
                        // dst(c, y, x) = src(c mod ci, y − oy, x' − ox), x' = mirrored x when flipped.
                        var oy = (ho - hi) / 2, ox = (wo - wi) / 2
                        var flip = false
                        if let a = augmentation {
                            if a.cropPadding > 0 {
                                let span = UInt64(2 * a.cropPadding + 1)
                                oy += Int(rng.next() % span) - a.cropPadding
                                ox += Int(rng.next() % span) - a.cropPadding
                            }
                            if a.horizontalFlip { flip = rng.next() & 1 == 1 }
                        }
                        for c in 0..<co {
                            let sc = c % ci, table = tables[sc]
                            let zero = table[0]
                            for y in 0..<ho {
                                let sy = y - oy
                                let row = dst + (c * ho + y) * wo
                                if sy < 0 || sy >= hi {
                                    for x in 0..<wo { row[x] = zero }
                                    continue
                                }
                                let srow = src + (sc * hi + sy) * wi
                                for x in 0..<wo {
                                    let sx = (flip ? wo - 1 - x : x) - ox
                                    row[x] = (sx >= 0 && sx < wi) ? table[Int(srow[sx])] : zero
                                }
                            }
                        }
                    }
                }
            })
            start += n
            return (images, labels)
        }
    }
}
