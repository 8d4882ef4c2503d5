"""Typed config of the Efficient U-Net and its named presets (DiT-style registry).

The fields follow Imagen's Efficient U-Net description (Saharia et al. 2022, App. B,
Fig. A.27-A.30): a list of resolution levels, each with a channel multiplier, a number of
residual blocks (more at low resolution is cheaper and works better), and optional text
cross-attention / self-attention. ``to_dict`` / ``from_dict`` give a JSON-safe round trip
so every checkpoint can store the exact architecture it was trained with.
"""
from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, Strict, StrictBool
from pydantic.dataclasses import dataclass

from openimagen.configs import fields_omitting_later
from openimagen.errors import ConfigError, UnknownNameError
from openimagen.validation import PlainNumber

TEXT_POOLINGS = ("attention", "mean")
LATER_FIELDS = ("guidance_cond", "separable_convs", "res_hidden_fraction")       # fields added after the first model format: omitted from to_dict at default

# Field types with their ranges, checked by the project's one validating mechanism (pydantic) when a config is built
Size = Annotated[int, Field(ge=1, le=1 << 16), PlainNumber, Strict()]
Levels = tuple[Annotated[int, Field(ge=0, le=64), PlainNumber, Strict()], ...]      # level indices or counts
Positive = tuple[Annotated[int, Field(ge=1, le=1 << 10), PlainNumber, Strict()], ...]


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class UNetConfig:
    image_size: Size = 32                           # output side H = W the stage is trained at
    in_channels: Size = 3                           # image channels (the SR low-res image has the same)
    out_channels: Size = 3                          # channels of the raw output F
    base_channels: Size = 32                        # width of level 0; level i has base * channel_mults[i]
    channel_mults: Positive = (1, 2, 4)             # one multiplier per resolution level (level i at H / 2**i)
    num_res_blocks: Positive = (1, 2, 2)            # ResBlocks per DBlock and per UBlock, one per level
    cross_attn_levels: Levels = (1, 2)              # levels with text cross-attention
    self_attn_levels: Levels = ()                   # levels with self-attention (text tokens join its keys)
    head_dim: Size = 32                             # channels per attention head
    text_dim: Size = 384                            # width of the frozen text encoder's tokens (MiniLM: 384)
    num_null_tokens: Size = 8                       # length of the learned null text (classifier-free guidance)
    text_pooling: Literal[TEXT_POOLINGS] = "attention"   # "attention" | "mean": pooled text added to the noise emb.
    lowres_cond: StrictBool = False                 # super-resolution stage: concat upsampled low-res image, embed c_aug
    dropout: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False), PlainNumber, Strict()] = 0.0   # in ResBlocks
    emb_mult: Size = 4                              # embedding (and text context) width = base_channels * emb_mult
    guidance_cond: StrictBool = False               # guidance-distilled student: embed the guidance weight w too
    separable_convs: StrictBool = False             # the blocks' 3x3 convs depthwise-separable (nn/blocks.py)
    # width between a ResBlock's two convs, as a fraction of its output width (in whole GroupNorm groups; a
    # channel-pruned stage has < 1: accel/prune.py)
    res_hidden_fraction: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False), PlainNumber, Strict()] = 1.0

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------ derived sizes
    @property
    def num_levels(self) -> int:
        return len(self.channel_mults)

    @property
    def emb_dim(self) -> int:
        """Width of the conditioning embedding and of the projected text context."""
        return self.base_channels * self.emb_mult

    @property
    def fourier_dim(self) -> int:
        """Number of sin/cos features of a noise level (even)."""
        return max(2, self.emb_dim // 8 * 2)

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this (one 2x downsampling per level after the first)."""
        return 2 ** (self.num_levels - 1)

    def channels(self, level: int) -> int:
        return self.base_channels * self.channel_mults[level]

    # ------------------------------------------------------------------ checks
    def validate(self) -> "UNetConfig":
        """Raise :class:`ConfigError` on an inconsistent value (types and ranges are the fields' own); return self."""
        n = self.num_levels
        if n < 1:
            raise ConfigError("channel_mults must name at least one level")
        if len(self.num_res_blocks) != n:
            raise ConfigError(f"num_res_blocks has {len(self.num_res_blocks)} entries but channel_mults has {n}")
        for name in ("image_size", "in_channels", "out_channels", "base_channels", "head_dim", "text_dim",
                     "num_null_tokens", "emb_mult"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if any(m < 1 for m in self.channel_mults) or any(r < 1 for r in self.num_res_blocks):
            raise ConfigError("channel_mults and num_res_blocks entries must be >= 1")
        if self.image_size % self.size_multiple:
            raise ConfigError(f"image_size {self.image_size} is not a multiple of 2**(levels-1) = {self.size_multiple}")
        for name in ("cross_attn_levels", "self_attn_levels"):
            levels = getattr(self, name)
            if len(set(levels)) != len(levels) or any(not 0 <= lv < n for lv in levels):
                raise ConfigError(f"{name} {levels} must be distinct level indices in [0, {n - 1}]")
        for lv in set(self.cross_attn_levels) | set(self.self_attn_levels):
            if self.channels(lv) % self.head_dim:
                raise ConfigError(f"level {lv} width {self.channels(lv)} is not a multiple of head_dim {self.head_dim}")
        if self.text_pooling not in TEXT_POOLINGS:
            raise ConfigError(f"text_pooling {self.text_pooling!r} must be one of {', '.join(TEXT_POOLINGS)}")
        if self.text_pooling == "attention" and self.emb_dim % self.head_dim:
            raise ConfigError(f"emb_dim {self.emb_dim} is not a multiple of head_dim {self.head_dim}")
        if not 0.0 < self.res_hidden_fraction <= 1.0:
            raise ConfigError(f"res_hidden_fraction must be in (0, 1], got {self.res_hidden_fraction}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        return self

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists). Fields added after format 1 (:data:`LATER_FIELDS`) are written only
        when they differ from their default, so configs, and the model hashes made from them, of models that do not
        use them stay what they were."""
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in fields_omitting_later(self, LATER_FIELDS).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "UNetConfig":
        """Inverse of :meth:`to_dict`; unknown keys, wrong types and ranges raise a one-line :class:`ConfigError`
        naming the key (missing keys take defaults)."""
        if not isinstance(d, dict):
            raise ConfigError(f"UNetConfig.from_dict expects a dict, got {type(d).__name__}")
        _check_keys(d)
        return build(lambda: cls(**d), d)


def _check_keys(d: dict) -> None:
    known = {f.name for f in dataclasses.fields(UNetConfig)}
    for key in d:
        if key not in known:
            raise ConfigError(f"unknown UNetConfig key {key!r}; valid: {', '.join(sorted(known))}")


def build(make, data: dict) -> UNetConfig:
    """``make()`` with pydantic's ValidationError as a one-line ConfigError naming the field."""
    from openimagen.validation import checked

    return checked(make, ConfigError, data)


# ---------------------------------------------------------------------- presets
PRESETS: dict[str, UNetConfig] = {
    # Unit tests: a two-level net, ~0.2M parameters, milliseconds per forward at 16 px.
    "tiny": UNetConfig(image_size=16, base_channels=16, channel_mults=(1, 2), num_res_blocks=(1, 1),
                       cross_attn_levels=(1,), self_attn_levels=(1,), head_dim=16, num_null_tokens=4),
    "tiny-sr": UNetConfig(image_size=32, base_channels=16, channel_mults=(1, 2), num_res_blocks=(1, 1),
                          cross_attn_levels=(1,), self_attn_levels=(), head_dim=16, num_null_tokens=4,
                          lowres_cond=True),
    # What we train on a 2-core CPU: 32 px base stage, cross-attention at 16 and 8 px (~1.7 GFLOP per training image).
    "small-cpu": UNetConfig(image_size=32, base_channels=32, channel_mults=(1, 2, 4), num_res_blocks=(1, 2, 2),
                            cross_attn_levels=(1, 2), self_attn_levels=(2,), head_dim=32),
    # 32 -> 64 px SR stage: narrow at 64 px, deep at 8 px; no self-attention, text cross-attention at the lowest level only (Imagen App. B).
    "small-cpu-sr": UNetConfig(image_size=64, base_channels=16, channel_mults=(1, 2, 4, 8), emb_mult=8,
                               num_res_blocks=(1, 1, 2, 3), cross_attn_levels=(3,), self_attn_levels=(),
                               head_dim=32, lowres_cond=True),
    # small-cpu with depthwise-separable 3x3 convs in every block (issue 15, point 4): 4.6x fewer FLOPs per image.
    "small-cpu-separable": UNetConfig(image_size=32, base_channels=32, channel_mults=(1, 2, 4),
                                      num_res_blocks=(1, 2, 2), cross_attn_levels=(1, 2), self_attn_levels=(2,),
                                      head_dim=32, separable_convs=True),
    # Imagen's 64 px base (App. F: 512 channels, mults 1,2,3,4, 3 ResBlocks, attention at 32, 16, 8 px).
    # text_dim stays at the project's encoder width; Imagen's T5-XXL is text_dim=4096.
    "imagen-base-64": UNetConfig(image_size=64, base_channels=512, channel_mults=(1, 2, 3, 4),
                                 num_res_blocks=(3, 3, 3, 3), cross_attn_levels=(1, 2, 3),
                                 self_attn_levels=(1, 2, 3), head_dim=64, dropout=0.1),
    # Imagen's 64 -> 256 px Efficient U-Net (App. B): more ResBlocks at low resolution, no
    # self-attention, text cross-attention kept at the lowest resolution.
    "imagen-sr-256": UNetConfig(image_size=256, base_channels=128, channel_mults=(1, 2, 4, 8),
                                num_res_blocks=(2, 4, 8, 8), cross_attn_levels=(3,), self_attn_levels=(),
                                head_dim=64, lowres_cond=True),
}


def get_preset(name: str, **overrides: Any) -> UNetConfig:
    """Return the named preset, with ``overrides`` applied via ``dataclasses.replace``."""
    if name not in PRESETS:
        raise UnknownNameError("U-Net preset", name, PRESETS)
    _check_keys(overrides)
    return build(lambda: dataclasses.replace(PRESETS[name], **overrides), overrides)
