"""Every sampler stays finite on every grid ``sampling_sigmas`` can return, including the narrow ones
(image-to-image below Karras's clip, t_max down to subnormal floats, where levels are one ulp apart)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from openimagen.diffusion.schedules import SCHEDULES, SPACINGS, ScheduleConfig, make_schedule, sampling_sigmas
from openimagen.samplers import SAMPLERS, get_sampler
from openimagen.samplers.exp_integrator import log_step, trapezoid_weight
from tests.samplers.gaussian import dummy_cond, exact_flow, isotropic_denoiser

# (schedule config, steps, spacing, t_max)
GRIDS = [
    (ScheduleConfig(name="linear_logsnr"), 10, "karras", 0.05),     # used to collapse to ten equal sigmas
    (ScheduleConfig(), 20, "karras", 1.0),
    (ScheduleConfig(shift=0.5), 16, "time", 1.0),
    (ScheduleConfig(), 7, "time", 1e-300),
    (ScheduleConfig(shift=4.0), 50, "logsnr", 5e-324),
    (ScheduleConfig(name="linear_logsnr", shift=0.25), 200, "karras", 1e-12),
    (ScheduleConfig(), 1, "karras", 1.0),
]


def grid(config, steps, spacing, t_max):
    return sampling_sigmas(make_schedule(config), steps, spacing, t_max=t_max)


def run_all(sigmas, n=8):
    """{sampler name: output} from the same x_T (float32, shape (n,))."""
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(n, generator=g) * sigmas[0]
    return x_T, {name: get_sampler(name)(isotropic_denoiser, x_T, sigmas, cond=dummy_cond(1),
                                         generator=torch.Generator().manual_seed(1)) for name in sorted(SAMPLERS)}


def assert_coefficients_finite(sigmas):
    """DPM-Solver++'s h and r = h_prev / h and Heun's weight w(h) on every step between nonzero levels."""
    h = [log_step(s, s_next) for s, s_next in zip(sigmas[:-2], sigmas[1:-1])]
    r = [h_prev / h_i for h_prev, h_i in zip(h[:-1], h[1:])]
    w = [trapezoid_weight(h_i) for h_i in h]
    assert all(torch.isfinite(v) and v > 0 for v in h + r + w)
    assert all(v < 1 for v in w)


@pytest.mark.parametrize("case", GRIDS, ids=lambda c: f"{c[0].name}-{c[0].shift}-{c[2]}-{c[1]}-{c[3]:g}")
def test_every_sampler_is_finite_and_right_on_listed_grids(case):
    sigmas = grid(*case)
    assert_coefficients_finite(sigmas)
    x_T, outs = run_all(sigmas)
    for name, x in outs.items():
        assert x.dtype == torch.float32 and torch.isfinite(x).all(), name


def test_dpmpp_on_the_formerly_collapsed_karras_grid_follows_the_flow():
    """Right value, not only finite: on [4.5e-5, 1.2e-4] the flow barely moves, x0 = x_T 0.2 / sqrt(0.04 + s_T^2)."""
    sigmas = grid(*GRIDS[0])
    x_T, outs = run_all(sigmas)
    assert torch.allclose(outs["dpmpp_2m"].double(), exact_flow(x_T, sigmas[0], 0), rtol=1e-6, atol=0)


@settings(max_examples=25, deadline=None)
@given(config=st.builds(ScheduleConfig, name=st.sampled_from(sorted(SCHEDULES)), shift=st.floats(0.25, 4.0)),
       spacing=st.sampled_from(SPACINGS), steps=st.integers(1, 200),
       t_max=st.floats(min_value=0, max_value=1, exclude_min=True))
def test_every_sampler_is_finite_on_any_grid(config, spacing, steps, t_max):
    sigmas = grid(config, steps, spacing, t_max)
    assert_coefficients_finite(sigmas)
    for name, x in run_all(sigmas, n=4)[1].items():
        assert torch.isfinite(x).all(), name
