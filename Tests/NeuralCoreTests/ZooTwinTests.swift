import Foundation
import NeuralCore
import XCTest

/// Every architecture of the zoo against its PyTorch twin (Scripts/torch_models.py; torchvision's
/// own ResNet-18/50 and ViT) on CIFAR-shaped input: the same state_dict keys and shapes both ways,
/// eval-mode logits, and the loss and gradients of one training step, within 1e-4. The fixtures
/// (Scripts/gen_zoo_fixtures.py) hold no weights: both sides fill them from one formula.
final class ZooTwinTests: XCTestCase {
    override func setUp() { BLAS.threads = 1 }

    struct Fixture {
        var spec: ModelSpec
        var state: [(key: String, shape: [Int], kind: String)]
        var logits: [Double]
        var loss: Double
        var gradients: [String: (norm: Double, at: [Int], values: [Double])]
        var evalGradients: [String: (norm: Double, at: [Int], values: [Double])]
        /// How far the float64 gradients move when the input moves by 1e-5 (train, eval).
        var condition: (train: Double, eval: Double)
        /// PyTorch's own float32 loss error against its float64 (relative).
        var torchLossError: Double
        /// The tensor index j the input is filled from (−1, or the first further one whose
        /// frozen-statistics pass keeps every ReLU clear of its kink).
        var inputSeed: Int
    }

    func fixture(_ name: String) throws -> Fixture {
        let url = try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures/zoo"), "no fixture for \(name)")
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let s = try XCTUnwrap(o["spec"] as? [String: Any])
        let spec = ModelSpec(try XCTUnwrap(Architecture(rawValue: s["architecture"] as! String)), width: s["width"] as! Double,
                             inputShape: s["input_shape"] as! [Int], classes: s["classes"] as! Int,
                             patch: s["patch"] as? Int ?? 7, dim: s["dim"] as? Int ?? 64, depth: s["depth"] as? Int ?? 4,
                             heads: s["heads"] as? Int ?? 4, mlpDim: s["mlp_dim"] as? Int)
        let state = try XCTUnwrap(o["state"] as? [[String: Any]]).map { ($0["key"] as! String, $0["shape"] as! [Int], $0["kind"] as! String) }
        func summaries(_ key: String) throws -> [String: (norm: Double, at: [Int], values: [Double])] {
            try XCTUnwrap(o[key] as? [String: [String: Any]]).mapValues { v in (norm: v["norm"] as! Double, at: v["at"] as! [Int], values: v["values"] as! [Double]) }
        }
        let condition = try XCTUnwrap(o["condition"] as? [String: Double])
        return Fixture(spec: spec, state: state, logits: o["eval_logits"] as! [Double], loss: o["train_loss"] as! Double,
                       gradients: try summaries("gradients"), evalGradients: try summaries("eval_gradients"),
                       condition: (condition["train"]!, condition["eval"]!),
                       torchLossError: (o["torch_float32"] as? [String: Double])?["train_loss_error"] ?? 0,
                       inputSeed: o["input_seed"] as? Int ?? -1)
    }

    /// Unit-variance uniform values of tensor j, as Scripts/gen_zoo_fixtures.py makes them
    /// (splitmix64 of the element index).
    static func unit(_ j: Int, _ i: Int) -> Double {
        var x = UInt64(i) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(bitPattern: Int64(j + 1)) &* 0xD1B5_4A32_D192_ED03
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        x ^= x >> 31
        let u = Double(x >> 11) * 0x1p-53
        return (2 * u - 1) * 3.0.squareRoot()
    }

