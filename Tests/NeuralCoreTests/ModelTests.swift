import Foundation
import NeuralCore
import XCTest

final class ModelTests: XCTestCase {
    override func setUp() {
        BLAS.threads = 1
        Compute.threads = 1
    }

    func testEveryArchitectureBuildsAndRunsForwardAndBackward() throws {
        let cases: [(ModelSpec, Int)] = [
            (ModelSpec(.mlp, width: 0.25), 2),
            (ModelSpec(.lenet5), 2),
            (ModelSpec(.vggSmall, width: 0.25), 2),
            (ModelSpec(.alexnet, width: 0.05, inputShape: [3, 32, 32]), 2),
            (ModelSpec(.vgg11bn, width: 0.05, inputShape: [3, 32, 32]), 2),
            (ModelSpec(.vgg16, width: 0.05), 2),
            (ModelSpec(.resnet20, width: 0.25, inputShape: [3, 32, 32]), 2),
            (ModelSpec(.resnet18, width: 0.125, inputShape: [3, 32, 32]), 2),
            (ModelSpec(.resnet50, width: 0.0625, inputShape: [3, 32, 32]), 2),
            (ModelSpec(.vit, inputShape: [1, 28, 28], patch: 7, dim: 16, depth: 2, heads: 2), 2),
        ]
        for (spec, n) in cases {
            let model = try spec.build(seed: 3)
            let x = randomTensor([n] + spec.inputShape, seed: 4)
            let y = try model.forward(x, mode: .train)
            XCTAssertEqual(y.shape, [n, spec.classes], spec.name)
            try model.backward(Tensor(shape: y.shape, repeating: 0.1))
            XCTAssertGreaterThan(model.parameterCount, 0, spec.name)
            XCTAssertFalse(model.prunableWeights.isEmpty, spec.name)
            XCTAssertEqual(model.prunableWeights.last?.0, model.classifierWeightKey, spec.name)
            XCTAssertEqual(model.namedParameters().first { $0.0 == model.classifierWeightKey }?.1.value.shape.first, spec.classes, spec.name)
        }
    }

    func testClassifierAndPrunableLayersOfLeNet() throws {
        let model = try ModelSpec(.lenet5).build(seed: 0)
        XCTAssertEqual(model.classifierWeightKey, "classifier.4.weight")
        XCTAssertEqual(model.prunableWeights.map(\.0),
                       ["features.0.weight", "features.3.weight", "classifier.0.weight", "classifier.2.weight", "classifier.4.weight"])
        XCTAssertEqual(model.parameterCount, 61_706)   // as torch's LeNet-5 twin in Scripts/torch_models.py
    }

    func testWidthMultiplierScalesChannels() throws {
        let full = try ModelSpec(.vggSmall).build(seed: 0), half = try ModelSpec(.vggSmall, width: 0.5).build(seed: 0)
        XCTAssertEqual(full.namedParameters().first!.1.value.shape, [32, 1, 3, 3])
        XCTAssertEqual(half.namedParameters().first!.1.value.shape, [16, 1, 3, 3])
    }

    /// Same seed, same thread count: bit-identical weights after several steps (with dropout).
    func testTrainingIsDeterministic() throws {
        func run() throws -> [Float] {
            let model = try ModelSpec(.alexnet, width: 0.05, inputShape: [1, 28, 28], dropout: 0.3).build(seed: 11)
            let trainer = Trainer(model: model, optimizer: SGD(model.parameters, learningRate: 0.05, momentum: 0.9))
            let x = randomTensor([8, 1, 28, 28], seed: 12)
            for _ in 0..<4 { try trainer.step(x, labels: [0, 1, 2, 3, 4, 5, 6, 7]) }
            return model.parameters.flatMap(\.value.scalars)
        }
        let a = try run(), b = try run()
        XCTAssertEqual(a, b)
        let c = try ModelSpec(.alexnet, width: 0.05, inputShape: [1, 28, 28]).build(seed: 12).parameters.flatMap(\.value.scalars)
        XCTAssertNotEqual(Array(a.prefix(100)), Array(c.prefix(100)), "another seed gives other weights")
    }

