"""Diffusion math: schedules, parameterizations, the denoiser contract, loss, guidance, thresholding."""
from openimagen.diffusion.cond import Cond  # noqa: F401
from openimagen.diffusion.denoiser import Denoiser, DenoiserFn, append_dims  # noqa: F401
from openimagen.diffusion.guidance import (  # noqa: F401
    ClassifierFreeGuidance, Thresholded, dynamic_threshold, guided, static_threshold)
from openimagen.diffusion.loss import diffusion_loss  # noqa: F401
from openimagen.diffusion.parameterization import ParamConfig, coefficients  # noqa: F401
from openimagen.diffusion.schedules import (  # noqa: F401
    ScheduleConfig, make_schedule, sampling_sigmas)
