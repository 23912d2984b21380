import Foundation
import NeuralCore
import XCTest

/// Compares layers, blocks, the loss, a ViT and an SGD step with numbers PyTorch computed
/// (Scripts/gen_fixtures.py; the files are committed, CI needs no torch).
///
/// Tolerance: |ours − torch| ≤ 1e-4 + 1e-4·|torch| elementwise. Both compute in Float32 but sum in
/// different orders (OpenBLAS vs oneDNN/MKL kernels, Float64 statistics in our norms), which
/// moves results by a few ulps per accumulation; 1e-4 allows that and catches any formula error,
/// which shows up at 1e-2 or more.
final class PyTorchFixtureTests: XCTestCase {
    override func setUp() {
        BLAS.threads = 1
        Compute.threads = 1
    }

    struct Fixture {
        let tensors: [String: Tensor]
        let config: [String: Any]
        subscript(_ key: String) -> Tensor {
            guard let t = tensors[key] else { fatalError("fixture lacks \(key)") }
            return t
        }
    }

    func fixture(_ name: String) throws -> Fixture {
        let url = try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures"),
                                "fixture \(name) missing: run Scripts/gen_fixtures.py")
        let (entries, metadata) = try Safetensors.read(path: url.path)
        let config = try JSONSerialization.jsonObject(with: Data((metadata["config"] ?? "{}").utf8)) as? [String: Any] ?? [:]
        return Fixture(tensors: entries.mapValues(\.tensor), config: config)
    }

    func assertClose(_ ours: Tensor, _ theirs: Tensor, _ what: String, atol: Float = 1e-4, rtol: Float = 1e-4,
                     file: StaticString = #filePath, line: UInt = #line) {
        guard ours.count == theirs.count else {
            XCTFail("\(what): shape \(ours.shape) vs PyTorch \(theirs.shape)", file: file, line: line)
            return
        }
        var worst: Float = 0, at = 0, bad = 0
        for i in 0..<ours.count {
            let d = abs(ours.scalars[i] - theirs.scalars[i])
            if d > worst { worst = d; at = i }
            if !(d <= atol + rtol * abs(theirs.scalars[i])) { bad += 1 }
        }
        if bad > 0 {
            XCTFail("\(what): \(bad) of \(ours.count) elements differ from PyTorch; largest |diff| \(worst) at \(at) (ours \(ours.scalars[at]), torch \(theirs.scalars[at]))",
                    file: file, line: line)
        }
    }

    /// Loads parameters and buffers, runs forward and backward, compares everything PyTorch saved.
    func checkLayer(_ name: String, _ layer: Layer, mode: Mode = .train, file: StaticString = #filePath, line: UInt = #line) throws {
        let f = try fixture(name)
        for (key, p) in layer.namedParameters() {
            let t = try XCTUnwrap(f.tensors["param." + key], "\(name): no parameter \(key) in the fixture", file: file, line: line)
            p.value = t.reshaped(p.value.shape)
            p.zeroGrad()
        }
        for (key, b) in layer.namedBuffers() {
            if let t = f.tensors["before." + key] { b.value = t.reshaped(b.value.shape) }
        }
        if let bn = layer as? BatchNorm { bn.keepsEvalInput = true }
        let y = try layer.forward(f["x"], mode: mode)
        assertClose(y, f["y"], "\(name) output", file: file, line: line)
        let dx = try layer.backward(f["dy"])
        assertClose(dx, f["dx"], "\(name) input gradient", file: file, line: line)
        for (key, p) in layer.namedParameters() {
            assertClose(p.grad, f["grad." + key], "\(name) gradient of \(key)", file: file, line: line)
        }
        for (key, b) in layer.namedBuffers() {
            if let t = f.tensors["buffer." + key] { assertClose(b.value, t, "\(name) buffer \(key)", file: file, line: line) }
        }
    }

    var rng = SeededGenerator(seed: 0)

    func testLinear() throws { try checkLayer("linear", Linear(5, 4, rng: &rng)) }
    func testConv2d() throws {
        try checkLayer("conv2d_s1p1", Conv2d(3, 4, kernel: 3, padding: 1, rng: &rng))
        try checkLayer("conv2d_s2p2_nobias", Conv2d(2, 3, kernel: 5, stride: 2, padding: 2, bias: false, rng: &rng))
    }
    func testConv2dWinograd() throws {
        // The Winograd F(4×4, 3×3) path against torch directly: odd sizes, padding 1 and 0.
        let same = Conv2d(16, 8, kernel: 3, padding: 1, rng: &rng), valid = Conv2d(8, 12, kernel: 3, bias: false, rng: &rng)
        same.algorithm = .winograd
        valid.algorithm = .winograd
        try checkLayer("conv2d_winograd_p1", same)
        try checkLayer("conv2d_winograd_valid", valid)
    }
    func testPools() throws {
        try checkLayer("maxpool_k3s2p1", MaxPool2d(kernel: 3, stride: 2, padding: 1))
        try checkLayer("avgpool_k3s2p1", AvgPool2d(kernel: 3, stride: 2, padding: 1))
        try checkLayer("adaptive_avgpool", AdaptiveAvgPool2d())
    }
    func testBatchNorm() throws {
        try checkLayer("batchnorm2d_train", BatchNorm.twoD(3))
        try checkLayer("batchnorm2d_eval", BatchNorm.twoD(3), mode: .eval)
        try checkLayer("batchnorm1d_train", BatchNorm.oneD(4))
    }
    func testActivationsAndNorms() throws {
        try checkLayer("relu", ReLU())
        try checkLayer("gelu", GELU())
        try checkLayer("layernorm", LayerNorm(6))
    }
    func testAttention() throws { try checkLayer("attention", MultiheadSelfAttention(dim: 8, heads: 2, rng: &rng)) }
    func testResidualBlocks() throws {
        try checkLayer("basicblock", BasicBlock(4, 8, stride: 2, rng: &rng))
        try checkLayer("bottleneck", Bottleneck(8, 4, stride: 2, rng: &rng))
    }
    func testEncoderBlock() throws { try checkLayer("encoderblock", EncoderBlock(dim: 8, heads: 2, mlpDim: 16, rng: &rng)) }

    func testCrossEntropyWithLabelSmoothing() throws {
        let f = try fixture("cross_entropy")
        let labels = f["labels"].scalars.map { Int($0) }
        let (loss, grad, _) = try SoftmaxCrossEntropy(labelSmoothing: 0.1).evaluate(logits: f["logits"], labels: labels)
        XCTAssertEqual(loss, Double(f["loss"].scalars[0]), accuracy: 1e-6)
        assertClose(grad, f["dlogits"], "d logits")
    }

    func testTinyViTMatchesTorchvision() throws {
        let f = try fixture("vit_tiny_eval")
        let model = try ModelSpec(.vit, inputShape: [3, 8, 8], classes: 3, patch: 4, dim: 8, depth: 2, heads: 2, mlpDim: 16).build(seed: 0)
        var state: [String: Tensor] = [:]
        for (k, v) in f.tensors where k.hasPrefix("param.") { state[String(k.dropFirst(6))] = v }
        try model.load(state)
        assertClose(try model.forward(f["x"], mode: .eval), f["y"], "ViT logits")
    }

    func testLeNet5TwoNesterovSGDStepsMatchPyTorch() throws {
        let f = try fixture("lenet5_sgd")
        let model = try ModelSpec(.lenet5).build(seed: 0)
        var state: [String: Tensor] = [:]
        for (k, v) in f.tensors where k.hasPrefix("param.") { state[String(k.dropFirst(6))] = v }
        try model.load(state)
        let trainer = Trainer(model: model, optimizer: SGD(model.parameters, learningRate: 0.1, momentum: 0.9, weightDecay: 5e-4, nesterov: true))
        let labels = f["labels"].scalars.map { Int($0) }
        for step in 0..<2 {
            let (loss, _) = try trainer.step(f["x"], labels: labels)
            XCTAssertEqual(loss, Double(f["losses"].scalars[step]), accuracy: 1e-5, "loss of step \(step)")
        }
        for (k, p) in model.namedParameters() { assertClose(p.value, f["after." + k], "\(k) after two steps", atol: 2e-5) }
    }

    func testStateDictKeysAndShapesMatchTorchvision() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "torchvision_keys", withExtension: "json", subdirectory: "Fixtures"))
        let all = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: [String: Any]])
        for (name, entry) in all.sorted(by: { $0.key < $1.key }) {
            let spec = try XCTUnwrap(entry["spec"] as? [String: Any])
            let expected = try XCTUnwrap(entry["state"] as? [String: [Int]])
            let arch = try XCTUnwrap(Architecture(rawValue: spec["arch"] as! String))
            let model = try ModelSpec(arch, inputShape: spec["input"] as! [Int], classes: spec["classes"] as! Int,
                                      patch: spec["patch"] as? Int ?? 7, dim: spec["dim"] as? Int ?? 64,
                                      depth: spec["depth"] as? Int ?? 4, heads: spec["heads"] as? Int ?? 4,
                                      mlpDim: spec["mlp"] as? Int).build(seed: 0)
            var ours: [String: [Int]] = [:]
            for entry in model.stateDict() { ours[entry.key] = entry.value.shape }
            let missing = Set(expected.keys).subtracting(ours.keys).sorted()
            let extra = Set(ours.keys).subtracting(expected.keys).sorted()
            XCTAssert(missing.isEmpty && extra.isEmpty, "\(name): keys torchvision has and we lack: \(missing.prefix(5)); keys only we have: \(extra.prefix(5))")
            for (k, shape) in expected where ours[k] != nil {
                XCTAssertEqual(ours[k], shape, "\(name) \(k)")
            }
            // The state dict's order is PyTorch's registration order for parameters.
            XCTAssertEqual(model.parameterCount, expected.filter { !$0.key.contains("running_") && !$0.key.hasSuffix("num_batches_tracked") }.values.reduce(0) { $0 + $1.reduce(1, *) }, name)
        }
    }
}

