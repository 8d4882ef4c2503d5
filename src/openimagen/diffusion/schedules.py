"""Continuous-time noise schedules (Kingma et al. 2021, "Variational Diffusion Models").

A variance-preserving (VP) forward process is z_t = alpha_t x0 + sigma_t eps with
alpha_t^2 + sigma_t^2 = 1; a schedule is fully described by its log signal-to-noise ratio
logsnr(t) = log(alpha_t^2 / sigma_t^2), decreasing in t in [0, 1].

openimagen's denoiser contract uses the *noise level* of the equivalent variance-exploding
form (Karras et al. 2022, "EDM", Sec. 2 and Table 1): x = z / alpha = x0 + s n with

    s = sigma_t / alpha_t = exp(-logsnr / 2).

Notation table
    t          diffusion time in [0, 1]
    logsnr     lambda(t) = log(alpha^2 / sigma^2)
    alpha      sqrt(sigmoid(lambda))          (VP signal scale)
    sigma      sqrt(sigmoid(-lambda))         (VP noise scale)
    noise_level s = exp(-lambda / 2)          (VE sigma, what samplers and denoisers see)
"""
from __future__ import annotations

import math
from dataclasses import asdict
from typing import Annotated

import torch
from pydantic import AfterValidator, ConfigDict, Field, Strict, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from openimagen.configs import dataclass_from_dict
from openimagen.errors import ConfigError, InvalidArgumentError, check_choice
from openimagen.validation import PlainNumber

SCHEDULE_NAMES = ("cosine", "linear_logsnr")


FiniteFloat = Annotated[float, Field(allow_inf_nan=False), PlainNumber, Strict()]


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class ScheduleConfig:
    """A schedule's settings, type- and range-checked when built, ``logsnr_min < logsnr_max`` included (a config
    file with them equal or swapped is refused when read, as one line naming the file, not when a stage is built).

    Raises pydantic's ``ValidationError`` (a :class:`ConfigError` through :meth:`from_dict`)."""

    name: Annotated[str, Strict(), AfterValidator(lambda v: check_choice("schedule", v, SCHEDULE_NAMES))] = "cosine"
    logsnr_min: Annotated[FiniteFloat, Field(ge=-60, le=60)] = -20.0   # lambda at t = 1 (pure noise end)
    logsnr_max: Annotated[FiniteFloat, Field(ge=-60, le=60)] = 20.0    # lambda at t = 0 (clean end)
    shift: Annotated[FiniteFloat, Field(gt=0)] = 1.0   # resolution shift (Hoogeboom et al. 2023): lambda += -2 log(shift)

    @model_validator(mode="after")
    def _ordered(self) -> "ScheduleConfig":
        if not self.logsnr_min < self.logsnr_max:
            raise ConfigError(f"logsnr_min ({self.logsnr_min}) must be below logsnr_max ({self.logsnr_max})")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ScheduleConfig":
        return dataclass_from_dict(cls, d, "schedule config")


