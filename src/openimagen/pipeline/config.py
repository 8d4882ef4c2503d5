"""Typed configs of a cascade: one ``StageConfig`` per stage, one ``PipelineConfig`` for the whole.

A pipeline directory (``save_pretrained``/``from_pretrained``):

    model/
      pipeline.json                 PipelineConfig: format version, text encoder (referenced, never copied), stages
      stage0_base/config.json       StageConfig of the 64x64 (or smaller) base stage
      stage0_base/model.safetensors its weights (EMA, fp32 or fp16)
      stage1_sr/config.json         super-resolution stage, lowres_resolution = previous stage's resolution
      stage1_sr/model.safetensors
      stage0_base_student4/...      (optional) a stage folder only a variant uses

``pipeline.json`` may name ``variants``, alternative cascades of stage folders in the same directory (the
default model's ``"fast"``: its distilled base student, then its SR stage at 4 steps; ``"gan-sr"``: its base, then
the adversarially refined 2-step SR stage), loaded with ``Pipeline.from_pretrained(path, variant="fast")`` or
``--variant fast``; ``variant_sampling`` gives a variant its own sampling defaults per stage (``{"fast": [{},
{"steps": 4}]}``), so that one stage folder serves cascades that sample it differently.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Annotated, Optional

from typing_extensions import TypedDict
from pydantic import AfterValidator, ConfigDict, Field, Strict, WithJsonSchema
from pydantic.dataclasses import dataclass as pydantic_dataclass

from openimagen.configs import check_known_keys, dataclass_from_dict, fields_omitting_later
from openimagen.diffusion.guidance import THRESHOLDS
from openimagen.diffusion.parameterization import PARAMETERIZATIONS, ParamConfig
from openimagen.diffusion.schedules import SPACINGS, ScheduleConfig
from openimagen.errors import ConfigError, check_choice
from openimagen.nn import UNetConfig
from openimagen.samplers import SAMPLERS
from openimagen.validation import PlainNumber, check_value

FORMAT_VERSION = 1


def _name(kind: str, valid):
    """A str checked against ``valid`` (UnknownNameError listing them), listed as an enum in JSON schemas."""
    return Annotated[str, Strict(), AfterValidator(lambda name: check_choice(kind, name, valid)),
                     WithJsonSchema({"type": "string", "enum": sorted(valid)})]


# Each sampling setting's type and range, declared once: SamplingConfig (a stage's defaults, read from its
# config.json) and GenerationRequest (a call's per-stage overrides) are both built from these.
MAX_STEPS = 10_000
MAX_GUIDANCE = 100.0        # past this the guided estimate overflows float32 in a few steps; useful values are < 20
SamplerName = _name("sampler", SAMPLERS)
Steps = Annotated[int, Field(ge=1, le=MAX_STEPS), PlainNumber, Strict()]
Guidance = Annotated[float, Field(ge=0, le=MAX_GUIDANCE, allow_inf_nan=False), PlainNumber, Strict()]
ThresholdName = _name("threshold", THRESHOLDS)
Percentile = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False), PlainNumber, Strict()]
SpacingName = _name("spacing", SPACINGS)
AugLevel = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False), PlainNumber, Strict()]
SrStrength = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False), PlainNumber, Strict()]
LowresConsistency = Annotated[bool, Strict()]
SAMPLING_FIELDS = ("sampler", "steps", "guidance", "threshold", "percentile", "spacing", "aug_level", "sr_strength",
                   "lowres_consistency")
# sampling fields added after the first model format: omitted from StageConfig.to_dict at their default (as
# openimagen.nn.config.LATER_FIELDS are from UNetConfig's), so that a model's config.json, and the model hash every
# PNG record names, stay those it had before the field existed
LATER_SAMPLING_FIELDS = ("sr_strength", "lowres_consistency")


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class SamplingConfig:
    """A stage's sampling settings, checked when built (a bad value raises pydantic's ``ValidationError``;
    :func:`openimagen.configs.dataclass_from_dict` and the request turn it into one line). Every field can be
    overridden per call through :class:`~openimagen.pipeline.request.GenerationRequest`."""

    sampler: SamplerName = "dpmpp_2m"   # see openimagen.samplers.SAMPLERS
    steps: Steps = 20                   # sampler steps (network evaluations: samplers.evaluations)
    guidance: Guidance = 4.0            # classifier-free guidance weight w (Imagen: 1-10 base, up to 8 SR)
    threshold: ThresholdName = "dynamic"  # "none" | "static" | "dynamic" (Imagen Sec. 2.3)
    percentile: Percentile = 0.995      # dynamic thresholding percentile p, in (0, 1]
    spacing: SpacingName = "time"       # sampling grid: "time" | "logsnr" | "karras"
    aug_level: AugLevel = 0.2           # SR stages: noise-augmentation level of the low-res input, schedule time t
    sr_strength: SrStrength = 1.0       # SR stages: schedule time t in (0, 1] the sampler starts at, from the
                                        # bicubic-upsampled low-res image noised to t (SDEdit); 1 = pure noise (Imagen)
    lowres_consistency: LowresConsistency = False  # SR stages: project every x0 estimate onto the images whose
                                        # downsample is the low-res input (DDNM; openimagen.diffusion.consistency)


class SamplingDefaults(TypedDict, total=False):
    """Some of a stage's :class:`SamplingConfig` fields, each checked as there; unknown keys are refused. A
    variant's sampling defaults for one stage (``PipelineConfig.variant_sampling``)."""

    __pydantic_config__ = ConfigDict(extra="forbid")    # type: ignore[misc]
    sampler: SamplerName
    steps: Steps
    guidance: Guidance
    threshold: ThresholdName
    percentile: Percentile
    spacing: SpacingName
    aug_level: AugLevel
    sr_strength: SrStrength
    lowres_consistency: LowresConsistency


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
                "param": self.param.to_dict(),
                "sampling": fields_omitting_later(self.sampling, LATER_SAMPLING_FIELDS)}

    @classmethod
    def from_dict(cls, d: dict) -> "StageConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"stage config must be a JSON object, got {type(d).__name__}")
        check_known_keys(cls, d, "stage config")
        for key in ("unet", "resolution"):
            if key not in d:
                raise ConfigError(f"stage config is missing {key!r}")
        return cls(unet=UNetConfig.from_dict(d["unet"]),
                   resolution=check_value(Resolution, d["resolution"], "resolution", ConfigError),
                   lowres_resolution=check_value(Optional[Resolution], d.get("lowres_resolution"), "lowres_resolution",
                                                 ConfigError),
                   schedule=ScheduleConfig.from_dict(d.get("schedule", {})),
                   param=ParamConfig.from_dict(d.get("param", {})),
                   sampling=dataclass_from_dict(SamplingConfig, d.get("sampling", {}), "sampling config")).validate()


