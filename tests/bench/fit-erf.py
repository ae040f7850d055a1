#!/usr/bin/env python3
"""fit-erf.py: the coefficients of the AVX2 kernels' erf (lib/kernels-avx2.c), erf(x) = x P(x^2) / Q(x^2) on
[0, 3.92] with Q(0) = 1 (erf is odd, so the same holds on [-3.92, 0]). A near-minimax rational fit: linearised
least squares reweighted by 1/Q (Sanathanan-Koerner) and by the error (Lawson), on Chebyshev-spaced points.
Prints the coefficients and the largest error of the float32 evaluation the kernel does. Needs numpy; not
part of `make check`."""
import math

import numpy as np

LIMIT = 3.92  # above this, erf(x) rounds to 1.0 in float32
NP, NQ = 7, 5  # terms of P and Q in x^2


def fit():
    x = LIMIT * (1 - np.cos(np.linspace(0, np.pi, 6000))) / 2
    x = x[1:]
    f = np.array([math.erf(v) for v in x])
    t = x * x
    w, q_prev, best = np.ones_like(x) / len(x), np.ones_like(x), None
    for _ in range(200):
        a = np.hstack([x[:, None] * t[:, None] ** np.arange(NP), -(f[:, None] * t[:, None] ** np.arange(1, NQ))])
        s = np.sqrt(w) / q_prev
        sol, *_ = np.linalg.lstsq(a * s[:, None], f * s, rcond=None)
        p, q = sol[:NP], np.concatenate([[1.0], sol[NP:]])
        q_prev = np.polyval(q[::-1], t)
        err = x * np.polyval(p[::-1], t) / q_prev - f
        if best is None or np.abs(err).max() < best[0]:
            best = (np.abs(err).max(), p, q)
        w = w * np.abs(err)
        w /= w.sum()
    return best


def float32_error(p, q):
    xs = np.linspace(0, 6, 3000001).astype(np.float32)
    ref = np.array([math.erf(v) for v in xs.astype(np.float64)])
    x = np.minimum(xs, np.float32(LIMIT))
    t = x * x
    pv = np.float32(p[-1])
    for c in p[-2::-1]:
        pv = pv * t + np.float32(c)
    qv = np.float32(q[-1])
    for c in q[-2::-1]:
        qv = qv * t + np.float32(c)
    y = np.minimum(x * pv / qv, np.float32(1.0))
    e = np.abs(y.astype(np.float64) - ref)
    return e.max(), float(xs[e.argmax()])


err, p, q = fit()
print("max error, exact arithmetic: %.2e" % err)
print("max error, float32: %.2e at x = %.4f" % float32_error(p, q))
print("P (x^0 first):", ", ".join("%.9g" % v for v in p))
print("Q (x^0 first):", ", ".join("%.9g" % v for v in q))
