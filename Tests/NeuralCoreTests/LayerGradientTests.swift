@testable import NeuralCore
import XCTest

/// Every layer's backward against finite differences (see GradientCheck for the tolerances).
final class LayerGradientTests: XCTestCase {
    let gc = GradientCheck()
    /// Blocks with batch norm feeding ReLU put many values near the kink: a smaller step.
    let fine = GradientCheck(h: 1e-3, atol: 5e-3, rtol: 2e-2)

    override func setUp() {
        BLAS.threads = 1
        Compute.threads = 1
    }

    func testLinear() throws {
        var rng = SeededGenerator(seed: 1)
        try gc.check(Linear(5, 4, rng: &rng), input: randomTensor([3, 5], seed: 2))
        try gc.check(Linear(5, 4, bias: false, rng: &rng), input: randomTensor([2, 3, 5], seed: 3))
    }

    func testConv2dPaddedStrideOne() throws {
        var rng = SeededGenerator(seed: 1)
        try gc.check(Conv2d(2, 3, kernel: 3, padding: 1, rng: &rng), input: randomTensor([2, 2, 5, 5], seed: 4))
    }

    func testConv2dWinogradSameAndValid() throws {
        // Winograd F(2×2, 3×3) forced on small layers: odd and even sizes, padding 1 and 0, no bias.
        var rng = SeededGenerator(seed: 1)
        for (shape, padding, bias) in [([2, 2, 5, 5], 1, true), ([2, 3, 4, 6], 1, false), ([1, 2, 7, 5], 0, true), ([3, 2, 4, 4], 2, true)] {
            let conv = Conv2d(shape[1], 3, kernel: 3, padding: padding, bias: bias, rng: &rng)
            conv.algorithm = .winograd
            try gc.check(conv, input: randomTensor(shape, seed: 40 + UInt64(shape[2])))
        }
    }

    func testConv2dStrideTwoNoBias() throws {
        var rng = SeededGenerator(seed: 1)
        try gc.check(Conv2d(3, 4, kernel: 3, stride: 2, bias: false, rng: &rng), input: randomTensor([2, 3, 7, 6], seed: 5))
        try gc.check(Conv2d(2, 2, kernel: 5, stride: 2, padding: 2, rng: &rng), input: randomTensor([3, 2, 6, 6], seed: 6))
    }

    func testConv2dPointwise() throws {
        var rng = SeededGenerator(seed: 1)
        try gc.check(Conv2d(4, 3, kernel: 1, rng: &rng), input: randomTensor([2, 4, 3, 3], seed: 7))
    }

    func testConv2dManyImagesPerChunk() throws {
        // 2×2 output maps: dozens of images share one GEMM, exercising the gather/scatter path.
        var rng = SeededGenerator(seed: 1)
        try gc.check(Conv2d(2, 3, kernel: 3, rng: &rng), input: randomTensor([40, 2, 4, 4], seed: 8))
        // A "same" 3×3 on 2×2 maps (im2col, not the row form) and a pointwise convolution on 2×2
        // maps (its images gathered into one GEMM).
        try gc.check(Conv2d(3, 4, kernel: 3, padding: 1, rng: &rng), input: randomTensor([6, 3, 2, 2], seed: 9))
        try gc.check(Conv2d(4, 3, kernel: 1, rng: &rng), input: randomTensor([6, 4, 2, 2], seed: 10))
    }

    func testMaxPool() throws {
        try gc.check(MaxPool2d(kernel: 2), input: wellSeparatedTensor([2, 2, 4, 6], seed: 9))
        try gc.check(MaxPool2d(kernel: 3, stride: 2, padding: 1), input: wellSeparatedTensor([1, 2, 5, 5], seed: 10))
    }

    func testAvgPool() throws {
        try gc.check(AvgPool2d(kernel: 2), input: randomTensor([2, 2, 4, 5], seed: 11))
        try gc.check(AvgPool2d(kernel: 3, stride: 2, padding: 1), input: randomTensor([1, 2, 5, 5], seed: 12))
    }

    func testAdaptiveAvgPool() throws {
        try gc.check(AdaptiveAvgPool2d(), input: randomTensor([2, 3, 3, 4], seed: 13))
    }