def _folder_name(name: str) -> str:
    """A stage name is one folder inside the model directory: no separators, no '..', not absolute, not hidden."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith(".") or ":" in name:
        raise ConfigError(f"stage name {name!r} must be one folder name inside the model directory (no '/', '\\', "
                          f"'..', ':' or leading '.')")
    return name


StageName = Annotated[str, Strict(), AfterValidator(_folder_name)]
VariantName = Annotated[str, Strict(), Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
Resolution = Annotated[int, Field(ge=1, le=1 << 14), PlainNumber, Strict()]


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class PipelineConfig:
    """``pipeline.json``: the cascade's stage folders in order, its text encoder, and the format version; checked
    when built (stage names stay inside the model directory)."""

    stages: Annotated[tuple[StageName, ...], Field(min_length=1)]  # stage folder names, in cascade order
    text_encoder: Annotated[str, Strict(), Field(min_length=1)] = "default"  # "default" (MiniLM) or a local directory
    max_length: Annotated[int, Field(ge=1, le=4096), PlainNumber, Strict()] = 32   # text tokens per prompt
    format_version: Annotated[int, Strict()] = FORMAT_VERSION
    description: Annotated[str, Strict()] = ""
    # named alternative cascades in the same directory, e.g. {"fast": ["stage0_base_student4", "stage1_sr"]}: a
    # distilled student in place of its teacher, sharing the other stages' folders (from_pretrained(variant=...))
    variants: dict[VariantName, Annotated[tuple[StageName, ...], Field(min_length=1)]] = field(default_factory=dict)
    # a variant's sampling defaults per stage, in its stage order, over the stage folder's own ({}: the folder's),
    # e.g. {"fast": [{}, {"steps": 4}]}: the default model's fast cascade samples the shared SR stage in 4 steps
    variant_sampling: dict[VariantName, tuple[SamplingDefaults, ...]] = field(default_factory=dict)

    def __post_init__(self):
        for name, per_stage in self.variant_sampling.items():
            if name not in self.variants:
                raise ConfigError(f"variant_sampling names variant {name!r}, which variants does not define (it "
                                  f"defines: {', '.join(sorted(self.variants)) or 'none'})")
            if len(per_stage) != len(self.variants[name]):
                where = f".{name}" if name.isidentifier() else f"[{name!r}]"
                raise ConfigError(f"variant_sampling{where} has {len(per_stage)} entries; the variant has "
                                  f"{len(self.variants[name])} stages (one entry per stage, {{}} for a stage's own)")

    def to_dict(self) -> dict:
        d = fields_omitting_later(self, ("variants", "variant_sampling"))
        d["stages"] = list(self.stages)
        if "variants" in d:
            d["variants"] = {k: list(v) for k, v in d["variants"].items()}
        if "variant_sampling" in d:
            d["variant_sampling"] = {k: [dict(o) for o in v] for k, v in d["variant_sampling"].items()}
        return d

    def stage_sampling(self, name: Optional[str]) -> tuple[dict, ...]:
        """Variant ``name``'s sampling defaults per stage (``()`` for the main cascade or a variant without any)."""
        return tuple(dict(o) for o in self.variant_sampling.get(name, ())) if name is not None else ()

    def variant(self, name: Optional[str]) -> "PipelineConfig":
        """The config of the cascade named ``name`` (None: this one): its stage folders, no variants of its own,
        the description saying which it is. UnknownNameError (a ConfigError) lists the variants there are."""
        if name is None:
            return self
        if not isinstance(name, str):
            raise ConfigError(f"a model variant is named by a string, got {name!r}")
        if not self.variants:
            raise ConfigError(f"this model has no variants (its pipeline.json names none), so --variant {name!r} "
                              f"cannot be used")
        check_choice("model variant", name, self.variants)
        return replace(self, stages=self.variants[name], variants={}, variant_sampling={},
                       description=f"{self.description} [variant {name!r}]".lstrip())

    @classmethod
    def from_dict(cls, d: dict) -> "PipelineConfig":
        cfg = dataclass_from_dict(cls, d, "pipeline config")
        if cfg.format_version != FORMAT_VERSION:
            raise ConfigError(f"pipeline format version {cfg.format_version} is not supported (this openimagen "
                              f"reads version {FORMAT_VERSION})")
        return cfg
