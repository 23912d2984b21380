#!/usr/bin/env python3
# Fits erf(x) ≈ x·P(x²)/Q(x²) on [0, 4] (P degree 6, Q degree 4, Q(0) = 1) by iteratively
# reweighted linearised least squares, then reports the error of a Float32 evaluation.
import numpy as np, math
x = np.linspace(1e-6, 4.0, 20001)
f = np.array([math.erf(v) for v in x])
t = x * x
w = np.ones_like(x)
coef = None
for it in range(30):
    # unknowns: p0..p6, q1..q4 ; residual: x*P(t) - f*(1 + q1 t + ...)
    A = np.hstack([np.stack([x * t**k for k in range(7)], 1), np.stack([-f * t**k for k in range(1, 5)], 1)])
    sol, *_ = np.linalg.lstsq(A * w[:, None], f * w, rcond=None)
    p, q = sol[:7], np.concatenate([[1.0], sol[7:]])
    approx = x * np.polyval(p[::-1], t) / np.polyval(q[::-1], t)
    err = np.abs(approx - f)
    w = w * (err / err.max() + 1e-3) ** 0.5   # Lawson-like reweighting toward minimax
    w /= w.max()
print("double max abs error", err.max())
# Float32 evaluation (Horner, as the Swift code does)
pf, qf = p.astype(np.float32), q.astype(np.float32)
xs = np.linspace(-5, 5, 2000001).astype(np.float32)
xc = np.clip(xs, np.float32(-4), np.float32(4))
tc = xc * xc
P = np.full_like(tc, pf[6])
for k in range(5, -1, -1): P = P * tc + pf[k]
Q = np.full_like(tc, qf[4])
for k in range(3, -1, -1): Q = Q * tc + qf[k]
y = xc * P / Q
ref = np.array([math.erf(float(v)) for v in xs[::10]])
e = np.abs(y[::10].astype(np.float64) - ref)
print("float32 max abs error", e.max(), "at", xs[::10][e.argmax()])
print("p =", [float(v) for v in pf]); print("q =", [float(v) for v in qf])
