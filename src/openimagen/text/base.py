"""The text-encoder contract: prompts in, fixed-length token embeddings and a mask out.

Imagen conditions every cascade stage on the per-token outputs of a *frozen*
pretrained text encoder (T5-XXL; Saharia et al. 2022, Sec. 2.1), not on a pooled
sentence vector. Every encoder here returns the same three things:

    tokens      (B, L, D)  float, last hidden state of the encoder, zero at padding
    mask        (B, L)     bool, True where a real token is (special tokens included)
    encoder_id  str        a stable name for the weights that produced ``tokens``

``L`` is always the encoder's ``max_length``: padding to a fixed length keeps shapes
static, so embeddings can be cached on disk and batched without re-padding.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import torch

from openimagen.errors import InvalidArgumentError, is_int_at_least


@dataclass(frozen=True, eq=False)
class TextEmbedding:
    """Per-token text embeddings of a batch of prompts (the ``text``/``mask`` of a ``Cond``)."""

    tokens: torch.Tensor  # (B, L, D) float, zero where mask is False
    mask: torch.Tensor    # (B, L) bool, True where a real token is
    encoder_id: str       # which encoder weights produced ``tokens``

    def __post_init__(self) -> None:
        if self.tokens.ndim != 3 or self.mask.shape != self.tokens.shape[:2]:
            raise ValueError(f"TextEmbedding expects tokens (B, L, D) and mask (B, L); "
                             f"got {tuple(self.tokens.shape)} and {tuple(self.mask.shape)}")
        if self.mask.dtype != torch.bool:
            raise ValueError(f"TextEmbedding mask must be bool, got {self.mask.dtype}")

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    def to(self, device: torch.device | str) -> "TextEmbedding":
        """The same embedding with both tensors moved to ``device``."""
        return TextEmbedding(self.tokens.to(device), self.mask.to(device), self.encoder_id)


class TextEncoder(ABC):
    """A frozen text encoder: ``encode(prompts) -> TextEmbedding`` with ``L == max_length``.

    Attributes every implementation sets:
        encoder_id  stable identifier of the weights (checkpoints and the cache key on it)
        dim         D, the width of each token embedding
        max_length  L, every output is padded or truncated to exactly this many tokens
        dtype       floating dtype of ``tokens`` (part of the cache key)
        device      device ``tokens`` and ``mask`` live on
    """

    encoder_id: str
    dim: int
    max_length: int
    dtype: torch.dtype = torch.float32
    device: torch.device = torch.device("cpu")

    @abstractmethod
    def encode(self, prompts: Sequence[str]) -> TextEmbedding:
        """Embed ``prompts``: tokens ``(len(prompts), max_length, dim)``, mask ``(len(prompts), max_length)``."""

    def __call__(self, prompts: Sequence[str]) -> TextEmbedding:
        # Not ``__call__ = encode``: that would bind the abstract method, not the subclass's override.
        return self.encode(prompts)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(encoder_id={self.encoder_id!r}, dim={self.dim}, "
                f"max_length={self.max_length}, dtype={self.dtype}, device={self.device})")


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """``prompts`` as a list; :class:`InvalidArgumentError` unless it is a non-empty sequence of str."""
    if isinstance(prompts, (str, bytes)):
        raise InvalidArgumentError("prompts must be a list of strings, not a single string; wrap it: [prompt]")
    try:
        out = list(prompts)
    except TypeError:
        raise InvalidArgumentError(f"prompts must be a list of strings, got {type(prompts).__name__}") from None
    if not out:
        raise InvalidArgumentError("prompts must contain at least one prompt (an empty string is allowed)")
    bad = [i for i, p in enumerate(out) if not isinstance(p, str)]
    if bad:
        raise InvalidArgumentError(f"every prompt must be a str; prompt {bad[0]} is {type(out[bad[0]]).__name__}")
    return out


def check_max_length(max_length: int, limit: int | None = None) -> int:
    """Return ``max_length`` if it is an int in ``[1, limit]``, else raise :class:`InvalidArgumentError`."""
    if not is_int_at_least(max_length, 1):
        raise InvalidArgumentError(f"max_length must be a positive int, got {max_length!r}")
    if limit is not None and max_length > limit:
        raise InvalidArgumentError(f"max_length={max_length} exceeds this encoder's limit of {limit} positions")
    return max_length
