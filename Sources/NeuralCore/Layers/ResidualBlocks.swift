/// torchvision's residual blocks. Convolutions have no bias; every one is followed by batch norm.

/// The shortcut of a residual block: identity, or `downsample` = Conv2d 1×1 (stride s) + BatchNorm2d
/// when the stride or the channel count changes.
private func makeDownsample(_ inC: Int, _ outC: Int, stride: Int, rng: inout SeededGenerator) -> Sequential? {
    guard stride != 1 || inC != outC else { return nil }
    return Sequential([Conv2d(inC, outC, kernel: 1, stride: stride, bias: false, rng: &rng), BatchNorm.twoD(outC)])
}

/// ResNet BasicBlock: y = ReLU(bn2(conv2(ReLU(bn1(conv1(x))))) + shortcut(x)), 3×3 convolutions,
/// the first with the block's stride. Shapes: x [N, C, H, W] → y [N, P, H/s, W/s].
public final class BasicBlock: Layer {
    public var path = ""
    public let conv1: Conv2d, bn1: BatchNorm, relu1 = ReLU()
    public let conv2: Conv2d, bn2: BatchNorm, relu2 = ReLU()
    public let downsample: Sequential?

    public init(_ inC: Int, _ planes: Int, stride: Int = 1, rng: inout SeededGenerator) {
        conv1 = Conv2d(inC, planes, kernel: 3, stride: stride, padding: 1, bias: false, rng: &rng)
        bn1 = .twoD(planes)
        conv2 = Conv2d(planes, planes, kernel: 3, padding: 1, bias: false, rng: &rng)
        bn2 = .twoD(planes)
        downsample = makeDownsample(inC, planes, stride: stride, rng: &rng)
    }

    public func namedChildren() -> [(String, Layer)] {
        [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2)] + (downsample.map { [("downsample", $0)] } ?? [])
    }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        var h = try bn2.forward(conv2.forward(relu1.forward(bn1.forward(conv1.forward(x, mode: mode), mode: mode), mode: mode), mode: mode), mode: mode)
        add(&h, try downsample?.forward(x, mode: mode) ?? x)
        return try relu2.forward(h, mode: mode)
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        let ds = try relu2.backward(dy)
        var dx = try conv1.backward(bn1.backward(relu1.backward(conv2.backward(bn2.backward(ds)))))
        add(&dx, try downsample?.backward(ds) ?? ds)
        return dx
    }
}

/// ResNet Bottleneck (torchvision v1.5: the stride sits on the 3×3 convolution):
/// 1×1 (C → w), 3×3 stride s (w → w), 1×1 (w → 4·planes·…), each with batch norm, ReLU after the
/// first two and after the residual sum. Shapes: x [N, C, H, W] → y [N, 4·planes, H/s, W/s].
public final class Bottleneck: Layer {
    public static let expansion = 4
    public var path = ""
    public let conv1: Conv2d, bn1: BatchNorm, relu1 = ReLU()
    public let conv2: Conv2d, bn2: BatchNorm, relu2 = ReLU()
    public let conv3: Conv2d, bn3: BatchNorm, relu3 = ReLU()
    public let downsample: Sequential?

    public init(_ inC: Int, _ planes: Int, stride: Int = 1, rng: inout SeededGenerator) {
        let outC = planes * Bottleneck.expansion
        conv1 = Conv2d(inC, planes, kernel: 1, bias: false, rng: &rng)
        bn1 = .twoD(planes)
        conv2 = Conv2d(planes, planes, kernel: 3, stride: stride, padding: 1, bias: false, rng: &rng)
        bn2 = .twoD(planes)
        conv3 = Conv2d(planes, outC, kernel: 1, bias: false, rng: &rng)
        bn3 = .twoD(outC)
        downsample = makeDownsample(inC, outC, stride: stride, rng: &rng)
    }

    public func namedChildren() -> [(String, Layer)] {
        [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2), ("conv3", conv3), ("bn3", bn3)]
            + (downsample.map { [("downsample", $0)] } ?? [])
    }

    public func forward(_ x: Tensor, mode: Mode) throws -> Tensor {
        var h = try relu1.forward(bn1.forward(conv1.forward(x, mode: mode), mode: mode), mode: mode)
        h = try relu2.forward(bn2.forward(conv2.forward(h, mode: mode), mode: mode), mode: mode)
        h = try bn3.forward(conv3.forward(h, mode: mode), mode: mode)
        add(&h, try downsample?.forward(x, mode: mode) ?? x)
        return try relu3.forward(h, mode: mode)
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        let ds = try relu3.backward(dy)
        var g = try conv3.backward(bn3.backward(ds))
        g = try conv2.backward(bn2.backward(relu2.backward(g)))
        var dx = try conv1.backward(bn1.backward(relu1.backward(g)))
        add(&dx, try downsample?.backward(ds) ?? ds)
        return dx
    }
}