    func testBatchNorm2dTrainAndEval() throws {
        let bn = BatchNorm.twoD(3)
        bn.weight.value = randomTensor([3], seed: 14)
        bn.bias.value = randomTensor([3], seed: 15)
        try gc.check(bn, input: randomTensor([4, 3, 3, 3], seed: 16))
        bn.keepsEvalInput = true
        bn.runningMean.value = randomTensor([3], seed: 17, scale: 0.3)
        bn.runningVar.value = Tensor(shape: [3], scalars: [0.5, 1.5, 2.0])
        try gc.check(bn, input: randomTensor([4, 3, 3, 3], seed: 18), mode: .eval)
    }

    /// 1×1 feature maps (ResNet-18/50's last stage on 32×32 inputs): batch norm over N values,
    /// a padded 3×3 convolution that sees only its centre tap, a strided 1×1 projection.
    func testOnePixelFeatureMaps() throws {
        let bn = BatchNorm.twoD(3)
        bn.weight.value = randomTensor([3], seed: 40)
        bn.bias.value = randomTensor([3], seed: 41)
        try gc.check(bn, input: randomTensor([4, 3, 1, 1], seed: 42))
        var rng = SeededGenerator(seed: 43)
        try gc.check(Conv2d(3, 4, kernel: 3, padding: 1, rng: &rng), input: randomTensor([2, 3, 1, 1], seed: 44))
        try gc.check(Conv2d(3, 4, kernel: 1, stride: 2, bias: false, rng: &rng), input: randomTensor([2, 3, 2, 2], seed: 45))
        try gc.check(Conv2d(8, 8, kernel: 3, padding: 1, rng: &rng), input: randomTensor([4, 8, 1, 1], seed: 46))
        try gc.check(MaxPool2d(kernel: 3, stride: 2, padding: 1), input: randomTensor([2, 3, 2, 2], seed: 47))
        try gc.check(AdaptiveAvgPool2d(), input: randomTensor([2, 3, 1, 1], seed: 48))
    }

    func testBatchNorm1d() throws {
        let bn = BatchNorm.oneD(5)
        bn.weight.value = randomTensor([5], seed: 19)
        try gc.check(bn, input: randomTensor([6, 5], seed: 20))
        try gc.check(BatchNorm.oneD(2), input: randomTensor([3, 2, 4], seed: 21))
    }

    func testReLU() throws {
        try gc.check(ReLU(), input: wellSeparatedTensor([3, 7], seed: 22))
    }

    /// GELU's own erf and exp (written to vectorise) against Float64 libm over their whole
    /// range: erf within 4e-7 absolute, e^y within 3e-7 relative down to e⁻⁸⁷.
    func testGELUsErfAndExpAgainstLibm() {
        var worstErf = 0.0, worstExp = 0.0
        for i in 0...200_000 {
            let x = -6 + 12 * Double(i) / 200_000
            worstErf = max(worstErf, abs(Double(GELU.erf(Float(x))) - Foundation.erf(Double(Float(x)))))
            let y = -87 * Double(i) / 200_000
            let exact = Foundation.exp(Double(Float(y)))
            worstExp = max(worstExp, abs(Double(GELU.expNonPositive(Float(y))) - exact) / exact)
        }
        XCTAssertLessThan(worstErf, 4e-7)
        XCTAssertLessThan(worstExp, 3e-7)
        XCTAssertEqual(GELU.erf(.infinity), 1)
        XCTAssertEqual(GELU.erf(-.infinity), -1)
        XCTAssertEqual(GELU.expNonPositive(0), 1)
        XCTAssertLessThan(GELU.expNonPositive(-1e6), 1e-37)
        // A diverged network's NaN goes through as NaN (and does not trap in the conversion).
        XCTAssert(GELU.erf(.nan).isNaN)
        XCTAssertLessThan(GELU.expNonPositive(.nan), 1e-37)
        let gelu = GELU()
        let y = try! gelu.forward(Tensor(shape: [3], scalars: [.nan, 1, -10]), mode: .train)
        let dx = try! gelu.backward(Tensor(shape: [3], scalars: [1, 1, 1]))
        XCTAssert(y.scalars[0].isNaN && dx.scalars[0].isNaN, "\(y.scalars) \(dx.scalars)")
        XCTAssertEqual(y.scalars[1], 0.8413447, accuracy: 1e-6)
        XCTAssertEqual(y.scalars[2], 0, accuracy: 1e-6)
        XCTAssertEqual(dx.scalars[1], 1.0833155, accuracy: 1e-6)   // Φ(1) + φ(1)
        XCTAssertEqual(dx.scalars[2], 0, accuracy: 1e-6)
    }

