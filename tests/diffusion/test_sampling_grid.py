"""Sampling grids: Karras eq. 5 and log-SNR spacing end at sigma_min, the Karras clip never collapses,
and every grid is strictly decreasing and finite (property test over schedules, spacings, steps, t_max)."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from openimagen.diffusion.schedules import (KARRAS_SIGMA_MAX, KARRAS_SIGMA_MIN, SCHEDULES, SPACINGS, ScheduleConfig,
                                            karras_range, make_schedule, sampling_sigmas)


def noise_level(schedule, t: float) -> float:
    return float(schedule.noise_level(torch.tensor(t, dtype=torch.float64)))


def test_karras_grid_is_eq5_and_reaches_sigma_min():
    """Karras et al. 2022 eq. 5: sigma_i = (max^(1/rho) + i/(N-1) (min^(1/rho) - max^(1/rho)))^rho, i < N; then 0."""
    s = sampling_sigmas(make_schedule("cosine"), 20, "karras")
    i, a, b = torch.arange(20, dtype=torch.float64), 80.0 ** (1 / 7), 0.002 ** (1 / 7)
    assert torch.allclose(s[:-1], (a + i / 19 * (b - a)) ** 7, rtol=1e-13, atol=0)
    assert (s[0].item(), s[-2].item(), s[-1].item()) == (80.0, 0.002, 0.0)


def test_logsnr_grid_is_uniform_in_lambda_between_the_ends():
    sch = make_schedule("cosine")
    s = sampling_sigmas(sch, 20, "logsnr")
    assert (s[0].item(), s[-2].item(), s[-1].item()) == (noise_level(sch, 1.0), noise_level(sch, 0.0), 0.0)
    dlam = torch.diff(torch.log(s[:-1]))
    assert torch.allclose(dlam, torch.full_like(dlam, -20.0 / 19), rtol=1e-12)


def test_time_grid_is_uniform_in_t():
    """DDIM practice: t = linspace(t_max, t_min, steps + 1)[:-1], then 0 (t_min itself is not visited)."""
    sch = make_schedule(ScheduleConfig("cosine", shift=0.5))
    s = sampling_sigmas(sch, 16, "time")
    t = torch.linspace(1, 0, 17, dtype=torch.float64)[:-1]
    assert torch.allclose(s[:-1], sch.noise_level(t), rtol=1e-15, atol=0) and s[-1] == 0


@pytest.mark.parametrize("spacing", SPACINGS)
def test_one_step_is_start_then_zero(spacing):
    sch = make_schedule("cosine")
    top = KARRAS_SIGMA_MAX if spacing == "karras" else noise_level(sch, 1.0)
    assert sampling_sigmas(sch, 1, spacing).tolist() == [top, 0.0]


def test_karras_uses_the_schedule_range_below_its_clip():
    """Image-to-image at t_max = 0.05 on linear_logsnr spans [4.5e-5, 1.2e-4], wholly below 0.002: the clip
    used to give ten equal sigmas (and DPM-Solver++ 0/0). Now it is Karras spacing over the schedule's range."""
    sch = make_schedule(ScheduleConfig(name="linear_logsnr"))
    s = sampling_sigmas(sch, 10, "karras", t_max=0.05)
    assert s.shape == (11,) and (s[1:] < s[:-1]).all() and s[-1] == 0
    assert (s[0].item(), s[-2].item()) == (noise_level(sch, 0.05), noise_level(sch, 0.0))


def test_karras_range_clips_only_a_real_overlap():
    assert karras_range(1e4, 1e-5) == (KARRAS_SIGMA_MAX, KARRAS_SIGMA_MIN)
    assert karras_range(50.0, 1e-5) == (50.0, KARRAS_SIGMA_MIN)
    assert karras_range(1e-3, 1e-5) == (1e-3, 1e-5)              # wholly below 0.002
    assert karras_range(1e4, 100.0) == (1e4, 100.0)              # wholly above 80
    assert karras_range(KARRAS_SIGMA_MIN, 1e-5) == (KARRAS_SIGMA_MIN, 1e-5)   # touching: no interval


schedules = st.builds(ScheduleConfig, name=st.sampled_from(sorted(SCHEDULES)), shift=st.floats(0.25, 4.0))
t_maxes = st.floats(min_value=0, max_value=1, exclude_min=True)   # subnormals included


@settings(max_examples=300, deadline=None)
@given(config=schedules, spacing=st.sampled_from(SPACINGS), steps=st.integers(1, 200), t_max=t_maxes)
def test_every_grid_is_strictly_decreasing_and_finite(config, spacing, steps, t_max):
    sch = make_schedule(config)
    s = sampling_sigmas(sch, steps, spacing, t_max=t_max)
    assert s.dtype == torch.float64 and s.device.type == "cpu" and s.shape == (steps + 1,)
    assert torch.isfinite(s).all() and s[-1].item() == 0.0 and (s[1:] < s[:-1]).all()
    top = noise_level(sch, t_max)
    if spacing == "karras":
        hi, lo = min(top, KARRAS_SIGMA_MAX), max(noise_level(sch, 0.0), KARRAS_SIGMA_MIN)
        top = hi if lo < hi else top
    assert s[0].item() == top


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("t_max", [5e-324, 1e-300, 1e-200])
def test_tiny_t_max_is_nudged_apart(spacing, t_max):
    """All levels round to s(0): each is nudged to the next float below its predecessor."""
    sch = make_schedule("cosine")
    s = sampling_sigmas(sch, 5, spacing, t_max=t_max)
    below = [noise_level(sch, 0.0)]
    for _ in range(4):
        below.append(math.nextafter(below[-1], 0))
    assert s.tolist() == below + [0.0]