    /// The formula of Scripts/gen_zoo_fixtures.py for tensor j of the state dict.
    static func fill(kind: String, j: Int, shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        let gain = (2 * Double(shape.first ?? 1) / Double(max(1, n))).squareRoot()
        return Tensor(shape: shape) { p in
            for i in 0..<n {
                let w = unit(j, i)
                let v: Double
                switch kind {
                case "count": v = 0
                case "small": v = 0.1 * w
                case "variance": v = 1 + 0.25 * w * w
                case "norm_weight": v = 1 + 0.1 * w
                default: v = w * gain
                }
                p[i] = Float(v)
            }
        }
    }

    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let f = try fixture(name)
        let model = try f.spec.build(seed: 0)
        // The same keys and shapes both ways (what strict loading on either side needs).
        let ours = Dictionary(uniqueKeysWithValues: model.stateDict().map { ($0.key, $0.value.shape) })
        let theirs = Dictionary(uniqueKeysWithValues: f.state.map { ($0.key, $0.shape) })
        XCTAssertEqual(Set(ours.keys), Set(theirs.keys), "\(name): keys only in apsweep: \(Set(ours.keys).subtracting(theirs.keys).sorted().prefix(5)); only in PyTorch: \(Set(theirs.keys).subtracting(ours.keys).sorted().prefix(5))", file: file, line: line)
        for (k, shape) in theirs where ours[k] != nil { XCTAssertEqual(ours[k], shape, "\(name) \(k)", file: file, line: line) }
        var state: [String: Tensor] = [:]
        for (j, e) in f.state.enumerated() { state[e.key] = Self.fill(kind: e.kind, j: j, shape: e.shape) }
        try model.load(state)
        let inputShape = [4] + f.spec.inputShape
        let n = inputShape.reduce(1, *)
        let x = Tensor(shape: inputShape) { p in for i in 0..<n { p[i] = Float(Self.unit(f.inputSeed, i)) } }
        let labels = [0, 1, 2, 3]
        let logits = try model.forward(x, mode: .eval).scalars.map(Double.init)
        XCTAssertEqual(logits.count, f.logits.count, file: file, line: line)
        let scale = max(1, f.logits.map(abs).max() ?? 1)
        let worst = zip(logits, f.logits).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "\(name): eval logits differ by \(worst) (largest |logit| \(scale))", file: file, line: line)
        // One training step (batch statistics), then the same with frozen statistics.
        // Both from the filled state (a training forward moves the running statistics).
        let (loss, trainWorst) = try step(model, x, labels, mode: .train, f.gradients)
        // Within 1e-4, or twice PyTorch's own float32 error where that is larger (ResNet-50).
        XCTAssertEqual(loss, f.loss, accuracy: max(1e-4, 2 * f.torchLossError) * max(1, abs(f.loss)), "\(name): training loss", file: file, line: line)
        try model.load(state)
        let (_, evalWorst) = try step(model, x, labels, mode: .eval, f.evalGradients)
        print("ZOO \(name): eval logits \(worst / scale), train-step gradients \(trainWorst) (conditioning \(f.condition.train)), frozen-statistics gradients \(evalWorst) (conditioning \(f.condition.eval))")
        for (what, worst, condition) in [("train-step", trainWorst, f.condition.train), ("frozen-statistics", evalWorst, f.condition.eval)] {
            if condition <= Self.wellPosed {
                XCTAssertLessThanOrEqual(worst, 1e-4, "\(name): \(what) gradients differ by \(worst) (relative to their scale)", file: file, line: line)
            }
        }
        XCTAssert(f.condition.train <= Self.wellPosed || f.condition.eval <= Self.wellPosed, "\(name): neither gradient is well posed", file: file, line: line)
    }

    /// Gradients whose float64 values move by more than this under a 1e-5 change of the input
    /// (ReLU and max-pool kinks, batch norm over 4 values) cannot be compared within 1e-4 by any
    /// float32 implementation — PyTorch's own float32 differs from its float64 by more.
    static let wellPosed = 2e-2

    /// Loss and backward in `mode`; returns the loss and the worst gradient difference, each
    /// relative to 1e-4 × (|value| + the parameter's typical entry) + 1e-6 × the whole norm.
    func step(_ model: Model, _ x: Tensor, _ labels: [Int], mode: Mode,
              _ expected: [String: (norm: Double, at: [Int], values: [Double])]) throws -> (Double, Double) {
        for (_, p) in model.namedParameters() { p.zeroGrad() }
        // Frozen statistics: batch norm as in eval mode inside a training forward (no dropout
        // here: the zoo's default dropout is 0).
        Self.visit(model.root) { ($0 as? BatchNorm)?.frozen = mode == .eval }
        defer { Self.visit(model.root) { ($0 as? BatchNorm)?.frozen = false } }
        let (loss, gradient, _) = try SoftmaxCrossEntropy(labelSmoothing: 0).evaluate(logits: try model.forward(x, mode: .train), labels: labels)
        try model.backward(gradient)
        let params = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.0, $0.1) })
        XCTAssertEqual(Set(params.keys), Set(expected.keys), "parameters")
        let whole = expected.values.reduce(0) { $0 + $1.norm * $1.norm }.squareRoot()
        var worst = 0.0
        for (k, g) in expected {
            guard let p = params[k] else { continue }
            let ours = p.grad.scalars.map(Double.init)
            let norm = ours.reduce(0) { $0 + $1 * $1 }.squareRoot()
            worst = max(worst, abs(norm - g.norm) / (g.norm + 1e-2 * whole))
            let typical = g.norm / Double(max(1, ours.count)).squareRoot()
            for (at, v) in zip(g.at, g.values) { worst = max(worst, abs(ours[at] - v) / (abs(v) + typical + 1e-2 * whole)) }
        }
        return (loss, worst)
    }

    static func visit(_ layer: Layer, _ body: (Layer) -> Void) {
        body(layer)
        for (_, child) in layer.namedChildren() { visit(child, body) }
    }

    func testMLP() throws { try check("mlp") }
    func testLeNet5() throws { try check("lenet5") }
    func testVGGSmall() throws { try check("vgg-small") }
    func testAlexNet() throws { try check("alexnet") }
    func testVGG11() throws { try check("vgg11") }
    func testVGG11BN() throws { try check("vgg11-bn") }
    func testVGG16() throws { try check("vgg16") }
    func testVGG16BN() throws { try check("vgg16-bn") }
    func testResNet20() throws { try check("resnet20") }
    func testResNet18IsTorchvisions() throws { try check("resnet18") }
    func testResNet50IsTorchvisions() throws { try check("resnet50") }
    func testViTIsTorchvisions() throws { try check("vit") }
}
