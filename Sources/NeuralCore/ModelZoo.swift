/// The architectures apsweep builds, each scaled by a width multiplier for CPU runs.
public enum Architecture: String, CaseIterable, Sendable, Codable {
    case mlp, lenet5, vggSmall = "vgg-small", alexnet, vgg11, vgg11bn = "vgg11-bn", vgg16, vgg16bn = "vgg16-bn"
    case resnet20, resnet18, resnet50, vit
}

/// Everything needed to build a model: architecture, width multiplier, input and classes.
public struct ModelSpec: Sendable, Equatable, Codable {
    public var architecture: Architecture
    /// Multiplies every hidden channel / unit count (rounded, at least 1).
    public var width: Double
    /// [C, H, W] of one input image.
    public var inputShape: [Int]
    public var classes: Int
    /// ViT only: patch size, embedding dimension, encoder depth, heads, MLP dimension.
    public var patch: Int, dim: Int, depth: Int, heads: Int, mlpDim: Int
    /// Dropout probability where the architecture has dropout (AlexNet, VGG, ViT).
    public var dropout: Float

    public init(_ architecture: Architecture, width: Double = 1, inputShape: [Int] = [1, 28, 28], classes: Int = 10,
                patch: Int = 7, dim: Int = 64, depth: Int = 4, heads: Int = 4, mlpDim: Int? = nil, dropout: Float = 0) {
        self.architecture = architecture
        self.width = width
        self.inputShape = inputShape
        self.classes = classes
        self.patch = patch
        self.dim = dim
        self.depth = depth
        self.heads = heads
        self.mlpDim = mlpDim ?? 4 * dim
        self.dropout = dropout
    }

    public var name: String { architecture.rawValue }

    enum CodingKeys: String, CodingKey {
        case architecture, width, classes, patch, dim, depth, heads, dropout
        case inputShape = "input_shape", mlpDim = "mlp_dim"
    }

    /// Decodes snake_case keys; everything but `architecture` may be left out.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let dim = try c.decodeIfPresent(Int.self, forKey: .dim) ?? 64
        self.init(try c.decode(Architecture.self, forKey: .architecture),
                  width: try c.decodeIfPresent(Double.self, forKey: .width) ?? 1,
                  inputShape: try c.decodeIfPresent([Int].self, forKey: .inputShape) ?? [1, 28, 28],
                  classes: try c.decodeIfPresent(Int.self, forKey: .classes) ?? 10,
                  patch: try c.decodeIfPresent(Int.self, forKey: .patch) ?? 7, dim: dim,
                  depth: try c.decodeIfPresent(Int.self, forKey: .depth) ?? 4,
                  heads: try c.decodeIfPresent(Int.self, forKey: .heads) ?? 4,
                  mlpDim: try c.decodeIfPresent(Int.self, forKey: .mlpDim),
                  dropout: try c.decodeIfPresent(Float.self, forKey: .dropout) ?? 0)
    }

    /// Builds the model with weights initialised from `seed` as PyTorch's defaults do.
    public func build(seed: UInt64) throws -> Model {
        guard inputShape.count == 3, inputShape.allSatisfy({ $0 > 0 }) else {
            throw NeuralCoreError.invalidConfiguration("input shape must be [C, H, W] with positive sizes, got \(describeShape(inputShape))")
        }
        guard classes >= 2 else { throw NeuralCoreError.invalidConfiguration("a classifier needs at least 2 classes, got \(classes)") }
        guard width > 0 else { throw NeuralCoreError.invalidConfiguration("width must be positive, got \(width)") }
        var rng = SeededGenerator(seed: seed)
        var builder = ZooBuilder(spec: self, rng: rng)
        let root = try builder.build()
        rng = builder.rng
        return Model(spec: self, root: root)
    }
}

/// Builds the layer graphs; names follow torchvision where a counterpart exists.
struct ZooBuilder {
    let spec: ModelSpec
    var rng: SeededGenerator

    func w(_ channels: Int) -> Int { max(1, Int((Double(channels) * spec.width).rounded())) }
    var c: Int { spec.inputShape[0] }
    var side: (Int, Int) { (spec.inputShape[1], spec.inputShape[2]) }

    mutating func build() throws -> Layer {
        switch spec.architecture {
        case .mlp: return mlp()
        case .lenet5: return try lenet5()
        case .vggSmall: return try vggSmall()
        case .alexnet: return try alexnet()
        case .vgg11: return try vgg([64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0], batchNorm: false)
        case .vgg11bn: return try vgg([64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0], batchNorm: true)
        case .vgg16: return try vgg(vgg16Config, batchNorm: false)
        case .vgg16bn: return try vgg(vgg16Config, batchNorm: true)
        case .resnet20: return resnetCIFAR()
        case .resnet18: return resnet(blocks: [2, 2, 2, 2], bottleneck: false)
        case .resnet50: return resnet(blocks: [3, 4, 6, 3], bottleneck: true)
        case .vit: return try vit()
        }
    }

