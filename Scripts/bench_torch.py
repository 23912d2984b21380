"""PyTorch's CPU training throughput for one model, printed as images/s on the last line.

Called by `apsweep bench train` with the same model, batch and thread count, so both run in one
benchmark on the same machine. Needs torch (Scripts/torch-venv makes a throwaway venv).

With --serve it builds and warms the model once, then answers each line "measure SECONDS" on stdin
with one line of images/s, until stdin closes: apsweep alternates short rounds of its own and of
PyTorch's, so that both sides see the same moments of a noisy machine.
"""
import argparse
import sys
import time

import torch
import torch.nn.functional as F

from torch_models import twin

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--batch", type=int, default=128)
p.add_argument("--seconds", type=float, default=4.0)
p.add_argument("--input", default="1x28x28", help="CxHxW")
p.add_argument("--patch", type=int, default=7, help="ViT patch size")
p.add_argument("--serve", action="store_true", help="answer 'measure SECONDS' lines on stdin")
a = p.parse_args()
c, h, w = (int(v) for v in a.input.split("x"))

torch.set_num_threads(a.threads)
torch.manual_seed(1)
model = twin(a.model, classes=10, channels=c, size=h, patch=a.patch, dim=64, depth=4, heads=4)
model.train()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = torch.randn(a.batch, c, h, w)
y = torch.randint(0, 10, (a.batch,))


def step():
    opt.zero_grad(set_to_none=False)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()


def measure(seconds):
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or steps < 3:
        step()
        steps += 1
    return steps * a.batch / (time.perf_counter() - start)


for _ in range(3):
    step()
if not a.serve:
    print(measure(a.seconds))
    sys.exit(0)
print("ready", flush=True)
for line in sys.stdin:
    words = line.split()
    if len(words) == 2 and words[0] == "measure":
        print(measure(float(words[1])), flush=True)
    else:
        print(f"error: expected 'measure SECONDS', got {line.strip()!r}", flush=True)
