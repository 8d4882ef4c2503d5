"""The conditioning bundle every denoiser receives: ``denoise(x, sigma, cond) -> x0_hat``.

Text tokens, their mask, the per-sample "text dropped" flag (classifier-free guidance,
Ho & Salimans 2022), the low-res image of a super-resolution stage and its
noise-augmentation level (Imagen, Saharia et al. 2022, Sec. 2.5) all travel here.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Optional

import torch


@dataclass(frozen=True)
class Cond:
    text: torch.Tensor                      # (B, L, D) token embeddings from the frozen text encoder
    mask: torch.Tensor                      # (B, L) bool, True where a real token is
    drop: Optional[torch.Tensor] = None     # (B,) bool, True: use the learned null text (unconditional)
    lowres: Optional[torch.Tensor] = None   # (B, C, h, w) low-res image in [-1, 1] (SR stages only)
    aug_sigma: Optional[torch.Tensor] = None  # (B,) noise-augmentation level of `lowres`, as sigma (VE)

    @property
    def batch_size(self) -> int:
        return self.text.shape[0]

    def with_drop(self, drop: torch.Tensor) -> "Cond":
        return replace(self, drop=drop)

    def map(self, fn) -> "Cond":
        """Apply ``fn`` to every tensor field (e.g. ``lambda t: t.to(device)`` or a batch index)."""
        return Cond(**{f.name: (None if getattr(self, f.name) is None else fn(getattr(self, f.name)))
                       for f in fields(self)})

    def drop_mask(self) -> torch.Tensor:
        """The (B,) drop flags, all False when none were given."""
        if self.drop is None:
            return torch.zeros(self.batch_size, dtype=torch.bool, device=self.text.device)
        return self.drop

    @staticmethod
    def cat(conds: "list[Cond]") -> "Cond":
        """Concatenate along the batch; used to run cond and uncond in one forward pass."""
        out = {}
        for f in fields(Cond):
            vals = [getattr(c, f.name) for c in conds]
            if f.name == "drop":
                vals = [c.drop_mask() for c in conds]
            if any(v is None for v in vals):
                if not all(v is None for v in vals):
                    raise ValueError(f"cannot concatenate Cond with and without {f.name}")
                out[f.name] = None
            else:
                out[f.name] = torch.cat(vals)
        return Cond(**out)