    private let vgg16Config = [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0]

    /// fc1 → ReLU → fc2 → ReLU → fc3 on the flattened image.
    mutating func mlp() -> Layer {
        let d = spec.inputShape.reduce(1, *), h1 = w(256), h2 = w(128)
        return Sequential(named: [("", Flatten()), ("fc1", Linear(d, h1, rng: &rng)), ("", ReLU()),
                                  ("fc2", Linear(h1, h2, rng: &rng)), ("", ReLU()), ("fc3", Linear(h2, spec.classes, rng: &rng))])
    }

    private func tooSmall(_ what: String) -> NeuralCoreError {
        .invalidConfiguration("\(spec.name): input \(describeShape(spec.inputShape)) is too small for \(what)")
    }

    /// LeNet-5 with ReLU and max pooling: conv 5×5 (6, padding 2) → pool → conv 5×5 (16) → pool →
    /// 120 → 84 → classes.
    mutating func lenet5() throws -> Layer {
        var (h, wd) = side
        let c1 = w(6), c2 = w(16)
        h = h / 2; wd = wd / 2
        h = (h - 4) / 2; wd = (wd - 4) / 2
        guard h > 0, wd > 0 else { throw tooSmall("LeNet-5 (needs at least 12×12)") }
        let features = Sequential([Conv2d(c, c1, kernel: 5, padding: 2, rng: &rng), ReLU(), MaxPool2d(kernel: 2),
                                   Conv2d(c1, c2, kernel: 5, rng: &rng), ReLU(), MaxPool2d(kernel: 2)])
        let classifier = Sequential([Linear(c2 * h * wd, w(120), rng: &rng), ReLU(), Linear(w(120), w(84), rng: &rng), ReLU(),
                                     Linear(w(84), spec.classes, rng: &rng)])
        return Sequential(named: [("features", features), ("", Flatten()), ("classifier", classifier)])
    }

    /// The benchmark model: [conv3×3 32, BN, ReLU] ×2, maxpool; the same with 64 and 128;
    /// flatten; Linear 256; ReLU; Linear classes.
    mutating func vggSmall() throws -> Layer {
        var layers: [Layer] = []
        var inC = c, (h, wd) = side
        for width in [32, 64, 128] {
            for _ in 0..<2 {
                layers += [Conv2d(inC, w(width), kernel: 3, padding: 1, rng: &rng), BatchNorm.twoD(w(width)), ReLU()]
                inC = w(width)
            }
            layers.append(MaxPool2d(kernel: 2))
            h /= 2; wd /= 2
        }
        guard h > 0, wd > 0 else { throw tooSmall("vgg-small (needs at least 8×8)") }
        let classifier = Sequential([Linear(inC * h * wd, w(256), rng: &rng), ReLU(), Linear(w(256), spec.classes, rng: &rng)])
        return Sequential(named: [("features", Sequential(layers)), ("", Flatten()), ("classifier", classifier)])
    }

    /// CIFAR-style AlexNet: five 3×3 convolutions (the first with stride 2), three max pools, and
    /// torchvision's classifier layout (Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear).
    mutating func alexnet() throws -> Layer {
        let (c1, c2, c3, c4, c5) = (w(64), w(192), w(384), w(256), w(256))
        var (h, wd) = side
        h = (h + 1) / 2; wd = (wd + 1) / 2   // stride 2, padding 1, kernel 3
        h /= 2; wd /= 2
        h /= 2; wd /= 2
        h /= 2; wd /= 2
        guard h > 0, wd > 0 else { throw tooSmall("AlexNet (needs at least 16×16)") }
        let features = Sequential([
            Conv2d(c, c1, kernel: 3, stride: 2, padding: 1, rng: &rng), ReLU(), MaxPool2d(kernel: 2),
            Conv2d(c1, c2, kernel: 3, padding: 1, rng: &rng), ReLU(), MaxPool2d(kernel: 2),
            Conv2d(c2, c3, kernel: 3, padding: 1, rng: &rng), ReLU(),
            Conv2d(c3, c4, kernel: 3, padding: 1, rng: &rng), ReLU(),
            Conv2d(c4, c5, kernel: 3, padding: 1, rng: &rng), ReLU(), MaxPool2d(kernel: 2)])
        let hidden = w(4096)
        let classifier = Sequential([
            Dropout(spec.dropout, seed: rng.next()), Linear(c5 * h * wd, hidden, rng: &rng), ReLU(),
            Dropout(spec.dropout, seed: rng.next()), Linear(hidden, hidden, rng: &rng), ReLU(),
            Linear(hidden, spec.classes, rng: &rng)])
        return Sequential(named: [("features", features), ("", Flatten()), ("classifier", classifier)])
    }

