"""Writes the PyTorch golden fixtures the Swift tests compare against.

Run with torch (and torchvision) in a throwaway venv, never in CI:
    Scripts/torch-venv && .venv-torch/bin/pip install torchvision pillow
    .venv-torch/bin/python Scripts/gen_fixtures.py
Each case is one safetensors file in Tests/NeuralCoreTests/Fixtures/ holding the input "x", the
layer's parameters "param.<key>" (PyTorch state_dict keys), the upstream gradient "dy", and what
PyTorch computed: output "y", input gradient "dx", parameter gradients "grad.<key>" and buffers
after the forward "buffer.<key>". The metadata "config" is the JSON the test builds the layer from.
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from torch_models import lenet5, vgg_small  # noqa: E402
import subprocess  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "NeuralCoreTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(20261126)


def randomise(module):
    """Non-trivial parameters and buffers, so that a wrong formula cannot pass by accident."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn_like(p) * (0.5 if "weight" in name else 0.2) + (1.0 if name.endswith("ln_1.weight") else 0.0))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)


def layer_case(name, module, x, config, train=True, randomise_params=True):
    if randomise_params:
        randomise(module)
    module.train(train)
    tensors = {"x": x.clone()}
    for k, p in module.named_parameters():
        tensors["param." + k] = p.detach().clone()
    for k, b in module.named_buffers():
        tensors["before." + k] = b.detach().clone().float()
    x = x.clone().requires_grad_(True)
    y = module(x)
    if isinstance(y, tuple):
        y = y[0]
    dy = torch.randn_like(y)
    y.backward(dy)
    tensors.update({"y": y.detach(), "dy": dy, "dx": x.grad.detach()})
    for k, p in module.named_parameters():
        tensors["grad." + k] = p.grad.detach().clone()
    for k, b in module.named_buffers():
        tensors["buffer." + k] = b.detach().clone().float()
    save(name, tensors, config)


def save(name, tensors, config):
    tensors = {k: v.contiguous().float() for k, v in tensors.items()}
    save_file(tensors, os.path.join(OUT, name + ".safetensors"), metadata={"config": json.dumps(config)})
    print("wrote", name, sum(v.numel() for v in tensors.values()), "values")


