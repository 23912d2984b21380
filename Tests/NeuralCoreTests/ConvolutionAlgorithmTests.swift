@testable import NeuralCore
import XCTest

/// Winograd F(4×4, 3×3) against the GEMM forms on the same layer: output, input gradient, weight
/// and bias gradients, over the geometries that stress its edges (odd sizes, half tiles, valid
/// padding, chunks of many images, two threads).
final class ConvolutionAlgorithmTests: XCTestCase {
    override func tearDown() {
        BLAS.threads = 1
    }

    private func run(_ conv: Conv2d, _ algorithm: Conv2d.Algorithm, _ x: Tensor, _ dy: Tensor) throws -> [[Float]] {
        conv.algorithm = algorithm
        conv.weight.zeroGrad()
        conv.bias?.zeroGrad()
        let y = try conv.forward(x, mode: .train)
        let dx = try conv.backward(dy)
        return [y.scalars, dx.scalars, conv.weight.grad.scalars, conv.bias?.grad.scalars ?? []]
    }

    private func largestRelativeDifference(_ a: [Float], _ b: [Float]) -> Float {
        let scale = max(b.map(abs).max() ?? 0, 1e-6)
        return zip(a, b).map { abs($0 - $1) }.max().map { $0 / scale } ?? 0
    }

    func testWinogradAgreesWithGEMM() throws {
        let cases: [(shape: [Int], oc: Int, padding: Int, threads: Int)] = [
            ([2, 8, 28, 28], 16, 1, 1),     // the vgg-small case, whole tiles
            ([3, 12, 7, 7], 10, 1, 1),      // odd size: half tiles at the right and bottom
            ([40, 9, 5, 6], 7, 1, 2),       // many images per chunk, several chunks, two workers
            ([2, 8, 9, 8], 5, 0, 1),        // valid convolution, odd output height
            ([5, 16, 14, 14], 32, 1, 2),
        ]
        for (i, c) in cases.enumerated() {
            BLAS.threads = c.threads
            var rng = SeededGenerator(seed: 7 + UInt64(i))
            let conv = Conv2d(c.shape[1], c.oc, kernel: 3, padding: c.padding, rng: &rng)
            let x = randomTensor(c.shape, seed: 100 + UInt64(i))
            let (oh, ow) = conv.outputSize(c.shape[2], c.shape[3])
            let dy = randomTensor([c.shape[0], c.oc, oh, ow], seed: 200 + UInt64(i))
            let gemm = try run(conv, .gemm, x, dy), winograd = try run(conv, .winograd, x, dy)
            for (k, name) in ["output", "input gradient", "weight gradient", "bias gradient"].enumerated() {
                XCTAssertEqual(gemm[k].count, winograd[k].count, "\(name) size, case \(c)")
                let diff = largestRelativeDifference(winograd[k], gemm[k])
                XCTAssertLessThan(diff, 2e-5, "\(name): largest difference relative to the largest value, case \(c)")
            }
        }
    }

    /// Small maps (ResNet-18's late stages on 32×32 inputs) are split over both threads in as
    /// many chunks each; every form gives what one thread gives, up to rounding.
    func testSmallMapsSplitOverTwoThreadsGiveTheOneThreadResult() throws {
        let cases: [(shape: [Int], oc: Int, stride: Int, algorithm: Conv2d.Algorithm)] = [
            ([13, 24, 4, 4], 24, 1, .gemm),        // row form, 4×4
            ([13, 24, 2, 2], 16, 1, .gemm),        // row form, 2×2: one chunk of 13 before
            ([11, 16, 4, 4], 16, 2, .gemm),        // im2col form, strided
            ([9, 16, 6, 6], 16, 1, .winograd),
        ]
        for (i, c) in cases.enumerated() {
            var rng = SeededGenerator(seed: 30 + UInt64(i))
            let conv = Conv2d(c.shape[1], c.oc, kernel: 3, stride: c.stride, padding: 1, rng: &rng)
            let x = randomTensor(c.shape, seed: 300 + UInt64(i))
            let (oh, ow) = conv.outputSize(c.shape[2], c.shape[3])
            let dy = randomTensor([c.shape[0], c.oc, oh, ow], seed: 400 + UInt64(i))
            BLAS.threads = 1
            let one = try run(conv, c.algorithm, x, dy)
            BLAS.threads = 2
            let two = try run(conv, c.algorithm, x, dy)
            for (k, name) in ["output", "input gradient", "weight gradient", "bias gradient"].enumerated() {
                XCTAssertEqual(one[k].count, two[k].count, "\(name), case \(c)")
                XCTAssertLessThan(largestRelativeDifference(two[k], one[k]), 1e-5, "\(name): 1 vs 2 threads, case \(c)")
            }
        }
    }