    /// VGG from a torchvision configuration (0 marks a max pool), CIFAR-style classifier
    /// (512 → 512 → classes at width 1, layout as torchvision's so the last layer is classifier.6).
    /// A pool that would shrink a 1-pixel map is left out, so 28×28 inputs work.
    mutating func vgg(_ config: [Int], batchNorm: Bool) throws -> Layer {
        var layers: [Layer] = []
        var inC = c, (h, wd) = side
        for v in config {
            if v == 0 {
                if h >= 2 && wd >= 2 { layers.append(MaxPool2d(kernel: 2)); h /= 2; wd /= 2 }
            } else {
                layers.append(Conv2d(inC, w(v), kernel: 3, padding: 1, rng: &rng))
                if batchNorm { layers.append(BatchNorm.twoD(w(v))) }
                layers.append(ReLU())
                inC = w(v)
            }
        }
        let hidden = w(512)
        let classifier = Sequential([
            Linear(inC * h * wd, hidden, rng: &rng), ReLU(), Dropout(spec.dropout, seed: rng.next()),
            Linear(hidden, hidden, rng: &rng), ReLU(), Dropout(spec.dropout, seed: rng.next()),
            Linear(hidden, spec.classes, rng: &rng)])
        return Sequential(named: [("features", Sequential(layers)), ("", Flatten()), ("classifier", classifier)])
    }

    /// ResNet-20 for 32×32 inputs (He et al. 2016, CIFAR): conv 3×3 16, three stages of three
    /// BasicBlocks (16, 32, 64 channels; 1×1 projection shortcuts), global pool, fc.
    mutating func resnetCIFAR() -> Layer {
        var layers: [(String, Layer)] = [("conv1", Conv2d(c, w(16), kernel: 3, padding: 1, bias: false, rng: &rng)),
                                         ("bn1", BatchNorm.twoD(w(16))), ("", ReLU())]
        var inC = w(16)
        for (stage, planes) in [16, 32, 64].enumerated() {
            var blocks: [Layer] = []
            for b in 0..<3 {
                blocks.append(BasicBlock(inC, w(planes), stride: (stage > 0 && b == 0) ? 2 : 1, rng: &rng))
                inC = w(planes)
            }
            layers.append(("layer\(stage + 1)", Sequential(blocks)))
        }
        layers += [("", AdaptiveAvgPool2d()), ("", Flatten()), ("fc", Linear(inC, spec.classes, rng: &rng))]
        return Sequential(named: layers)
    }

    /// torchvision ResNet-18 / ResNet-50: conv 7×7 stride 2, max pool 3×3 stride 2, four stages.
    mutating func resnet(blocks: [Int], bottleneck: Bool) -> Layer {
        var layers: [(String, Layer)] = [("conv1", Conv2d(c, w(64), kernel: 7, stride: 2, padding: 3, bias: false, rng: &rng)),
                                         ("bn1", BatchNorm.twoD(w(64))), ("", ReLU()),
                                         ("", MaxPool2d(kernel: 3, stride: 2, padding: 1))]
        var inC = w(64)
        for (stage, count) in blocks.enumerated() {
            let planes = w(64 << stage)
            var stageBlocks: [Layer] = []
            for b in 0..<count {
                let stride = (stage > 0 && b == 0) ? 2 : 1
                if bottleneck {
                    stageBlocks.append(Bottleneck(inC, planes, stride: stride, rng: &rng))
                    inC = planes * Bottleneck.expansion
                } else {
                    stageBlocks.append(BasicBlock(inC, planes, stride: stride, rng: &rng))
                    inC = planes
                }
            }
            layers.append(("layer\(stage + 1)", Sequential(stageBlocks)))
        }
        layers += [("", AdaptiveAvgPool2d()), ("", Flatten()), ("fc", Linear(inC, spec.classes, rng: &rng))]
        return Sequential(named: layers)
    }

    /// Vision Transformer with torchvision's names (conv_proj, class_token, encoder.pos_embedding,
    /// encoder.layers.encoder_layer_i, encoder.ln, heads.head). Width scales dim and MLP dim.
    mutating func vit() throws -> Layer {
        let (h, wd) = side
        guard h == wd, h % spec.patch == 0 else {
            throw NeuralCoreError.invalidConfiguration("vit: the image must be square and a multiple of the patch size \(spec.patch), got \(h)×\(wd)")
        }
        let dim = w(spec.dim), mlp = w(spec.mlpDim)
        guard dim % spec.heads == 0 else {
            throw NeuralCoreError.invalidConfiguration("vit: dim \(dim) is not a multiple of heads \(spec.heads)")
        }
        var layers: [(String, Layer)] = [("", PatchEmbedding(channels: c, imageSize: h, patch: spec.patch, dim: dim, rng: &rng))]
        for i in 0..<spec.depth {
            layers.append(("encoder.layers.encoder_layer_\(i)",
                           EncoderBlock(dim: dim, heads: spec.heads, mlpDim: mlp, dropout: spec.dropout, rng: &rng)))
        }
        layers += [("encoder.ln", LayerNorm(dim, eps: 1e-6)), ("", ClassTokenSelect()),
                   ("heads.head", Linear(dim, spec.classes, rng: &rng))]
        return Sequential(named: layers)
    }
}
