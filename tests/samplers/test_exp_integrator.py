"""The exponential-integrator coefficients shared by Euler, Heun and DPM-Solver++ (closed forms)."""
import math

import pytest
import torch

from openimagen.samplers.exp_integrator import first_order_step, log_step, trapezoid_weight

F64 = dict(dtype=torch.float64)


@pytest.mark.parametrize("h", [1e-300, 1e-16, 1e-8, 1e-4, 0.999e-3, 1e-3, 1.001e-3, 0.1, 1.0, 6.6, 40.0, 1e300])
def test_trapezoid_weight_matches_its_definition(h):
    """w(h) = (h - 1 + e^-h) / h to 1e-12 relative. Reference: its Taylor series below 1e-2 (truncation below
    3e-15 relative there), the direct form in double above (cancellation below 1e-14 there)."""
    exact = h / 2 - h * h / 6 + h ** 3 / 24 - h ** 4 / 120 if h < 1e-2 else (h - 1 + math.exp(-h)) / h
    assert trapezoid_weight(torch.tensor(h, **F64)).item() == pytest.approx(exact, rel=1e-12)


def test_trapezoid_weight_limits():
    """Small h: h/2, EDM's trapezoid weight on d' (hence EDM's Heun to second order). Large h: tends to 1,
    so a long step never amplifies D(s') - D(s)."""
    h = torch.logspace(-20, 3, 200, **F64)
    w = torch.stack([trapezoid_weight(v) for v in h])
    assert ((w > 0) & (w < 1)).all() and (w[1:] > w[:-1]).all()
    assert w[0].item() == pytest.approx(0.5e-20, rel=1e-15)
    assert w[-1].item() == pytest.approx(1 - 1e-3, rel=1e-12)


def test_log_step_of_adjacent_floats_is_positive():
    """ln(s) - ln(s') can round to 0 (or be off by 4x) for neighbouring floats; log1p((s - s')/s') does not."""
    for s in (2e-3, 4.54e-5, 1.0, 8e4, 5e-300):
        s = torch.tensor(s, **F64)
        s_next = torch.nextafter(s, torch.zeros((), **F64))
        assert log_step(s, s_next).item() == pytest.approx(((s - s_next) / s_next).item(), rel=1e-12)


def test_first_order_step_is_edm_euler():
    """(s'/s) x + (1 - s'/s) d = x + (s' - s)(x - d)/s (EDM Alg. 1 line 5); at s' = 0 it is d exactly."""
    x, d = torch.randn(16, generator=torch.Generator().manual_seed(0)), torch.randn(16)
    s, s_next = torch.tensor(7.0, **F64), torch.tensor(0.3, **F64)
    assert torch.allclose(first_order_step(x, d, s, s_next), x + (s_next - s) * (x - d) / s, atol=1e-6)
    assert torch.equal(first_order_step(x, d, s, torch.zeros((), **F64)), d)
    assert first_order_step(x, d, s, s_next).dtype == torch.float32