    func testAutomaticChoiceKeepsNarrowFirstLayersOnGEMMAndIsDeterministic() throws {
        // The automatic choice must not change results beyond rounding, and runs repeat bit for bit.
        var rng = SeededGenerator(seed: 3)
        let conv = Conv2d(16, 16, kernel: 3, padding: 1, rng: &rng)
        let x = randomTensor([4, 16, 10, 10], seed: 4), dy = randomTensor([4, 16, 10, 10], seed: 5)
        let first = try run(conv, .automatic, x, dy), again = try run(conv, .automatic, x, dy)
        XCTAssertTrue(first == again, "two runs differ")
        XCTAssertTrue(first == (try run(conv, .winograd, x, dy)), "16 input channels: automatic is Winograd")
        XCTAssertFalse(first[0] == (try run(conv, .gemm, x, dy))[0], "the two algorithms round differently")
        // A first layer (1 input channel, no input gradient) stays on the GEMM forms.
        let narrow = Conv2d(1, 8, kernel: 3, padding: 1, rng: &rng)
        narrow.computesInputGradient = false
        let x1 = randomTensor([2, 1, 6, 6], seed: 6), dy1 = randomTensor([2, 8, 6, 6], seed: 7)
        XCTAssertTrue(try run(narrow, .automatic, x1, dy1) == (try run(narrow, .gemm, x1, dy1)), "1 input channel: automatic is GEMM")
    }

    /// Maps no larger than the kernel's reach run a smaller convolution of the used taps: the
    /// same numbers as the full GEMM form, and zero weight gradient on the taps never used.
    func testKernelsLargerThanTheMapRunAsTheirUsedTaps() throws {
        let cases: [(shape: [Int], oc: Int, stride: Int, padding: Int, first: Int, k: Int)] = [
            ([6, 16, 1, 1], 8, 1, 1, 1, 1),   // ResNet's last stage on 32×32: the centre tap only
            ([4, 8, 2, 2], 16, 2, 1, 1, 2),   // its strided entry: a 2×2 corner
            ([3, 8, 2, 2], 4, 1, 2, 0, 3),    // padding 2 on a 2×2 map: every tap meets the image somewhere
        ]
        var rng = SeededGenerator(seed: 11)
        for (i, c) in cases.enumerated() {
            let conv = Conv2d(c.shape[1], c.oc, kernel: 3, stride: c.stride, padding: c.padding, rng: &rng)
            let geometry = Conv2d.Geometry(c: c.shape[1], h: c.shape[2], w: c.shape[3], oc: c.oc, k: 3, s: c.stride, p: c.padding)
            let reduced = conv.reduction(geometry)
            if c.k == 3 { XCTAssertNil(reduced, "case \(i): every tap is used"); continue }
            XCTAssertEqual(reduced?.first, c.first, "case \(i)")
            XCTAssertEqual(reduced?.k, c.k, "case \(i)")
            let x = randomTensor(c.shape, seed: 300 + UInt64(i))
            let (oh, ow) = conv.outputSize(c.shape[2], c.shape[3])
            let dy = randomTensor([c.shape[0], c.oc, oh, ow], seed: 400 + UInt64(i))
            let full = try run(conv, .gemm, x, dy), small = try run(conv, .automatic, x, dy)
            for (k, name) in ["output", "input gradient", "weight gradient", "bias gradient"].enumerated() {
                XCTAssertEqual(full[k].count, small[k].count, "\(name) size, case \(i)")
                XCTAssertLessThan(largestRelativeDifference(small[k], full[k]), 2e-6, "\(name), case \(i)")
            }
        }
    }
}