extension PyTorchFixtureTests {
    func testAdamWThreeStepsMatchPyTorch() throws {
        let f = try fixture("adamw_and_schedules")
        let layer = Linear(5, 4, rng: &rng)
        layer.weight.value = f["param.weight"]
        layer.bias!.value = f["param.bias"]
        let opt = AdamW([layer.weight, layer.bias!], learningRate: 0.01, weightDecay: 0.05)
        let labels = f["labels"].scalars.map { Int($0) }
        for _ in 0..<3 {
            layer.weight.zeroGrad(); layer.bias!.zeroGrad()
            let logits = try layer.forward(f["x"], mode: .train)
            let (_, g, _) = try SoftmaxCrossEntropy().evaluate(logits: logits, labels: labels)
            _ = try layer.backward(g)
            opt.step()
        }
        assertClose(layer.weight.value, f["after.weight"], "AdamW weight", atol: 1e-6)
        assertClose(layer.bias!.value, f["after.bias"], "AdamW bias", atol: 1e-6)
    }

    func testSchedulesMatchPyTorchSchedulers() throws {
        let f = try fixture("adamw_and_schedules")
        for (name, schedule) in [("cosine", LearningRateSchedule.cosine(minimum: 0)), ("step", .step(every: 2, gamma: 0.1))] {
            let torch = f["lr." + name].scalars
            for epoch in 0..<6 {
                XCTAssertEqual(schedule.rate(base: 0.1, epoch: epoch, epochs: 6), torch[epoch], accuracy: 1e-7, "\(name) epoch \(epoch)")
            }
        }
        XCTAssertEqual(LearningRateSchedule.constant.rate(base: 0.3, epoch: 5, epochs: 6), 0.3)
    }
}

