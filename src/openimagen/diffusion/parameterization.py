"""Parameterizations as preconditioning coefficients (Karras et al. 2022, "EDM", Table 1 / eq. 7).

Every stage's denoiser is D(x; s) = c_skip(s) x + c_out(s) F(c_in(s) x, c_noise(s)), with x = x0 + s n
in the variance-exploding form (s = exp(-logsnr/2), see ``schedules``). The raw network F never knows
what it predicts: choosing eps-, v- or x0(EDM)-prediction only changes these four numbers.

    eps (Ho et al. 2020):           c_skip = 1,             c_out = -s,                c_in = 1/sqrt(1+s^2)
    v   (Salimans & Ho 2022):       c_skip = 1/(1+s^2),     c_out = -s/sqrt(1+s^2),     c_in = 1/sqrt(1+s^2)
    edm (Karras et al. 2022):       c_skip = sd^2/(s^2+sd^2), c_out = s sd/sqrt(s^2+sd^2), c_in = 1/sqrt(s^2+sd^2)

c_in = 1/sqrt(1+s^2) for eps and v feeds the network the VP sample z = alpha x, as Imagen does.
c_noise = ln(s)/4 for all (EDM's convention; equals -logsnr/8).

``residual`` (super-resolution stages): the diffusion runs on the residual x0 - u, where u is the stage's low-res
input bicubic-upsampled to its resolution (SRDiff, Li et al. 2022, Sec. 3.2; ResShift, Yue et al. 2023, likewise
starts from the upsampled image): D(x; s) = u + c_skip (x - u) + c_out F(c_in (x - u), ...). A zero network output
then already gives the upsampled image, and training only has to learn the detail bicubic misses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import AfterValidator, ConfigDict, Field, Strict, StrictBool
from pydantic.dataclasses import dataclass as pydantic_dataclass

from openimagen.configs import dataclass_from_dict, fields_omitting_later
from openimagen.errors import check_choice
from openimagen.validation import PlainNumber


@dataclass(frozen=True)
class Coefficients:
    c_skip: torch.Tensor
    c_out: torch.Tensor
    c_in: torch.Tensor
    c_noise: torch.Tensor



PARAMETERIZATIONS = ("eps", "v", "edm")
# fields added after the first model format: omitted from to_dict at their default, so that a model's config.json
# and the model hash stay what they were
LATER_PARAM_FIELDS = ("residual",)


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class ParamConfig:
    """The parameterization of a stage's network output, type- and range-checked when built."""

    name: Annotated[str, Strict(), AfterValidator(lambda v: check_choice("parameterization", v, PARAMETERIZATIONS))] = "v"
    sigma_data: Annotated[float, Field(gt=0, allow_inf_nan=False), PlainNumber, Strict()] = 0.5   # EDM: data std
    residual: StrictBool = False          # SR stages: diffuse x0 - upsampled low-res (module docstring)

    def to_dict(self) -> dict:
        return fields_omitting_later(self, LATER_PARAM_FIELDS)

    @classmethod
    def from_dict(cls, d: dict) -> "ParamConfig":
        return dataclass_from_dict(cls, d, "parameterization config")



def noise_input(s: torch.Tensor) -> torch.Tensor:
    """c_noise(s) = ln(s)/4; also used for the noise-augmentation level of SR stages."""
    return torch.log(s.clamp(min=1e-5)) / 4


def coefficients(config: ParamConfig, s: torch.Tensor) -> Coefficients:
    """Preconditioning coefficients for noise levels ``s`` (any shape; returned with the same shape)."""
    check_choice("parameterization", config.name, PARAMETERIZATIONS)
    s2 = s * s
    if config.name == "edm":
        sd2 = config.sigma_data ** 2
        return Coefficients(c_skip=sd2 / (s2 + sd2), c_out=s * config.sigma_data / (s2 + sd2).sqrt(),
                            c_in=(s2 + sd2).rsqrt(), c_noise=noise_input(s))
    c_in = (1 + s2).rsqrt()
    if config.name == "eps":
        return Coefficients(c_skip=torch.ones_like(s), c_out=-s, c_in=c_in, c_noise=noise_input(s))
    return Coefficients(c_skip=1 / (1 + s2), c_out=-s * c_in, c_in=c_in, c_noise=noise_input(s))