class SelfAttention(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, h, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


def main():
    import torchvision.models as tvm
    from torchvision.models.resnet import BasicBlock, Bottleneck
    from torchvision.models.vision_transformer import EncoderBlock

    layer_case("linear", nn.Linear(5, 4), torch.randn(3, 5), {"layer": "linear", "in": 5, "out": 4})
    layer_case("conv2d_s1p1", nn.Conv2d(3, 4, 3, padding=1), torch.randn(2, 3, 6, 6),
               {"layer": "conv2d", "in": 3, "out": 4, "kernel": 3, "stride": 1, "padding": 1, "bias": True})
    layer_case("conv2d_s2p2_nobias", nn.Conv2d(2, 3, 5, stride=2, padding=2, bias=False), torch.randn(2, 2, 7, 7),
               {"layer": "conv2d", "in": 2, "out": 3, "kernel": 5, "stride": 2, "padding": 2, "bias": False})
    layer_case("maxpool_k3s2p1", nn.MaxPool2d(3, 2, 1), torch.randn(2, 2, 7, 7),
               {"layer": "maxpool", "kernel": 3, "stride": 2, "padding": 1})
    layer_case("avgpool_k3s2p1", nn.AvgPool2d(3, 2, 1), torch.randn(2, 2, 7, 7),
               {"layer": "avgpool", "kernel": 3, "stride": 2, "padding": 1})
    layer_case("adaptive_avgpool", nn.AdaptiveAvgPool2d(1), torch.randn(2, 3, 4, 5), {"layer": "adaptive_avgpool"})
    layer_case("batchnorm2d_train", nn.BatchNorm2d(3), torch.randn(4, 3, 5, 5) * 2 + 1, {"layer": "batchnorm2d", "channels": 3})
    layer_case("batchnorm2d_eval", nn.BatchNorm2d(3), torch.randn(4, 3, 5, 5), {"layer": "batchnorm2d", "channels": 3}, train=False)
    layer_case("batchnorm1d_train", nn.BatchNorm1d(4), torch.randn(6, 4), {"layer": "batchnorm1d", "channels": 4})
    layer_case("relu", nn.ReLU(), torch.randn(3, 7), {"layer": "relu"})
    layer_case("gelu", nn.GELU(), torch.randn(3, 7) * 2, {"layer": "gelu"})
    layer_case("layernorm", nn.LayerNorm(6), torch.randn(2, 3, 6), {"layer": "layernorm", "features": 6})
    layer_case("attention", SelfAttention(8, 2), torch.randn(2, 5, 8), {"layer": "attention", "dim": 8, "heads": 2})
    # The attention module is wrapped: strip the "attn." prefix so keys are MultiheadAttention's own.
    _strip_prefix("attention", "attn.")
    layer_case("basicblock", BasicBlock(4, 8, stride=2, downsample=nn.Sequential(
        nn.Conv2d(4, 8, 1, stride=2, bias=False), nn.BatchNorm2d(8))), torch.randn(2, 4, 8, 8),
        {"layer": "basicblock", "in": 4, "planes": 8, "stride": 2})
    layer_case("bottleneck", Bottleneck(8, 4, stride=2, downsample=nn.Sequential(
        nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))), torch.randn(2, 8, 6, 6),
        {"layer": "bottleneck", "in": 8, "planes": 4, "stride": 2})
    layer_case("encoderblock", EncoderBlock(2, 8, 16, 0.0, 0.0), torch.randn(2, 5, 8),
               {"layer": "encoderblock", "dim": 8, "heads": 2, "mlp": 16})

    # Cross-entropy with label smoothing.
    logits = torch.randn(4, 5, requires_grad=True)
    labels = torch.tensor([0, 3, 4, 3])
    loss = F.cross_entropy(logits, labels, label_smoothing=0.1)
    loss.backward()
    save("cross_entropy", {"logits": logits.detach(), "labels": labels.float(), "loss": loss.detach().reshape(1),
                           "dlogits": logits.grad}, {"smoothing": 0.1})

    # A whole (tiny) ViT in eval mode: patch embedding, class token, encoder, head.
    vit = tvm.vision_transformer.VisionTransformer(image_size=8, patch_size=4, num_layers=2, num_heads=2,
                                                   hidden_dim=8, mlp_dim=16, num_classes=3)
    randomise(vit)
    vit.eval()
    x = torch.randn(2, 3, 8, 8)
    tensors = {"x": x, "y": vit(x).detach()}
    tensors.update({"param." + k: v for k, v in vit.state_dict().items()})
    save("vit_tiny_eval", tensors, {"image": 8, "patch": 4, "depth": 2, "heads": 2, "dim": 8, "mlp": 16, "classes": 3})

    # One SGD step of LeNet-5 (momentum, weight decay) on a batch: weights before and after.
    model = lenet5()
    model.train()
    x = torch.randn(8, 1, 28, 28)
    labels = torch.randint(0, 10, (8,))
    before = {"param." + k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    losses = []
    for _ in range(2):   # two steps, so the momentum buffer matters
        opt.zero_grad()
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    tensors = {"x": x, "labels": labels.float(), "losses": torch.tensor(losses)}
    tensors.update(before)
    tensors.update({"after." + k: v.detach() for k, v in model.state_dict().items()})
    save("lenet5_sgd", tensors, {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True, "steps": 2})

    # AdamW: three steps of a Linear layer; and the learning-rate schedules per epoch.
    lin = nn.Linear(5, 4)
    randomise(lin)
    x, labels = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 1, 0])
    tensors = {"x": x, "labels": labels.float()}
    tensors.update({"param." + k: v.detach().clone() for k, v in lin.state_dict().items()})
    opt = torch.optim.AdamW(lin.parameters(), lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(lin(x), labels).backward()
        opt.step()
    tensors.update({"after." + k: v.detach() for k, v in lin.state_dict().items()})
    lrs = {}
    for name, make in {"cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=6),
                       "step": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.1)}.items():
        o = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
        sched, seq = make(o), []
        for _ in range(6):
            seq.append(o.param_groups[0]["lr"])
            o.step()
            sched.step()
        lrs["lr." + name] = torch.tensor(seq, dtype=torch.float64)
    tensors.update(lrs)
    save("adamw_and_schedules", tensors, {"lr": 0.01, "weight_decay": 0.05, "steps": 3, "epochs": 6})

    checkpoints_both_ways()

    # torchvision's state_dict keys and shapes for the architectures apsweep names after it.
    specs = {
        "resnet18": (tvm.resnet18(num_classes=10), {"arch": "resnet18", "input": [3, 32, 32], "classes": 10}),
        "resnet50": (tvm.resnet50(num_classes=10), {"arch": "resnet50", "input": [3, 32, 32], "classes": 10}),
        "vit": (tvm.vision_transformer.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4,
                                                         hidden_dim=32, mlp_dim=64, num_classes=10),
                {"arch": "vit", "input": [3, 32, 32], "classes": 10, "patch": 8, "dim": 32, "depth": 2, "heads": 4, "mlp": 64}),
    }
    keys = {name: {"spec": spec, "state": {k: list(v.shape) for k, v in m.state_dict().items()}}
            for name, (m, spec) in specs.items()}
    with open(os.path.join(OUT, "torchvision_keys.json"), "w") as f:
        json.dump(keys, f, indent=1, sort_keys=True)
    print("wrote torchvision_keys.json")


