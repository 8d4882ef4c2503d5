"""LoRA settings (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"), declared once.

A LoRA adapter replaces a layer's frozen weight W (out x in, or out x in x k x k) by ``W + (alpha / rank) B A``
with A (rank x in[, k, k]) and B (out x rank[, 1, 1]) trained and B initialised to zero (so training starts at the
base model exactly, Hu et al. Sec. 4.1). The run config's ``lora`` section, the adapter file's JSON and the peft
``LoraConfig`` are all built from :class:`LoraSettings`.

Targets are groups of the Efficient U-Net's layers, by module name (see :data:`TARGET_PATTERNS`):

* ``attention``: the image tokens' projections of every attention layer, q/k/v (``to_qkv``) and out (``to_out``);
* ``text``: the text-conditioning projections: each attention layer's keys/values of the text (``to_kv_ctx``) and
  the text conditioner's token projection, attention pooling and pooled-embedding projection;
* ``conv``: the two 3x3 convolutions of every ResBlock (LoRA for Conv2d: A is a k x k conv, B a 1x1 conv).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, Strict, field_validator
from pydantic.dataclasses import dataclass

from openimagen.validation import PlainNumber

TARGET_PATTERNS = {
    "attention": r"(?:down|up)\.\d+\.attn\.(?:to_qkv|to_out)",
    "text": r"(?:down|up)\.\d+\.attn\.to_kv_ctx|text\.(?:proj|to_emb|pool\.to_kv|pool\.to_out)",
    "conv": r"(?:down|up)\.\d+\.res\.\d+\.(?:conv1|conv2)",
}
TargetName = Literal["attention", "text", "conv"]
Rank = Annotated[int, Field(ge=1, le=1024), PlainNumber, Strict()]
Alpha = Annotated[float, Field(gt=0, le=1e4, allow_inf_nan=False), PlainNumber, Strict()]
Dropout = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False), PlainNumber, Strict()]


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class LoraSettings:
    """Rank, alpha (the update is scaled by alpha / rank), dropout on the adapter's input, and target groups."""

    rank: Rank = 4
    alpha: Alpha = 4.0
    dropout: Dropout = 0.0
    targets: Annotated[tuple[TargetName, ...], Field(min_length=1)] = ("attention", "text")

    @field_validator("targets")
    @classmethod
    def _unique(cls, targets):
        if len(set(targets)) != len(targets):
            raise ValueError(f"targets lists a group twice: {list(targets)}")
        return targets

    @property
    def target_regex(self) -> str:
        """One regular expression that peft matches against full module names (``re.fullmatch``)."""
        return "(?:" + "|".join(TARGET_PATTERNS[t] for t in self.targets) + ")"

    def peft_config(self):
        """The ``peft.LoraConfig`` of these settings (B = 0 at start, so a new adapter changes nothing)."""
        from peft import LoraConfig

        return LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=self.target_regex, init_lora_weights=True, bias="none")

    def to_dict(self) -> dict:
        return {"rank": self.rank, "alpha": self.alpha, "dropout": self.dropout, "targets": list(self.targets)}

Scale = Annotated[float, Field(ge=-10, le=10, allow_inf_nan=False), PlainNumber, Strict()]  # 1 = as trained
