"""Residual building blocks of Imagen's Efficient U-Net (Saharia et al. 2022, App. B).

* :class:`ResBlock`: GroupNorm-SiLU-Conv, then a scale-shift (FiLM) of the second
  GroupNorm by the conditioning embedding (Nichol & Dhariwal 2021, "adaptive group
  normalisation"; Dhariwal & Nichol 2021), SiLU, dropout, Conv; plus a 1x1 skip conv
  when the width changes (Fig. A.27).
* :class:`DBlock`: downsample FIRST (strided conv), then the ResBlocks, then attention
  (Fig. A.28): the expensive convolutions run at the lower resolution.
* :class:`UBlock`: concatenate the skip (scaled by 1/sqrt(2)), ResBlocks FIRST, then
  attention, then upsample (Fig. A.29).

Attention layers are built by the U-Net and handed in, so this file knows nothing of text.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

SKIP_SCALE = 1.0 / math.sqrt(2.0)  # Imagen App. B: skip connections scaled by 1/sqrt(2)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups of at least 4 channels (32 groups for widths >= 128)."""
    groups = min(32, max(1, channels // 4))
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels, eps=1e-5)


class ResBlock(nn.Module):
    """Residual block with scale-shift conditioning: ``h = GN(h) * (1 + scale) + shift``."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``x`` (B, in_ch, H, W); ``emb`` (B, emb_dim) already passed through SiLU."""
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out_ch, H, W)
        scale, shift = self.emb_proj(emb)[:, :, None, None].chunk(2, dim=1)  # 2 x (B, out_ch, 1, 1)
        h = F.silu(torch.addcmul(shift, self.norm2(h), scale + 1.0))
        return self.conv2(self.dropout(h)) + self.skip(x)


class DBlock(nn.Module):
    """Efficient U-Net DBlock (Fig. A.28): optional 2x downsampling conv, ResBlocks, optional attention."""

    def __init__(self, in_ch: int, out_ch: int, num_res: int, emb_dim: int, downsample: bool,
                 attn: Optional[nn.Module], dropout: float = 0.0):
        super().__init__()
        if downsample:
            self.down = nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1)
        elif in_ch != out_ch:
            self.down = nn.Conv2d(in_ch, out_ch, 1)
        else:
            self.down = nn.Identity()
        self.res = nn.ModuleList(ResBlock(out_ch, out_ch, emb_dim, dropout) for _ in range(num_res))
        self.attn = attn

    def forward(self, x, emb, ctx, ctx_mask):
        x = self.down(x)  # (B, out_ch, H/2, W/2) when downsampling
        for block in self.res:
            x = block(x, emb)
        if self.attn is not None:
            x = self.attn(x, ctx, ctx_mask)
        return x


class UBlock(nn.Module):
    """Efficient U-Net UBlock (Fig. A.29): [concat skip / sqrt(2)], ResBlocks, optional attention, 2x upsampling."""

    def __init__(self, in_ch: int, skip_ch: int, ch: int, out_ch: int, num_res: int, emb_dim: int,
                 upsample: bool, attn: Optional[nn.Module], dropout: float = 0.0):
        super().__init__()
        widths = [in_ch + skip_ch] + [ch] * num_res
        self.res = nn.ModuleList(ResBlock(widths[i], ch, emb_dim, dropout) for i in range(num_res))
        self.attn = attn
        self.up = nn.Conv2d(ch, out_ch, 3, padding=1) if upsample else None

    def forward(self, x, skip, emb, ctx, ctx_mask):
        if skip is not None:
            x = torch.cat([x, skip * SKIP_SCALE], dim=1)  # (B, in_ch + skip_ch, H, W)
        for block in self.res:
            x = block(x, emb)
        if self.attn is not None:
            x = self.attn(x, ctx, ctx_mask)
        if self.up is not None:
            x = self.up(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, out_ch, 2H, 2W)
        return x
