"""NumPy doing AP2 and Gaussian AP3 (σ² = 1) over the same number of float32 weights, in float64
sums, as `apsweep bench metrics` does; prints seconds on the last line. numpy only (no torch)."""
import sys
import time

import numpy as np

n = int(sys.argv[1]) if len(sys.argv) > 1 else 138_000_000
rng = np.random.default_rng(0)
a = rng.standard_normal(n, dtype=np.float32)
b = a.copy()
b[::2] = 0
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    d = a.astype(np.float64) - b.astype(np.float64)     # float64 like apsweep's sums
    ap2 = float(np.dot(d, d))
    ap3 = ap2 / 2.0
    best = min(best, time.perf_counter() - t)
    del d
print(ap2, ap3)
print(best)
