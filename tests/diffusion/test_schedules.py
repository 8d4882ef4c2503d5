"""Schedule identities, checked against closed forms."""
import math

import pytest
from pydantic import ValidationError
import torch

from openimagen.diffusion.schedules import SCHEDULES, ScheduleConfig, make_schedule, sampling_sigmas
from openimagen.errors import ConfigError, InvalidArgumentError, UnknownNameError

T = torch.linspace(0, 1, 257, dtype=torch.float64)


@pytest.fixture(params=sorted(SCHEDULES))
def schedule(request):
    return make_schedule(ScheduleConfig(name=request.param))


def test_variance_preserving(schedule):
    assert torch.allclose(schedule.alpha(T) ** 2 + schedule.sigma(T) ** 2, torch.ones_like(T), atol=1e-12)


def test_logsnr_is_monotone_and_hits_its_ends(schedule):
    lam = schedule.logsnr(T)
    assert (lam[1:] < lam[:-1]).all()
    assert lam[0].item() == pytest.approx(20.0, abs=1e-9)
    assert lam[-1].item() == pytest.approx(-20.0, abs=1e-9)


def test_accessors_agree(schedule):
    lam = schedule.logsnr(T)
    assert torch.allclose(torch.log(schedule.alpha(T) ** 2 / schedule.sigma(T) ** 2), lam, atol=1e-8)
    assert torch.allclose(schedule.noise_level(T), schedule.sigma(T) / schedule.alpha(T), rtol=1e-10)


def test_inverses(schedule):
    assert torch.allclose(schedule.t_from_logsnr(schedule.logsnr(T)), T, atol=1e-9)
    assert torch.allclose(schedule.t_from_noise_level(schedule.noise_level(T)), T, atol=1e-9)


def test_cosine_matches_closed_form_alpha():
    """Untruncated cosine: alpha_t = cos(pi t / 2) (Nichol & Dhariwal 2021)."""
    sch = make_schedule(ScheduleConfig("cosine", logsnr_min=-60, logsnr_max=60))
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    assert torch.allclose(sch.alpha(t), torch.cos(math.pi * t / 2), atol=1e-9)


def test_shift_moves_logsnr_by_2_log_shift():
    base, shifted = make_schedule("cosine"), make_schedule(ScheduleConfig("cosine", shift=4.0))
    assert torch.allclose(shifted.logsnr(T), base.logsnr(T) - 2 * math.log(4.0), atol=1e-10)


@pytest.mark.parametrize("spacing", ["time", "logsnr", "karras"])
def test_sampling_grid(schedule, spacing):
    s = sampling_sigmas(schedule, 10, spacing)
    assert s.shape == (11,) and s[-1] == 0 and (s[1:] < s[:-1]).all()


def test_img2img_grid_starts_lower():
    sch = make_schedule("cosine")
    s = sampling_sigmas(sch, 10, t_max=0.5)
    assert s[0].item() == pytest.approx(sch.noise_level(torch.tensor(0.5)).item(), rel=1e-5)


def test_bad_inputs():
    with pytest.raises(InvalidArgumentError, match="steps"):
        sampling_sigmas(make_schedule("cosine"), 0)
    with pytest.raises(UnknownNameError, match="cosine"):
        make_schedule("sqrt")
    with pytest.raises(UnknownNameError, match="karras"):
        sampling_sigmas(make_schedule("cosine"), 4, "quadratic")
    for lo, hi in [(5, -5), (3, 3)]:               # refused when the config is read, before any schedule is built
        with pytest.raises(ConfigError, match=f"logsnr_min \\({lo}.0\\) must be below logsnr_max"):
            ScheduleConfig.from_dict({"name": "cosine", "logsnr_min": lo, "logsnr_max": hi})
        with pytest.raises(ValidationError, match="must be below"):
            ScheduleConfig("cosine", logsnr_min=lo, logsnr_max=hi)
    with pytest.raises(ConfigError, match="bogus"):
        ScheduleConfig.from_dict({"name": "cosine", "bogus": 1})
