"""Heun (EDM Alg. 1 in exponential-integrator form) against the exact solution for a Gaussian.

Closed-form layer: for N(0, 0.2^2) the exact denoiser is D(x, s) = x 0.04 / (0.04 + s^2) and the
probability-flow ODE maps x_T at s_T to x0 = x_T 0.2 / sqrt(0.04 + s_T^2) (``gaussian.exact_flow``).
Samples are 1-D; every sampler is linear in x here, so one seed serves all comparisons.
"""
import pytest
import torch

from openimagen.diffusion.schedules import SPACINGS, ScheduleConfig, make_schedule, sampling_sigmas
from openimagen.samplers import get_sampler
from tests.samplers.gaussian import STD, dummy_cond, exact_flow, isotropic_denoiser

SCHEDULES = {"default": ScheduleConfig(), "shipped": ScheduleConfig(shift=0.5)}  # base stage: cosine, shift 0.5


def solve(sampler, steps, spacing, schedule="default", n=2000):
    """(sample, x_T, sigmas) for ``n`` 1-D samples, float32, seed 0."""
    sigmas = sampling_sigmas(make_schedule(SCHEDULES[schedule]), steps, spacing)
    x_T = torch.randn(n, generator=torch.Generator().manual_seed(0)) * sigmas[0]
    sampler = get_sampler(sampler) if isinstance(sampler, str) else sampler
    return sampler(isotropic_denoiser, x_T, sigmas, cond=dummy_cond(1)), x_T, sigmas


def exact_on_grid(x_T, sigmas):
    """What an exact ODE solver returns on this grid: the exact flow down to sigmas[-2], then the final step
    x = D(x; sigmas[-2]) that every sampler takes to sigma = 0 (EDM Alg. 1 makes no correction there)."""
    return isotropic_denoiser(exact_flow(x_T, sigmas[0], sigmas[-2]), sigmas[-2], None)


def error(x, reference):
    return (x.double() - reference).abs().mean().item()


def edm_slope_heun(denoiser, x, sigmas, *, cond):
    """The replaced form (EDM Alg. 1 lines 4-8 verbatim): trapezoid on the slope (x - D)/s, linear in s."""
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        slope = (x - denoiser(x, s, cond)) / s
        x_euler = x + (s_next - s) * slope
        if s_next == 0:
            return x_euler
        x = x + (s_next - s) * 0.5 * (slope + (x_euler - denoiser(x_euler, s_next, cond)) / s_next)
    return x


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("spacing", SPACINGS)
def test_heun_reproduces_the_gaussian_std(schedule, spacing):
    """std within 0.005 of 0.2 at 64 steps (127 evaluations), 200k samples: the Monte Carlo error of a
    sample std is 0.2 / sqrt(2 n) = 3e-4, far below 0.005. (At 16 steps every second-order solver, DPM-Solver++
    included, is 5-12% off on this 1-D Gaussian: its whole transition, ~1 wide in lambda, falls in one or two
    steps of h ~ 1; test_heun_is_second_order checks how the error falls from there.)"""
    x, _, _ = solve("heun", 64, spacing, schedule, n=200_000)
    assert abs(x.double().std().item() - STD) < 0.005


@pytest.mark.parametrize("spacing", ["logsnr", "karras"])
def test_heun_is_second_order(spacing):
    """Doubling the steps divides Heun's error by ~4 (Euler's by ~2). Grids of fixed range only: the time
    grid's last steps keep h ~ ln 2 whatever the step count (s_k ~ k/N near 0)."""
    errors = [error(x, exact_flow(x_T, sigmas[0], 0)) for x, x_T, sigmas in
              (solve("heun", steps, spacing) for steps in (32, 64))]
    assert errors[0] / errors[1] > 3.5, errors


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("spacing", SPACINGS)
def test_heun_beats_euler_at_equal_evaluations(schedule, spacing):
    """Heun at 16 steps (31 evaluations) is at least as close to the exact solution as Euler at 31 steps.

    Each is measured against the exact solution on its own grid; with logsnr and karras spacings both grids
    end at the same level (<= 0.002), where that equals the closed form x_T 0.2 / sqrt(0.04 + s_T^2) to 1e-4.
    The 16- and 31-step time grids end at different levels (0.098 and 0.051 on the default schedule), and
    the final step x = D from there, the same for every sampler, is a property of the grid, not the solver."""
    heun, x_T, sigmas = solve("heun", 16, spacing, schedule)
    euler, x_T31, sigmas31 = solve("euler", 31, spacing, schedule)
    assert torch.equal(x_T / sigmas[0], x_T31 / sigmas31[0])
    assert error(heun, exact_on_grid(x_T, sigmas)) <= error(euler, exact_on_grid(x_T31, sigmas31))


@pytest.mark.parametrize("spacing", ["logsnr", "karras"])
def test_heun_beats_euler_against_the_closed_form(spacing):
    heun, x_T, sigmas = solve("heun", 16, spacing)
    euler, _, _ = solve("euler", 31, spacing)
    reference = exact_flow(x_T, sigmas[0], 0)
    assert error(heun, reference) <= error(euler, reference)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_control_slope_form_fails_on_the_time_grid(schedule):
    """The check can fail: EDM's slope-form corrector on the 16-step time grid (first step s ~ 1e4 -> ~10)
    scales D differences by ~s/s' and lands far from the Gaussian; the exponential form does not."""
    x, x_T, sigmas = solve(edm_slope_heun, 16, "time", schedule)
    euler, x_T31, sigmas31 = solve("euler", 31, "time", schedule)
    assert abs(x.double().std().item() - STD) > 0.05
    assert error(x, exact_on_grid(x_T, sigmas)) > 2 * error(euler, exact_on_grid(x_T31, sigmas31))


@pytest.mark.parametrize("spacing", SPACINGS)
def test_control_too_few_steps_miss_the_std(spacing):
    x, _, _ = solve("heun", 8, spacing, n=20_000)                 # misses by > 0.04; MC error 1e-3
    assert abs(x.double().std().item() - STD) > 0.005
