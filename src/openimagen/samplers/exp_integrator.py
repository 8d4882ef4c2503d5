"""Exponential-integrator arithmetic shared by the ODE solvers (Lu et al. 2022, "DPM-Solver++", Sec. 3-4).

In the VE form x = x0 + s n, with lambda = -ln s (half the log-SNR), the probability-flow ODE
dx/ds = (x - D(x; s)) / s has the exact solution over a step s -> s' (h = lambda' - lambda > 0)

    x' = (s'/s) x + integral_0^h e^{-(h - tau)} D(tau) d tau,

whose linear part is integrated exactly; only D is approximated. Coefficients are computed from the
0-d grid values (float64 from ``sampling_sigmas``) and multiply x of any float dtype, which keeps its dtype.

Notation
    s, s'    current and next noise level (0-d tensors), s > s' > 0
    h        lambda' - lambda = ln(s / s')
    d        D(x; s), the denoiser's x0 estimate, same shape and dtype as x
"""
from __future__ import annotations

import torch

# Below this h the trapezoid weight uses its Taylor series (relative error < 1e-12 on either side).
_SERIES_BELOW = 1e-3


def log_step(s: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
    """h = ln(s / s') as log1p((s - s') / s'): positive (not rounded to 0) even for adjacent floats."""
    return torch.log1p((s - s_next) / s_next)


def first_order_step(x: torch.Tensor, d: torch.Tensor, s: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
    """x' = (s'/s) x + (1 - s'/s) d: the Euler step in s, which is also DDIM (eta = 0) and DPM-Solver++(1).

    Exact when D is constant over the step; at s' = 0 it returns d. x, d: any shape, float dtype of x.
    """
    ratio = s_next / s
    return ratio * x + (1 - ratio) * d


def trapezoid_weight(h: torch.Tensor) -> torch.Tensor:
    """w(h) = (h - 1 + e^{-h}) / h = 1 + expm1(-h) / h: the weight on D(s') - D(s) when D is linear in lambda.

    Integrating e^{-(h - tau)} (d + (d' - d) tau / h) over [0, h] gives (1 - e^{-h}) d + w(h) (d' - d).
    w(h) = h/2 - h^2/6 + h^3/24 - h^4/120 + ... for small h (EDM's trapezoid: weights h/2 on both ends) and tends to 1
    (bounded) as h -> infinity. The direct form loses relative precision as h -> 0, so small h use the series.
    """
    if h < _SERIES_BELOW:
        return h * (1 / 2 - h * (1 / 6 - h * (1 / 24 - h / 120)))
    return 1 + torch.expm1(-h) / h
