"""Golden numbers for every architecture of apsweep's zoo against its PyTorch twin
(Scripts/torch_models.py): CIFAR-shaped input (3x32x32, batch 4), logits in eval mode, and the
loss and gradients of one training step (train mode: batch-norm statistics of the batch).

Weights, buffers and input are not stored: both sides compute them from one formula, so each
fixture is a few KB even for ResNet-50. Element i of tensor j of the state_dict (PyTorch's order)
starts from u = splitmix64(i * 0x9E3779B97F4A7C15 + (j + 1) * 0xD1B54A32D192ED03) / 2^64, uniform
in [0, 1), and w = (2u - 1) sqrt(3) (unit variance), computed in float64 and rounded to float32:
weights are w sqrt(2 / fan_in) (fan_in = elements / first dimension), biases, embeddings and
running means 0.1 w, norm weights 1 + 0.1 w, running variances 1 + 0.25 w^2, batch counters 0.
The input is element i of tensor j = -1 the same way (or -2, -3, ...: the first whose frozen-
statistics forward keeps every ReLU input at least 1e-6 of its tensor's RMS away from the kink;
the fixture names it as input_seed); the labels are 0, 1, 2, 3. Gradients are
summarised per parameter by their L2 norm and six entries (the first four, the middle, the last).

The reference is the twin in float64 (PyTorch's float32 errors are stored next to it): logits in
eval mode, the loss and gradients of a training step (batch statistics), and the gradients with
frozen statistics (eval mode). Each fixture also stores how well posed its gradients are: their
relative change in float64 when the input moves by 1e-5 (ReLU and max-pool kinks, batch norm over
four values); the Swift test compares within 1e-4 where that figure is small and says when a
comparison is not meaningful at all. A ReLU input within float32 rounding of zero is a kink no
perturbation test is sure to see: either side of it is right, and the gradients below it differ
by far more than 1e-4 (ResNet-50 had one at 3.5e-7 of its RMS, which a change of summation
order in a GEMM flipped). The input seed is chosen so that there is none.
(A smooth formula such as sin(a i + b) makes every weight matrix rank 2 and the networks
degenerate, so a hash it is.)

  python Scripts/gen_zoo_fixtures.py          # torch + torchvision (Scripts/torch-venv)

writes Tests/NeuralCoreTests/Fixtures/zoo/<architecture>.json.
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from torch_models import twin  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "NeuralCoreTests", "Fixtures", "zoo")
SIZE, BATCH, CLASSES = int(os.environ.get("ZOO_SIZE", 32)), 4, 10
# The zoo's small ViT on 32x32 (patch 8: 17 tokens).
VIT = {"patch": 8, "dim": 64, "depth": 2, "heads": 4, "mlp_dim": 128}
# Half width where the layout is apsweep's own (keeps the debug-build test quick); torchvision's
# models at their own size.
WIDTHS = {"alexnet": 0.5, "vgg11": 0.5, "vgg11-bn": 0.5, "vgg16": 0.5, "vgg16-bn": 0.5}
ARCHITECTURES = ["mlp", "lenet5", "vgg-small", "alexnet", "vgg11", "vgg11-bn", "vgg16", "vgg16-bn",
                 "resnet20", "resnet18", "resnet50", "vit"]


def kind_of(model, key, tensor):
    """How the formula fills `key` (the Swift side reads the kind from the fixture)."""
    module_name, _, leaf = key.rpartition(".")
    module = dict(model.named_modules()).get(module_name)
    if leaf == "num_batches_tracked":
        return "count"
    if leaf == "running_mean":
        return "small"
    if leaf == "running_var":
        return "variance"
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
        return "norm_weight" if leaf == "weight" else "small"
    if tensor.dim() <= 1 or key in ("class_token", "encoder.pos_embedding"):
        return "small"
    return "weight"


M64 = (1 << 64) - 1


def unit(j, n):
    """Unit-variance uniform values of tensor j (splitmix64 of the element index, vectorised)."""
    import numpy as np
    with np.errstate(over="ignore"):
        x = np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(((j + 1) * 0xD1B54A32D192ED03) & M64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    u = (x >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return torch.from_numpy((2 * u - 1) * math.sqrt(3))


def fill(kind, j, shape):
    n = math.prod(shape)
    w = unit(j, n)
    if kind == "count":
        v = torch.zeros(n, dtype=torch.float64)
    elif kind == "small":
        v = 0.1 * w
    elif kind == "variance":
        v = 1 + 0.25 * w * w
    elif kind == "norm_weight":
        v = 1 + 0.1 * w
    else:
        v = w * math.sqrt(2 * shape[0] / n)
    return v.to(torch.float32).reshape(shape)


def summary(g):
    flat = g.detach().reshape(-1).to(torch.float64)
    n = flat.numel()
    picks = sorted(set([0, 1, 2, 3, n // 2, n - 1]) & set(range(n)))
    return {"norm": flat.norm().item(), "at": picks, "values": [flat[k].item() for k in picks]}


def grads_of(model, x, labels, train):
    model.train(train)
    model.zero_grad()
    loss = F.cross_entropy(model(x), labels)
    loss.backward()
    return loss.item(), {k: p.grad.detach().clone() for k, p in model.named_parameters()}


def kink_margin(model, x, train):
    """The smallest |input| of any ReLU module in one forward pass, relative to the RMS of its
    tensor: how close the pass comes to a kink that a rounding-level change could cross."""
    margins = []

    def hook(_module, inputs):
        t = inputs[0].detach()
        margins.append((t.abs().min() / t.pow(2).mean().sqrt().clamp_min(1e-300)).item())

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    model.train(train)
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return min(margins) if margins else None   # None (JSON null): no ReLU module


# Float32 rounding moves even the logits, the end of the longest chain, by at most 1.1e-6 of
# their scale here (PyTorch's own float32 against float64, torch_float32 in the fixtures), and
# ReLU inputs by less; a margin of 1e-6 keeps every ReLU out of its reach. 1e-5 is more than the
# half-million ReLU inputs of VGG-16 (half width) left for any of 20 inputs tried.
MARGIN = 1e-6


def flat(g):
    return torch.cat([v.reshape(-1).to(torch.float64) for v in g.values()])


def case(arch):
    extra = VIT if arch == "vit" else {}
    width = WIDTHS.get(arch, 1.0)
    model = twin(arch, classes=CLASSES, channels=3, size=SIZE, width=width, **extra)
    state = model.state_dict()
    kinds = {}
    with torch.no_grad():
        for j, (key, t) in enumerate(state.items()):
            kinds[key] = kind_of(model, key, t)
            t.copy_(fill(kinds[key], j, list(t.shape)).to(t.dtype))
    state = {k: v.clone() for k, v in state.items()}   # a copy: training forwards move the statistics
    n = BATCH * 3 * SIZE * SIZE
    labels = torch.arange(BATCH) % CLASSES
    m64 = twin(arch, classes=CLASSES, channels=3, size=SIZE, width=width, **extra)
    m64 = m64.double()
    # The first input whose frozen-statistics pass stays clear of every ReLU kink (see the top).
    for seed in range(-1, -41, -1):
        x32 = unit(seed, n).to(torch.float32).reshape(BATCH, 3, SIZE, SIZE)
        m64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in state.items()})
        margins = {"eval": kink_margin(m64, x32.double(), False), "train": kink_margin(m64, x32.double(), True)}
        if margins["eval"] is None or margins["eval"] >= MARGIN:
            break
    else:
        raise SystemExit("%s: no input seed in -1 ... -40 keeps ReLU inputs %g away from 0" % (arch, MARGIN))
    # PyTorch in float32 (what a user runs), then the same network in float64: the reference.
    m32 = model
    m32.eval()
    with torch.no_grad():
        logits32 = m32(x32)
    loss32, train32 = grads_of(m32, x32, labels, True)
    m64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in state.items()})
    x64 = x32.double()
    m64.eval()
    with torch.no_grad():
        logits64 = m64(x64)
    loss64, train64 = grads_of(m64, x64, labels, True)
    m64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in state.items()})
    _, eval64 = grads_of(m64, x64, labels, False)
    # Conditioning: how far float64 gradients move when the input moves by 1e-5 (relative).
    # ReLU and max-pool kinks and batch norm over few values can make this large; no float32
    # implementation can then be compared within 1e-4, and the test says so instead.
    torch.manual_seed(0)
    xp = x64 * (1 + 1e-5 * torch.randn_like(x64))
    conditions = {}
    for name, train, ref in (("train", True, train64), ("eval", False, eval64)):
        m64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in state.items()})
        _, moved = grads_of(m64, xp, labels, train)
        conditions[name] = ((flat(moved) - flat(ref)).norm() / flat(ref).norm()).item()
    spec = {"architecture": arch, "width": width, "input_shape": [3, SIZE, SIZE], "classes": CLASSES}
    spec.update(extra)
    return {
        "spec": spec,
        "state": [{"key": k, "shape": list(t.shape), "kind": kinds[k]} for k, t in state.items()],
        "eval_logits": logits64.reshape(-1).tolist(),
        "train_loss": loss64,
        "gradients": {k: summary(v) for k, v in train64.items()},
        "eval_gradients": {k: summary(v) for k, v in eval64.items()},
        "condition": conditions,
        "input_seed": seed,
        "kink_margin": margins,
        "torch_float32": {"eval_logits_error": ((logits32.double() - logits64).abs().max() / logits64.abs().max()).item(),
                          "train_loss_error": abs(loss32 - loss64) / abs(loss64),
                          "train_gradient_error": ((flat(train32) - flat(train64)).norm() / flat(train64).norm()).item()},
        "torch": torch.__version__,
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    for arch in sys.argv[1:] or ARCHITECTURES:
        c = case(arch)
        with open(os.path.join(OUT, arch + ".json"), "w") as f:
            json.dump(c, f, indent=0, sort_keys=True)
        print("wrote %-9s input seed %d, kink margin eval %.1e train %.1e, conditioning train %.1e eval %.1e; PyTorch float32 vs float64: logits %.1e, loss %.1e, gradients %.1e" % (
            arch, c["input_seed"], c["kink_margin"]["eval"] or math.inf, c["kink_margin"]["train"] or math.inf,
            c["condition"]["train"], c["condition"]["eval"], c["torch_float32"]["eval_logits_error"],
            c["torch_float32"]["train_loss_error"], c["torch_float32"]["train_gradient_error"]))


if __name__ == "__main__":
    main()
