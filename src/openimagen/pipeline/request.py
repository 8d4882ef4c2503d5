"""One typed generation request, validated once, where it enters.

The CLI, the Python API (``Pipeline.__call__`` builds one from diffusers-like keyword arguments) and the HTTP
service all describe a call with a :class:`GenerationRequest`; the pipeline resolves it against its stages'
defaults (:meth:`GenerationRequest.resolve`) and returns the resolved per-stage settings with the images, so
what actually ran is never lost.

Per-stage settings (``sampler``, ``steps``, ``guidance``, ``threshold``, ``percentile``, ``spacing``,
``aug_level``, ``sr_strength``, ``lowres_consistency``) take one value for every stage, a sequence with one value per stage (base first), or None for
each stage's default (its ``config.json``). Types and ranges are those of :class:`SamplingConfig`, declared once
in :mod:`openimagen.pipeline.config`. A bad value raises :class:`~openimagen.errors.InvalidArgumentError` (or
:class:`~openimagen.errors.UnknownNameError` for a name) whose one-line message names the field, e.g.
``steps[1] should be greater than or equal to 1, got 0``.

Seeds: image k of a request (prompts in order, each repeated ``num_images_per_prompt`` times) uses seed
``seed + k`` for all its noise in every stage. Negative prompts (one for all prompts, or one per prompt) replace
the null text in classifier-free guidance (Ho & Salimans 2022): the guided estimate moves toward the prompt and
away from the negative prompt; an empty negative prompt is the null text, i.e. the plain call.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Optional, Sequence, Union

from pydantic import (BaseModel, ConfigDict, Field, Strict, StrictBool, StrictStr, ValidationError, field_validator,
                      model_validator)

from openimagen.errors import InvalidArgumentError
from openimagen.lora.config import Scale as LoraScale
from openimagen.pipeline.config import (SAMPLING_FIELDS, AugLevel, Guidance, LowresConsistency, Percentile,
                                        SamplerName, SamplingConfig, SpacingName, SrStrength, Steps, ThresholdName)
from openimagen.validation import NonNegativeInt, PlainNumber, PositiveInt, checked, raise_one_line

MAX_SEED = 2**63 - 1


def _per_stage(kind):
    """One value for every stage, or a non-empty tuple with one per stage (or one per stage that runs)."""
    return Optional[Union[kind, Annotated[tuple[kind, ...], Field(min_length=1)]]]


class SamplingOverrides(BaseModel):
    """The per-stage sampling settings a call may override (module docstring), declared once: the generation
    request and the HTTP API's body both take them from here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sampler: _per_stage(SamplerName) = None
    steps: _per_stage(Steps) = None
    guidance: _per_stage(Guidance) = None
    threshold: _per_stage(ThresholdName) = None
    percentile: _per_stage(Percentile) = None
    spacing: _per_stage(SpacingName) = None
    aug_level: _per_stage(AugLevel) = None
    sr_strength: _per_stage(SrStrength) = None
    lowres_consistency: _per_stage(LowresConsistency) = None