class Schedule:
    """Base class: subclasses define ``logsnr(t)`` and its inverse ``t_from_logsnr``."""

    def __init__(self, config: ScheduleConfig):
        self.config = config                   # validated when built: logsnr_min < logsnr_max, shift > 0
        self._log_shift = 2.0 * math.log(config.shift)

    # --- defined by subclasses, on the unshifted schedule -------------------------------
    def _logsnr(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _t_from_logsnr(self, lam: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # --- accessors -----------------------------------------------------------------------
    def logsnr(self, t: torch.Tensor) -> torch.Tensor:
        return self._logsnr(t) - self._log_shift

    def t_from_logsnr(self, lam: torch.Tensor) -> torch.Tensor:
        return self._t_from_logsnr(lam + self._log_shift)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logsnr(t)).sqrt()

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(-self.logsnr(t)).sqrt()

    def noise_level(self, t: torch.Tensor) -> torch.Tensor:
        """VE noise level s = sigma/alpha = exp(-logsnr/2) (the ``sigma`` of the denoiser contract)."""
        return torch.exp(-0.5 * self.logsnr(t))

    def t_from_noise_level(self, s: torch.Tensor) -> torch.Tensor:
        return self.t_from_logsnr(-2.0 * torch.log(s))

    @property
    def noise_level_range(self) -> tuple[float, float]:
        """(smallest, largest) noise level reached for t in [0, 1]."""
        ends = self.noise_level(torch.tensor([0.0, 1.0], dtype=torch.float64))
        return float(ends[0]), float(ends[1])


class CosineSchedule(Schedule):
    """Cosine schedule (Nichol & Dhariwal 2021) in continuous time, truncated to [logsnr_min, logsnr_max].

    alpha_t = cos(pi t / 2)  <=>  logsnr(t) = -2 log tan(pi t / 2); t is affinely remapped so that
    t = 0 and t = 1 give logsnr_max and logsnr_min (as in Hoogeboom et al. 2023, "simple diffusion").
    """

    def __init__(self, config: ScheduleConfig):
        super().__init__(config)
        self._a0 = math.atan(math.exp(-0.5 * config.logsnr_max))
        self._a1 = math.atan(math.exp(-0.5 * config.logsnr_min))

    def _logsnr(self, t):
        return -2.0 * torch.log(torch.tan(self._a0 + t * (self._a1 - self._a0)))

    def _t_from_logsnr(self, lam):
        return (torch.atan(torch.exp(-0.5 * lam)) - self._a0) / (self._a1 - self._a0)


class LinearLogSNRSchedule(Schedule):
    """logsnr(t) = logsnr_max + t (logsnr_min - logsnr_max): uniform in log-SNR (Kingma et al. 2021)."""

    def _logsnr(self, t):
        c = self.config
        return c.logsnr_max + t * (c.logsnr_min - c.logsnr_max)

    def _t_from_logsnr(self, lam):
        c = self.config
        return (lam - c.logsnr_max) / (c.logsnr_min - c.logsnr_max)


SCHEDULES = {"cosine": CosineSchedule, "linear_logsnr": LinearLogSNRSchedule}


def make_schedule(config: ScheduleConfig | str = "cosine") -> Schedule:
    if isinstance(config, str):
        config = ScheduleConfig(name=check_choice("schedule", config, SCHEDULES))
    check_choice("schedule", config.name, SCHEDULES)
    return SCHEDULES[config.name](config)


SPACINGS = ("time", "logsnr", "karras")


# Karras et al. 2022 (Sec. 5) sample in [0.002, 80]: below 0.002 noise is invisible in 8-bit images, and
# above 80 a sample of [-1, 1] data is pure noise to within 1/80^2 of its variance.
KARRAS_SIGMA_MIN, KARRAS_SIGMA_MAX = 0.002, 80.0


def sampling_sigmas(schedule: Schedule, steps: int, spacing: str = "time", rho: float = 7.0,
                    t_max: float = 1.0, t_min: float = 0.0) -> torch.Tensor:
    """The sampling grid: ``steps + 1`` noise levels, strictly decreasing, ending in exactly 0.

    spacing "time": s(t) at t = linspace(t_max, t_min, steps + 1)[:-1] (DDPM/DDIM practice: t_min itself is
    not visited). "logsnr": ``steps`` levels uniform in lambda from s(t_max) to s(t_min) inclusive (DPM-Solver,
    Lu et al. 2022). "karras": Karras et al. 2022 eq. 5 with exponent ``rho``, sigma_i for i = 0..N-1 with
    i/(N-1), from sigma_max to sigma_min inclusive, over ``karras_range`` (their [0.002, 80] where it overlaps
    the schedule's range). Each is followed by sigma_N = 0; steps = 1 gives [s_hi, 0].
    ``t_max``/``t_min`` bound the grid in schedule time (image-to-image starts below 1). The first value is
    s(t_max) (for "karras", the top of ``karras_range``).

    Returns float64 on the CPU, shape (steps + 1,): samplers compute their step coefficients in float64 from
    these 0-d values, and a 0-d float64 tensor times a float32 x stays float32. When the range is narrower
    than ``steps`` float64 ulps (t_max near 0), neighbours would be equal; each value that is not below its
    predecessor is nudged down to nextafter(predecessor, 0), so log-steps h = ln(s/s') are always > 0.
    """
    if not isinstance(steps, int) or steps < 1:
        raise InvalidArgumentError(f"steps must be an integer >= 1, got {steps!r}")
    check_choice("spacing", spacing, SPACINGS)
    if not 0.0 <= t_min < t_max <= 1.0:
        raise InvalidArgumentError(f"need 0 <= t_min < t_max <= 1, got t_min={t_min}, t_max={t_max}")
    s_hi, s_lo = (float(schedule.noise_level(torch.tensor(t, dtype=torch.float64))) for t in (t_max, t_min))
    if spacing == "time":
        s = schedule.noise_level(torch.linspace(t_max, t_min, steps + 1, dtype=torch.float64)[:-1])
        s[0] = s_hi                                       # the same value a 0-d evaluation of s(t_max) gives
    elif spacing == "logsnr":
        s = _log_uniform(s_hi, s_lo, steps)
    else:
        s = _karras(*karras_range(s_hi, s_lo), steps, rho)
    return torch.cat([_strictly_decreasing(s), s.new_zeros(1)])


def karras_range(s_hi: float, s_lo: float) -> tuple[float, float]:
    """(sigma_max, sigma_min) for Karras spacing: [s_lo, s_hi] clipped to [0.002, 80] when that leaves an interval
    of positive length, else the schedule's own [s_lo, s_hi] (e.g. image-to-image at small t_max lies wholly
    below 0.002; clipping would give one repeated sigma).

    rho = 7 over the full [e^-10, e^10] of a +-20 log-SNR schedule would waste half the steps above s = 300 and
    make the last ones so long that multistep solvers extrapolate badly, hence the clip where it applies.
    """
    hi, lo = min(s_hi, KARRAS_SIGMA_MAX), max(s_lo, KARRAS_SIGMA_MIN)
    return (hi, lo) if lo < hi else (s_hi, s_lo)


def _log_uniform(s_hi: float, s_lo: float, steps: int) -> torch.Tensor:
    """``steps`` noise levels uniform in lambda = -ln s, s_hi and s_lo included exactly; float64, (steps,)."""
    u = torch.linspace(0, 1, steps, dtype=torch.float64)
    s = torch.exp(math.log(s_hi) + u * (math.log(s_lo) - math.log(s_hi)))
    return _with_ends(s, s_hi, s_lo)


def _karras(s_hi: float, s_lo: float, steps: int, rho: float) -> torch.Tensor:
    """Karras et al. 2022 eq. 5: (s_hi^(1/rho) + i/(N-1) (s_lo^(1/rho) - s_hi^(1/rho)))^rho, i = 0..N-1 (N = steps)."""
    u = torch.linspace(0, 1, steps, dtype=torch.float64)
    a, b = s_hi ** (1 / rho), s_lo ** (1 / rho)
    return _with_ends((a + u * (b - a)) ** rho, s_hi, s_lo)


def _with_ends(s: torch.Tensor, s_hi: float, s_lo: float) -> torch.Tensor:
    """Set the ends exactly (exp/log and power round trips can be off by an ulp); s_hi wins when steps = 1."""
    s[-1] = s_lo
    s[0] = s_hi
    return s


def _strictly_decreasing(s: torch.Tensor) -> torch.Tensor:
    """Nudge every value that is not below its predecessor down to nextafter(predecessor, 0); (N,) float64."""
    if bool((s[1:] < s[:-1]).all()):
        return s
    s, zero = s.clone(), s.new_zeros(())
    for i in range(1, len(s)):
        if not s[i] < s[i - 1]:
            s[i] = torch.nextafter(s[i - 1], zero)
    return s
