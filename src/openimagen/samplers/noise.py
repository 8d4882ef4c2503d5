"""Explicit randomness for samplers.

A ``generator`` is one ``torch.Generator`` or a sequence of them, one per batch element. With one per
element, image k's noise depends only on its own generator, so a seed reproduces an image whatever the
batch size or batch position.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

Generators = Union[None, torch.Generator, Sequence[torch.Generator]]


def randn(shape, generator: Generators, device=None, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise of ``shape`` (batch first), drawn per element when given a sequence."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    if len(generator) != shape[0]:
        raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}")
    return torch.stack([_randn_one(shape[1:], g, device, dtype) for g in generator])


def _randn_one(shape, g: torch.Generator, device, dtype) -> torch.Tensor:
    # Draw on the generator's own device, then move: CPU generators give the same noise on any device.
    return torch.randn(shape, generator=g, device=g.device, dtype=dtype).to(device)


def generators_from_seeds(seeds: Sequence[int], device: Optional[str] = "cpu") -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
