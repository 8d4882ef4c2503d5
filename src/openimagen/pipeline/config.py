"""Typed configs of a cascade: one ``StageConfig`` per stage, one ``PipelineConfig`` for the whole.

A pipeline directory (``save_pretrained``/``from_pretrained``):

    model/
      pipeline.json                 PipelineConfig: format version, text encoder (referenced, never copied), stages
      stage0_base/config.json       StageConfig of the 64x64 (or smaller) base stage
      stage0_base/model.safetensors its weights (EMA, fp32 or fp16)
      stage1_sr/config.json         super-resolution stage, lowres_resolution = previous stage's resolution
      stage1_sr/model.safetensors
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Optional

from openimagen.configs import dataclass_from_dict
from openimagen.diffusion.guidance import THRESHOLDS
from openimagen.diffusion.parameterization import PARAMETERIZATIONS, ParamConfig
from openimagen.diffusion.schedules import SPACINGS, ScheduleConfig
from openimagen.errors import ConfigError
from openimagen.nn import UNetConfig
from openimagen.samplers import SAMPLERS

FORMAT_VERSION = 1


@dataclass(frozen=True)
class SamplingConfig:
    """A stage's sampling defaults; every one can be overridden per call."""

    sampler: str = "dpmpp_2m"     # see openimagen.samplers.SAMPLERS
    steps: int = 20
    guidance: float = 4.0         # classifier-free guidance weight w (Imagen: 1-10 base, up to 8 SR)
    threshold: str = "dynamic"    # "none" | "static" | "dynamic" (Imagen Sec. 2.3)
    percentile: float = 0.995     # dynamic thresholding percentile p
    spacing: str = "time"         # sampling grid: "time" | "logsnr" | "karras"
    aug_level: float = 0.2        # SR stages: noise-augmentation level of the low-res input, as schedule time t

    def validate(self) -> "SamplingConfig":
        for name, value, valid in (("sampler", self.sampler, SAMPLERS), ("threshold", self.threshold, THRESHOLDS),
                                   ("spacing", self.spacing, SPACINGS)):
            if value not in valid:
                raise ConfigError(f"unknown {name} {value!r}; valid: {', '.join(sorted(valid))}")
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise ConfigError(f"steps must be an integer >= 1, got {self.steps!r}")
        if not self.guidance >= 0:
            raise ConfigError(f"guidance must be >= 0, got {self.guidance}")
        if not 0.0 <= self.aug_level < 1.0:
            raise ConfigError(f"aug_level must be in [0, 1), got {self.aug_level}")
        return self


@dataclass(frozen=True)
class StageConfig:
    unet: UNetConfig
    resolution: int                              # output side of this stage
    lowres_resolution: Optional[int] = None      # None: base stage; else the previous stage's resolution
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    param: ParamConfig = field(default_factory=ParamConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    @property
    def is_super_resolution(self) -> bool:
        return self.lowres_resolution is not None

    def validate(self) -> "StageConfig":
        self.unet.validate()
        self.sampling.validate()
        if self.param.name not in PARAMETERIZATIONS:
            raise ConfigError(f"unknown parameterization {self.param.name!r}; valid: {', '.join(PARAMETERIZATIONS)}")
        if self.unet.lowres_cond != self.is_super_resolution:
            raise ConfigError("a stage with lowres_resolution needs a U-Net with lowres_cond=True, and vice versa")
        if self.resolution % self.unet.size_multiple:
            raise ConfigError(f"resolution {self.resolution} is not a multiple of {self.unet.size_multiple}")
        if self.is_super_resolution and not 0 < self.lowres_resolution < self.resolution:
            raise ConfigError(f"lowres_resolution {self.lowres_resolution} must be below resolution {self.resolution}")
        return self

    def to_dict(self) -> dict:
        return {"unet": self.unet.to_dict(), "resolution": self.resolution,
                "lowres_resolution": self.lowres_resolution, "schedule": self.schedule.to_dict(),
                "param": self.param.to_dict(), "sampling": asdict(self.sampling)}

    @classmethod
    def from_dict(cls, d: dict) -> "StageConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"stage config must be a JSON object, got {type(d).__name__}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown stage config key(s): {', '.join(sorted(unknown))}")
        for key in ("unet", "resolution"):
            if key not in d:
                raise ConfigError(f"stage config is missing {key!r}")
        return cls(unet=UNetConfig.from_dict(d["unet"]), resolution=d["resolution"],
                   lowres_resolution=d.get("lowres_resolution"),
                   schedule=ScheduleConfig.from_dict(d.get("schedule", {})),
                   param=ParamConfig.from_dict(d.get("param", {})),
                   sampling=dataclass_from_dict(SamplingConfig, d.get("sampling", {}), "sampling config")).validate()


@dataclass(frozen=True)
class PipelineConfig:
    stages: tuple[str, ...]                  # stage folder names, in cascade order
    text_encoder: str = "default"            # "default" (MiniLM) or a local Hugging Face encoder directory
    max_length: int = 32                     # text tokens per prompt
    format_version: int = FORMAT_VERSION
    description: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stages"] = list(self.stages)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PipelineConfig":
        cfg = dataclass_from_dict(cls, d, "pipeline config")
        if cfg.format_version != FORMAT_VERSION:
            raise ConfigError(f"pipeline format version {cfg.format_version} is not supported (this openimagen "
                              f"reads version {FORMAT_VERSION})")
        if not cfg.stages:
            raise ConfigError("pipeline config lists no stages")
        return PipelineConfig(**{**asdict(cfg), "stages": tuple(cfg.stages)})