def checkpoints_both_ways():
    """torch → apsweep: a safetensors file saved by torch; apsweep → torch: a file written by
    `apsweep train`, loaded here with strict=True. Both with the logits torch computes from them."""
    x = torch.randn(4, 1, 28, 28)
    model = vgg_small(width=0.25)
    randomise(model)
    with torch.no_grad():
        for name, b in model.named_buffers():
            if name.endswith("num_batches_tracked"):
                b.fill_(17)
    model.eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(OUT, "torch_vgg_small.safetensors"))
    save("torch_vgg_small_logits", {"x": x, "y": model(x).detach()}, {"width": 0.25})

    root = os.path.join(os.path.dirname(__file__), "..")
    ours = os.path.join(OUT, "apsweep_vgg_small.safetensors")
    subprocess.run(["swift", "build", "--product", "apsweep"], cwd=root, check=True)
    subprocess.run([os.path.join(root, ".build", "debug", "apsweep"), "train", "--model", "vgg-small", "--width", "0.25",
                    "--epochs", "1", "--limit", "256", "--batch", "64", "--threads", "1", "--out", ours], cwd=root, check=True)
    os.remove(ours[:-len(".safetensors")] + ".json")
    from safetensors.torch import load_file
    state = load_file(ours)
    loaded = vgg_small(width=0.25)
    loaded.load_state_dict(state, strict=True)   # raises on any missing, unexpected or misshaped key
    loaded.eval()
    save("apsweep_vgg_small_logits", {"x": x, "y": loaded(x).detach()}, {"width": 0.25, "loaded_with": "strict=True"})


def winograd_cases():
    """Convolutions apsweep computes with Winograd F(4x4, 3x3) (3x3, stride 1, >= 8 input channels):
    odd sizes (partial tiles), padding 1 and 0. Seeded on their own, so `--only winograd` rewrites
    just these files."""
    torch.manual_seed(43)
    layer_case("conv2d_winograd_p1", nn.Conv2d(16, 8, 3, padding=1), torch.randn(3, 16, 9, 11),
               {"layer": "conv2d", "in": 16, "out": 8, "kernel": 3, "stride": 1, "padding": 1, "bias": True})
    layer_case("conv2d_winograd_valid", nn.Conv2d(8, 12, 3, bias=False), torch.randn(2, 8, 10, 7),
               {"layer": "conv2d", "in": 8, "out": 12, "kernel": 3, "stride": 1, "padding": 0, "bias": False})


def _strip_prefix(name, prefix):
    from safetensors import safe_open
    path = os.path.join(OUT, name + ".safetensors")
    with safe_open(path, "pt") as f:
        meta = f.metadata()
        tensors = {k.replace("." + prefix, ".", 1) if "." + prefix in k else k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, path, metadata=meta)


if __name__ == "__main__":
    if sys.argv[1:] == ["--only", "winograd"]:
        winograd_cases()
    else:
        main()
        winograd_cases()