class GenerationRequest(SamplingOverrides):
    """Everything one generation call needs besides the model. Immutable; validated on construction.

    Fields (ranges enforced):
        prompts                 tuple of str, at least one ("" asks for an unconditional image); a single str is
                                taken as one prompt
        negative_prompt         None, one str for every prompt, or one per prompt ("" = the null text)
        num_images_per_prompt   int >= 1
        seed                    int in [0, 2**63 - 1 - images + 1]; image k uses seed + k
        stop_at_stage           None (run every stage) or a stage index
        size                    None, or the side in pixels the last stage run must make (a check, not a resize)
        sampler ... lowres_consistency  per-stage sampling settings (module docstring); None = the stage's default
        batch_invariant         False: the network runs on the whole batch (fast; an image's pixels may differ by
                                a rounding step with its batch, see README); True: image by image and the text
                                encoder prompt by prompt, so a seed gives the same bits whatever the batch
        loras                   None (the pipeline's active LoRA adapters) or exactly these: adapter name -> scale
                                in [-10, 10] ({} = none); the names must be loaded (``Pipeline.load_lora``)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompts: Annotated[tuple[StrictStr, ...], Field(min_length=1)]
    negative_prompt: Optional[Union[StrictStr, Annotated[tuple[StrictStr, ...], Field(min_length=1)]]] = None
    num_images_per_prompt: PositiveInt = 1
    seed: Annotated[int, Field(ge=0, le=MAX_SEED), PlainNumber, Strict()] = 0
    stop_at_stage: Optional[NonNegativeInt] = None
    size: Optional[PositiveInt] = None
    batch_invariant: StrictBool = False
    loras: Optional[dict[StrictStr, LoraScale]] = None

    def __init__(self, **data: Any):
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise_one_line(e, InvalidArgumentError, data, kind=type(self))

    @field_validator("prompts", mode="before")
    @classmethod
    def _one_prompt(cls, value):
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_counts(self) -> "GenerationRequest":
        neg = self.negative_prompt
        if isinstance(neg, tuple) and len(neg) != len(self.prompts):
            raise InvalidArgumentError(f"negative_prompt has {len(neg)} entries for {len(self.prompts)} prompts; "
                                       f"give one for every prompt, or a single string for all")
        if self.seed + self.num_images - 1 > MAX_SEED:
            raise InvalidArgumentError(f"seed must be at most {MAX_SEED - self.num_images + 1} for "
                                       f"{self.num_images} images (image k uses seed + k), got {self.seed}")
        return self

    # --- what the request means ---------------------------------------------------------------------------
    @property
    def num_images(self) -> int:
        return len(self.prompts) * self.num_images_per_prompt

    @property
    def image_prompts(self) -> list[str]:
        """The prompt of each image, in image order."""
        return [p for p in self.prompts for _ in range(self.num_images_per_prompt)]

    @property
    def image_negative_prompts(self) -> Optional[list[str]]:
        """The negative prompt of each image, or None when the request has none."""
        neg = self.negative_prompt
        if neg is None:
            return None
        per_prompt = [neg] * len(self.prompts) if isinstance(neg, str) else list(neg)
        return [n for n in per_prompt for _ in range(self.num_images_per_prompt)]

    @property
    def seeds(self) -> list[int]:
        return [self.seed + k for k in range(self.num_images)]

    def resolve(self, defaults: Sequence[SamplingConfig], resolutions: Sequence[int]) -> list[SamplingConfig]:
        """The sampling settings of each stage that runs: ``defaults`` (one per stage of the cascade) with this
        request's overrides applied, up to ``stop_at_stage``. ``resolutions``: each stage's output side, for the
        ``size`` check. Raises :class:`InvalidArgumentError` naming the field that does not fit the cascade."""
        n = len(defaults)
        last = n - 1 if self.stop_at_stage is None else self.stop_at_stage
        if last >= n:
            raise InvalidArgumentError(f"stop_at_stage must be a stage index in 0..{n - 1}, got {last}")
        if self.size is not None and self.size != resolutions[last]:
            raise InvalidArgumentError(f"this model makes {resolutions[last]}x{resolutions[last]} images (stage "
                                       f"resolutions {list(resolutions)}); got size {self.size}")
        per_field = {}
        for name in SAMPLING_FIELDS:
            value = getattr(self, name)
            if isinstance(value, tuple) and len(value) not in (n, last + 1):
                runs = f" (or {last + 1}, one per stage that runs)" if last + 1 < n else ""
                raise InvalidArgumentError(f"{name} has {len(value)} values but the cascade has {n} stages{runs}")
            per_field[name] = value if isinstance(value, tuple) else (value,) * n
        return [replace(defaults[i], **{k: v[i] for k, v in per_field.items() if v[i] is not None})
                for i in range(last + 1)]

    # --- reproduction ---------------------------------------------------------------------------------------
    def for_image(self, k: int, settings: Sequence[SamplingConfig],
                  loras: Optional[dict] = None) -> "GenerationRequest":
        """The request that re-creates image ``k`` alone: its prompt, negative prompt and seed, with every
        per-stage setting made explicit from ``settings`` (the resolved ones) and the LoRA adapters that ran
        (``loras``, name -> scale; None keeps the request's), so it does not depend on the model's defaults."""
        neg = self.image_negative_prompts
        explicit = {name: tuple(getattr(s, name) for s in settings) for name in SAMPLING_FIELDS}
        return GenerationRequest(prompts=(self.image_prompts[k],), negative_prompt=None if neg is None else neg[k],
                                 seed=self.seeds[k], stop_at_stage=len(settings) - 1,
                                 batch_invariant=self.batch_invariant,
                                 loras=self.loras if loras is None else dict(loras), **explicit)

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples as lists); :meth:`from_dict` reads it back."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Any) -> "GenerationRequest":
        if not isinstance(data, dict):
            raise InvalidArgumentError(f"a generation request must be a JSON object, got {type(data).__name__}")
        return checked(lambda: cls.model_validate(data), InvalidArgumentError, data, kind=cls)
