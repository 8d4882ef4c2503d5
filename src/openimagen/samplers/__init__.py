"""Samplers: pure functions of (denoiser, noise, sigma grid, generator)."""
from openimagen.samplers.noise import generators_from_seeds, randn  # noqa: F401
from openimagen.samplers.registry import SAMPLERS, evaluations, get_sampler  # noqa: F401
