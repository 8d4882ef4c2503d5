"""The conditioning bundle every denoiser receives: ``denoise(x, sigma, cond) -> x0_hat``.

Text tokens, their mask, the per-sample "text dropped" flag (classifier-free guidance,
Ho & Salimans 2022), the low-res image of a super-resolution stage and its
noise-augmentation level (Imagen, Saharia et al. 2022, Sec. 2.5) all travel here, and
optionally a negative prompt's tokens: the text of guidance's other branch
(:meth:`Cond.unconditional`) in place of the learned null text.
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
    neg_text: Optional[torch.Tensor] = None   # (B, L, D) negative prompts' tokens (guidance's other branch)
    neg_mask: Optional[torch.Tensor] = None   # (B, L) bool
    neg_drop: Optional[torch.Tensor] = None   # (B,) bool, True: that sample's negative prompt is the null text
    guidance: Optional[torch.Tensor] = None   # (B,) float: the guidance weight w, input of a guidance-distilled net

    @property
    def batch_size(self) -> int:
        return self.text.shape[0]

    def with_drop(self, drop: torch.Tensor) -> "Cond":
        return replace(self, drop=drop)

    def conditional(self) -> "Cond":
        """The prompt branch of classifier-free guidance (this cond without its negative prompts)."""
        return replace(self, neg_text=None, neg_mask=None, neg_drop=None)

    def unconditional(self) -> "Cond":
        """The other branch of classifier-free guidance: each sample's negative prompt where one was given (an empty
        one is flagged ``neg_drop``, i.e. the null text), else the learned null text for every sample."""
        if self.neg_text is None:
            return self.with_drop(torch.ones(self.batch_size, dtype=torch.bool, device=self.text.device))
        drop = self.neg_drop if self.neg_drop is not None else torch.zeros_like(self.drop_mask())
        return replace(self.conditional(), text=self.neg_text, mask=self.neg_mask, drop=drop)

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