    func testGELU() throws {
        try gc.check(GELU(), input: randomTensor([4, 6], seed: 23, scale: 2))
    }

    func testFlatten() throws {
        try gc.check(Flatten(), input: randomTensor([2, 3, 2, 2], seed: 24))
    }

    func testLayerNorm() throws {
        let ln = LayerNorm(6)
        ln.weight.value = randomTensor([6], seed: 25)
        ln.bias.value = randomTensor([6], seed: 26)
        try gc.check(ln, input: randomTensor([2, 3, 6], seed: 27))
    }

    func testMultiheadSelfAttention() throws {
        var rng = SeededGenerator(seed: 28)
        try gc.check(MultiheadSelfAttention(dim: 8, heads: 2, rng: &rng), input: randomTensor([2, 5, 8], seed: 29))
    }

    func testBasicBlockWithDownsample() throws {
        var rng = SeededGenerator(seed: 30)
        // Eval mode (fixed statistics) keeps the loss smooth; train mode is covered by the BN test.
        let block = BasicBlock(2, 4, stride: 2, rng: &rng)
        try fine.check(block, input: randomTensor([3, 2, 6, 6], seed: 31))
    }

    func testBottleneck() throws {
        var rng = SeededGenerator(seed: 32)
        try fine.check(Bottleneck(4, 2, stride: 1, rng: &rng), input: randomTensor([3, 4, 4, 4], seed: 33))
    }

    func testPatchEmbedding() throws {
        var rng = SeededGenerator(seed: 34)
        try gc.check(PatchEmbedding(channels: 2, imageSize: 6, patch: 3, dim: 5, rng: &rng), input: randomTensor([2, 2, 6, 6], seed: 35))
    }

    func testEncoderBlock() throws {
        var rng = SeededGenerator(seed: 36)
        try gc.check(EncoderBlock(dim: 8, heads: 2, mlpDim: 12, rng: &rng), input: randomTensor([2, 4, 8], seed: 37))
    }

    func testClassTokenSelect() throws {
        try gc.check(ClassTokenSelect(), input: randomTensor([2, 3, 4], seed: 38))
    }

    func testDropoutMasksAndScalesConsistently() throws {
        let drop = Dropout(0.4, seed: 39)
        let x = wellSeparatedTensor([50, 40], seed: 40)
        let y = try drop.forward(x, mode: .train)
        let dy = randomTensor([50, 40], seed: 41)
        let dx = try drop.backward(dy)
        var kept = 0
        for i in 0..<x.count {
            if y.scalars[i] == 0 {
                XCTAssertEqual(dx.scalars[i], 0)
            } else {
                kept += 1
                XCTAssertEqual(y.scalars[i], x.scalars[i] / 0.6, accuracy: 1e-5 * abs(x.scalars[i]) + 1e-6)
                XCTAssertEqual(dx.scalars[i], dy.scalars[i] / 0.6, accuracy: 1e-5 * abs(dy.scalars[i]) + 1e-6)
            }
        }
        // 2,000 Bernoulli(0.6) draws: mean 1,200, sd ≈ 22; ±5 sd.
        XCTAssert(abs(kept - 1200) < 110, "kept \(kept) of 2000 at keep probability 0.6")
        XCTAssertEqual(try drop.forward(x, mode: .eval), x)
        // Same seed, same masks.
        XCTAssertEqual(try Dropout(0.4, seed: 39).forward(x, mode: .train), y)
    }

    func testSmallLeNetEndToEnd() throws {
        let model = try ModelSpec(.lenet5, width: 0.5, inputShape: [1, 12, 12], classes: 3).build(seed: 42)
        let x = randomTensor([2, 1, 12, 12], seed: 43)
        var gcModel = GradientCheck()
        gcModel.samples = 12
        try gcModel.check(model.root, input: x, checkInput: false)
    }
}