    func testShapeMismatchNamesLayerAndShapes() throws {
        let model = try ModelSpec(.lenet5).build(seed: 0)
        XCTAssertThrowsError(try model.forward(Tensor(shape: [2, 3, 28, 28]), mode: .eval)) { error in
            XCTAssertEqual("\(error)", "layer lenet5 input: expected input of shape [N, 1, 28, 28], got [2, 3, 28, 28]")
        }
        var rng = SeededGenerator(seed: 0)
        let conv = Conv2d(3, 4, kernel: 3, rng: &rng)
        conv.path = "features.0"
        XCTAssertThrowsError(try conv.forward(Tensor(shape: [1, 2, 8, 8]), mode: .train)) { error in
            XCTAssertEqual("\(error)", "layer features.0: expected input of shape [N, 3, H, W] with H, W ≥ 3, got [1, 2, 8, 8]")
        }
        let linear = Linear(4, 2, rng: &rng)
        XCTAssertThrowsError(try linear.backward(Tensor(shape: [1, 2]))) { error in
            XCTAssertEqual(error as? NeuralCoreError, .backwardWithoutForward(layer: ""))
        }
        XCTAssertThrowsError(try SoftmaxCrossEntropy().evaluate(logits: Tensor(shape: [2, 3]), labels: [0, 5]))
        XCTAssertThrowsError(try ModelSpec(.lenet5, inputShape: [1, 8, 8]).build(seed: 0)) { error in
            XCTAssert("\(error)".contains("too small"), "\(error)")
        }
    }

    func testSGDMomentumAndWeightDecayByHand() throws {
        let p = Parameter(Tensor(shape: [2], scalars: [1, -2]))
        let sgd = SGD([p], learningRate: 0.1, momentum: 0.5, weightDecay: 0.1)
        p.grad = Tensor(shape: [2], scalars: [0.5, 0.5])
        sgd.step()   // d = g + 0.1w = [0.6, 0.3]; b = d; w -= 0.1 b
        XCTAssertEqual(p.value.scalars[0], 0.94, accuracy: 1e-6)
        XCTAssertEqual(p.value.scalars[1], -2.03, accuracy: 1e-6)
        sgd.step()   // d = [0.5 + 0.094, 0.5 − 0.203]; b = 0.5 b + d
        XCTAssertEqual(p.value.scalars[0], 0.94 - 0.1 * (0.5 * 0.6 + 0.594), accuracy: 1e-6)
        p.requiresGrad = false
        let before = p.value
        sgd.step()
        XCTAssertEqual(p.value, before, "frozen parameters do not move")
    }
}

final class SafetensorsTests: XCTestCase {
    func testRoundTripKeepsKeysShapesValuesAndIntegerBuffers() throws {
        let model = try ModelSpec(.vggSmall, width: 0.25).build(seed: 5)
        let bn = model.namedBuffers().first { $0.0.hasSuffix("num_batches_tracked") }!.1
        bn.value.scalars[0] = 42
        let path = NSTemporaryDirectory() + "apsweep-roundtrip-\(getpid()).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Safetensors.write(model, to: path, metadata: ["apsweep.model": "vgg-small"])
        let (entries, metadata) = try Safetensors.read(path: path)
        XCTAssertEqual(metadata["apsweep.model"], "vgg-small")
        XCTAssertEqual(entries[model.namedBuffers().first { $0.0.hasSuffix("num_batches_tracked") }!.0]?.dtype, "I64")
        let other = try ModelSpec(.vggSmall, width: 0.25).build(seed: 6)
        try Safetensors.load(other, from: path)
        for (a, b) in zip(model.stateDict(), other.stateDict()) {
            XCTAssertEqual(a.key, b.key)
            XCTAssertEqual(a.value, b.value, a.key)
        }
    }

    func testReadsHalfAndBFloat16() throws {
        // Hand-made file: "h" F16 [2] = [1.0, -2.5], "b" BF16 [1] = [3.0].
        let header = #"{"b":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]},"h":{"dtype":"F16","shape":[2],"data_offsets":[2,6]}}"#
        var data = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        data.append(contentsOf: [0x40, 0x40])               // bf16 3.0 = 0x4040
        data.append(contentsOf: [0x00, 0x3C, 0x00, 0xC1])   // f16 1.0 = 0x3C00, −2.5 = 0xC100
        let (t, _) = try Safetensors.decode(data, name: "half.safetensors")
        XCTAssertEqual(t["h"]?.tensor.scalars, [1.0, -2.5])
        XCTAssertEqual(t["b"]?.tensor.scalars, [3.0])
    }

