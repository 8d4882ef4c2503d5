"""Foi's (2009) debiasing of clipped noise (openimagen.edit.clipped_noise): the clipped mean against numerical
integration and its closed-form values, and its inverse as a round trip over the whole range (hypothesis)."""
import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from openimagen.edit.clipped_noise import clipped_mean, debias_clipped


def integrated_mean(x: float, s: float) -> float:
    """E[clip(x + s z, -1, 1)], z ~ N(0, 1), by the trapezoid rule on z in [-12, 12] (float64)."""
    z = torch.linspace(-12, 12, 400_001, dtype=torch.float64)
    w = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return float(torch.trapezoid((x + s * z).clamp(-1, 1) * w, z))


def test_the_clipped_mean_equals_the_integral():
    for x in (-1.0, -0.93, -0.5, 0.0, 0.4, 0.88, 0.99, 1.0):
        for s in (0.01, 0.1, 0.2, 0.35):
            assert abs(float(clipped_mean(torch.tensor(x), s)) - integrated_mean(x, s)) < 1e-7, (x, s)


def test_closed_form_values():
    s = 0.2
    assert abs(float(clipped_mean(torch.tensor(1.0), s)) - (1 - s / math.sqrt(2 * math.pi))) < 1e-12   # 0.920
    assert abs(float(clipped_mean(torch.tensor(-1.0), s)) + (1 - s / math.sqrt(2 * math.pi))) < 1e-12
    assert float(clipped_mean(torch.tensor(0.0), s)) == 0.0                                       # symmetric
    x = torch.linspace(-1, 1, 101)
    assert torch.equal(clipped_mean(x, 0.0), x.double())                                       # no noise


@settings(max_examples=200, deadline=None)
@given(x=st.floats(-1, 1), s=st.floats(0.001, 0.5))
def test_debiasing_inverts_the_clipped_mean(x, s):
    y = clipped_mean(torch.tensor([x], dtype=torch.float64), s)
    assert abs(float(debias_clipped(y, s)) - x) < 1e-9


def test_identity_away_from_the_ends_and_a_grey_background_comes_back_white():
    s = torch.tensor([0.05, 0.2]).view(2, 1, 1, 1)
    y = torch.linspace(-0.9, 0.9, 64).expand(2, 3, 64, 64).contiguous()
    out = debias_clipped(y, s)
    far = (y.abs() <= 1 - 5 * s)                                         # 5 sigma from both ends
    assert out.dtype == y.dtype and out.shape == y.shape
    assert (out - y)[far].abs().max() < 1e-6
    grey = torch.full((1, 3, 4, 4), 1 - 0.2 / math.sqrt(2 * math.pi))   # the mean of clipped noise on white
    assert (debias_clipped(grey, 0.2) - 1).abs().max() < 1e-6
    assert torch.equal(debias_clipped(torch.ones(1, 3, 2, 2), 0.2), torch.ones(1, 3, 2, 2))   # beyond reach -> 1
    assert torch.equal(debias_clipped(y, 0.0), y)
