"""A checkpoint written by PyTorch, evaluated by PyTorch and by `apsweep eval`, side by side.

Trains the LeNet-5 twin (Scripts/torch_models.py) on Fashion-MNIST for one epoch in PyTorch,
saves its state_dict as safetensors (the three lines the README shows), evaluates it on the test
split with apsweep's preprocessing (x/255, normalised by Fashion-MNIST's mean 0.2860 and std
0.3530), runs `apsweep eval` on the same file, and prints both.

  .venv-torch/bin/python Scripts/torch_checkpoint_eval.py [--data /usr/share/datasets/fashion-mnist]
"""
import argparse
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from torch_models import lenet5  # noqa: E402


def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def split(directory, prefix):
    def find(stem, kind):
        for name in (f"{prefix}-{stem}-{kind}-ubyte.gz", f"{prefix}-{stem}-{kind}-ubyte"):
            if os.path.exists(os.path.join(directory, name)):
                return os.path.join(directory, name)
        raise SystemExit(f"no {prefix} {stem} in {directory}")
    x = torch.from_numpy(idx(find("images", "idx3")).astype(np.float32) / 255)
    y = torch.from_numpy(idx(find("labels", "idx1")).astype(np.int64))
    return ((x - 0.2860) / 0.3530).unsqueeze(1), y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default="/tmp/lenet5-torch.safetensors")
    ap.add_argument("--apsweep", default=os.path.join(os.path.dirname(__file__), "..", ".build", "release", "apsweep"))
    args = ap.parse_args()
    torch.manual_seed(0)
    xtr, ytr = split(args.data, "train")
    xte, yte = split(args.data, "t10k")
    model = lenet5()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    perm = torch.randperm(len(ytr))
    for i in range(0, len(ytr), 128):
        b = perm[i:i + 128]
        opt.zero_grad()
        F.cross_entropy(model(xtr[b]), ytr[b]).backward()
        opt.step()
    # The README's three lines.
    from safetensors.torch import save_file
    model.eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.out)
    with torch.no_grad():
        logits = torch.cat([model(xte[i:i + 500]) for i in range(0, len(yte), 500)])
    torch_acc = 100 * (logits.argmax(1) == yte).double().mean().item()
    torch_loss = F.cross_entropy(logits.double(), yte).item()
    out = subprocess.run([args.apsweep, "eval", args.out, "--model", "lenet5", "--data", args.data, "--json"],
                         check=True, capture_output=True, text=True)
    ours = json.loads(out.stdout)
    print(f"PyTorch {torch.__version__}: test accuracy {torch_acc:.2f}%, mean cross-entropy {torch_loss:.6f}")
    print(f"apsweep eval:      test accuracy {ours['accuracy']:.2f}%, mean cross-entropy {ours['loss']:.6f}")
    print(f"difference: accuracy {abs(ours['accuracy'] - torch_acc):.4f} points, loss {abs(ours['loss'] - torch_loss):.2e}")


if __name__ == "__main__":
    main()
