"""Fixtures for the Compression tests: NumPy's AP2/AP3 on weights PyTorch wrote (SciPy's
correlations are in Scripts/gen_stats_fixtures.py). Run in the throwaway venv (Scripts/torch-venv); CI never runs it.
    .venv-torch/bin/python Scripts/gen_metric_fixtures.py
"""
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "CompressionTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(20261126)

# Weights as PyTorch writes them; the metrics computed by NumPy in float64.
torch.manual_seed(7)
original = {"fc1.weight": torch.randn(64, 50) * 0.1, "fc2.weight": torch.randn(10, 64) * 0.3}
pruned = {}
for k, w in original.items():
    m = (torch.rand_like(w) > 0.4).float()
    pruned[k] = w * m + 0.01 * torch.randn_like(w) * m
save_file(original, os.path.join(OUT, "original.safetensors"))
save_file(pruned, os.path.join(OUT, "pruned.safetensors"))
expected = {}
for k in original:
    a = original[k].double().numpy()
    b = pruned[k].double().numpy()
    d = (b - a).ravel()
    rows_a = a.var(axis=1)                       # per-row variance (population)
    s = np.repeat(np.maximum(rows_a, 1e-12), a.shape[1])
    rows_b = np.maximum(b.var(axis=1), 1e-12)
    t = np.repeat(rows_b, a.shape[1])
    expected[k] = {
        "ap2": float(d @ d),
        "ap3_sigma2_0.5": float(d @ d / (2 * 0.5)),
        "ap3_diag_row": float(0.5 * np.sum(d * d / s)),
        "ap3_diag_row_separate": float(0.5 * np.sum(s / t + d * d / t - 1 + np.log(t) - np.log(s))),
        "w2_diag_row_separate": float(np.sqrt(d @ d + np.sum((np.sqrt(s) - np.sqrt(t)) ** 2))),
        "mahalanobis_code": float(np.sqrt(0.001 / np.sqrt(d.size) * (d @ d))),
    }
with open(os.path.join(OUT, "metrics_numpy.json"), "w") as f:
    json.dump(expected, f, indent=1, sort_keys=True)
print("wrote", OUT)