    func testCorruptFilesGiveClearErrors() throws {
        func message(_ bytes: [UInt8]) -> String {
            do { _ = try Safetensors.decode(Data(bytes), name: "bad.safetensors"); return "no error" } catch { return "\(error)" }
        }
        XCTAssert(message([1, 2, 3]).contains("shorter than the 8-byte header length"))
        XCTAssert(message([255, 255, 0, 0, 0, 0, 0, 0, 0x7B]).contains("does not fit"))
        XCTAssert(message([4, 0, 0, 0, 0, 0, 0, 0] + Array("nope".utf8)).contains("not a JSON object"))
        let header = Array(#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#.utf8)
        let truncated = [UInt8(header.count), 0, 0, 0, 0, 0, 0, 0] + header + [0, 0, 0, 0]
        XCTAssert(message(truncated).contains("data_offsets"), message(truncated))
        for m in [message([1, 2, 3]), message(truncated)] { XCTAssert(m.hasPrefix("bad.safetensors: "), m) }
        func file(_ header: String, _ dataBytes: Int) -> [UInt8] {
            let h = Array(header.utf8)
            return [UInt8(h.count), 0, 0, 0, 0, 0, 0, 0] + h + [UInt8](repeating: 0, count: dataBytes)
        }
        // Two tensors sharing bytes, a shape whose element count overflows.
        let overlap = file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, 12)
        XCTAssert(message(overlap).contains("entries a and b overlap"), message(overlap))
        let huge = file(#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}"#, 8)
        XCTAssert(message(huge).contains("has more elements than any file can hold"), message(huge))
    }

    /// Weights with NaN or ±∞ are refused by name.
    func testNonFiniteWeightsAreNamed() throws {
        var t = Tensor(shape: [3], repeating: 1)
        t.scalars[2] = .nan
        XCTAssertThrowsError(try Safetensors.checkFinite(["ok": Tensor(shape: [2], repeating: 0), "fc.weight": t], path: "w.safetensors")) {
            XCTAssert("\($0)".contains("w.safetensors: tensor fc.weight holds nan at index 2"), "\($0)")
        }
        XCTAssertNoThrow(try Safetensors.checkFinite(["ok": Tensor(shape: [2], repeating: 0)], path: "w.safetensors"))
    }

    func testMismatchedArchitectureNamesKeys() throws {
        let lenet = try ModelSpec(.lenet5).build(seed: 0)
        let path = NSTemporaryDirectory() + "apsweep-lenet-\(getpid()).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Safetensors.write(lenet, to: path)
        let narrow = try ModelSpec(.lenet5, width: 0.5).build(seed: 0)
        XCTAssertThrowsError(try Safetensors.load(narrow, from: path)) { error in
            XCTAssert("\(error)".contains("wrong shapes: classifier.0.bias: model [60], file [120]"), "\(error)")
        }
        let mlp = try ModelSpec(.mlp).build(seed: 0)
        XCTAssertThrowsError(try Safetensors.load(mlp, from: path)) { error in
            XCTAssert("\(error)".contains("missing keys: fc1.bias"), "\(error)")
            XCTAssert("\(error)".contains("unexpected keys: classifier.0.bias"), "\(error)")
        }
    }
}

final class ThreadingTests: XCTestCase {
    override func tearDown() { BLAS.threads = 1 }

    /// Splitting convolutions over images and GEMMs over blocks changes only summation order.
    /// After two SGD steps each tensor of 1 and 2 threads agrees within 1 % of how far the steps
    /// moved it: the first convolutions' weight gradients sum ~19,000 products with heavy
    /// cancellation in Float32, so their rounding differs by up to ~0.5 % of the update here
    /// (deeper layers agree to 1e-7); a wrong split of the work would be off by ~100 %.
    func testTwoThreadsGiveTheSameStepAsOne() throws {
        let reference = try ModelSpec(.vggSmall, width: 0.25).build(seed: 21)
        let initial = reference.parameters.flatMap(\.value.scalars)
        func step(threads: Int) throws -> [Float] {
            BLAS.threads = threads
            let model = try ModelSpec(.vggSmall, width: 0.25).build(seed: 21)
            let trainer = Trainer(model: model, optimizer: SGD(model.parameters, learningRate: 0.1, momentum: 0.9))
            let x = randomTensor([24, 1, 28, 28], seed: 22)
            for _ in 0..<2 { try trainer.step(x, labels: (0..<24).map { $0 % 10 }) }
            return model.parameters.flatMap(\.value.scalars)
        }
        let one = try step(threads: 1), two = try step(threads: 2)
        XCTAssertEqual(one.count, two.count)
        var offset = 0
        for (name, p) in reference.namedParameters() {
            let range = offset..<(offset + p.value.count)
            offset = range.upperBound
            let difference = range.map { abs(one[$0] - two[$0]) }.max() ?? 0
            let moved = range.map { abs(one[$0] - initial[$0]) }.max() ?? 0
            XCTAssertLessThanOrEqual(difference, 1e-2 * moved + 1e-6, "\(name): 1 vs 2 threads differ by \(difference), the update is \(moved)")
        }
        XCTAssertEqual(try step(threads: 2), two, "two threads are deterministic too")
    }
}