/// Checkpoints both ways: a file torch saved loads into our model; a file `apsweep train` wrote
/// loaded into torch's model with strict=True (at fixture time) and gave the logits we compare to.
extension PyTorchFixtureTests {
    func logitsOfCheckpoint(_ file: String) throws -> Tensor {
        let url = try XCTUnwrap(Bundle.module.url(forResource: file, withExtension: "safetensors", subdirectory: "Fixtures"))
        let model = try ModelSpec(.vggSmall, width: 0.25).build(seed: 99)
        try Safetensors.load(model, from: url.path)
        return try model.forward(try fixture(file + "_logits")["x"], mode: .eval)
    }

    func testTorchCheckpointLoadsIntoApsweep() throws {
        let (entries, _) = try Safetensors.read(path: Bundle.module.url(forResource: "torch_vgg_small", withExtension: "safetensors", subdirectory: "Fixtures")!.path)
        XCTAssertEqual(entries["features.1.num_batches_tracked"]?.dtype, "I64")
        XCTAssertEqual(entries["features.1.num_batches_tracked"]?.tensor.scalars, [17])
        assertClose(try logitsOfCheckpoint("torch_vgg_small"), try fixture("torch_vgg_small_logits")["y"], "logits from torch's file")
    }

    func testApsweepCheckpointGivesTorchsLogits() throws {
        assertClose(try logitsOfCheckpoint("apsweep_vgg_small"), try fixture("apsweep_vgg_small_logits")["y"], "logits torch computed from our file")
    }
}
