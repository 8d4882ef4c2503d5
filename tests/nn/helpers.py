"""Tiny random inputs for the U-Net tests."""
from __future__ import annotations

import torch

from openimagen.nn import EfficientUNet, UNetConfig, get_preset

TEXT_DIM = 16


def tiny(name: str = "tiny", **overrides) -> UNetConfig:
    return get_preset(name, text_dim=TEXT_DIM, **overrides)


def make_inputs(cfg: UNetConfig, batch: int = 3, length: int = 8, lengths=None, seed: int = 0,
                size: int | None = None) -> dict:
    """Keyword arguments of ``EfficientUNet.forward`` with random values; ``lengths`` sets the real tokens."""
    g = torch.Generator().manual_seed(seed)
    size = size or cfg.image_size
    lengths = lengths or [length - (i % length) for i in range(batch)]
    kw = dict(
        x=torch.randn(batch, cfg.in_channels, size, size, generator=g),
        c_noise=torch.rand(batch, generator=g) * 10 - 5,
        text=torch.randn(batch, length, cfg.text_dim, generator=g),
        text_mask=torch.arange(length)[None, :] < torch.tensor(lengths)[:, None],
    )
    if cfg.lowres_cond:
        kw["lowres"] = torch.randn(batch, cfg.in_channels, size // 2, size // 2, generator=g)
        kw["c_aug"] = torch.rand(batch, generator=g) * 2 - 3
    return kw


def build(cfg: UNetConfig, seed: int = 0, nonzero: bool = True) -> EfficientUNet:
    """An eval-mode net; ``nonzero`` perturbs the zero-initialised output conv so the output depends on the input."""
    torch.manual_seed(seed)
    model = EfficientUNet(cfg).eval()
    if nonzero:
        with torch.no_grad():
            model.out_conv.weight.normal_(0.0, 0.1)
    return model


def select(kw: dict, idx) -> dict:
    return {k: v[idx] for k, v in kw.items()}
