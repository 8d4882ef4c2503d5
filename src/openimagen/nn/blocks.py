"""Residual building blocks of Imagen's Efficient U-Net (Saharia et al. 2022, App. B).

* :class:`ResBlock`: GroupNorm-SiLU-Conv, then a scale-shift (FiLM) of the second
  GroupNorm by the conditioning embedding (Nichol & Dhariwal 2021, "adaptive group
  normalisation"; Dhariwal & Nichol 2021), SiLU, dropout, Conv; plus a 1x1 skip conv
  when the width changes (Fig. A.27).
* :class:`DBlock`: downsample FIRST (strided conv), then the ResBlocks, then attention
  (Fig. A.28): the expensive convolutions run at the lower resolution.
* :class:`UBlock`: concatenate the skip (scaled by 1/sqrt(2)), ResBlocks FIRST, then
  attention, then upsample (Fig. A.29).

With ``separable=True`` every 3x3 convolution of these blocks is depthwise-separable (a 3x3 depthwise conv, then
a 1x1 pointwise conv; MobileNet, Howard et al. 2017, Sec. 3.1): multiply-adds per output pixel fall from
9·C_in·C_out to C_in·(9 + C_out), 6.4x fewer at 64 channels; the small-cpu preset's forward pass at 32 px falls
from 564 to 120 MFLOP (``UNetConfig.separable_convs``, preset ``small-cpu-separable``).

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


def hidden_width(out_ch: int, fraction: float) -> int:
    """Width between a ResBlock's two convolutions: ``fraction`` of ``out_ch`` rounded to whole groups of
    ``group_norm(out_ch)`` (at least one group), so that a channel-pruned block keeps whole groups
    (openimagen.accel.prune). ``fraction`` 1 gives ``out_ch``."""
    size = out_ch // group_norm(out_ch).num_groups
    return size * max(1, round(out_ch * fraction / size))


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, separable: bool = False) -> nn.Module:
    """A 3x3 convolution (padding 1), or its depthwise-separable form: depthwise 3x3 (groups = in_ch, no bias),
    then pointwise 1x1. Input (B, in_ch, H, W) -> (B, out_ch, H / stride, W / stride)."""
    if not separable:
        return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1)
    return nn.Sequential(nn.Conv2d(in_ch, in_ch, 3, stride=stride, padding=1, groups=in_ch, bias=False),
                         nn.Conv2d(in_ch, out_ch, 1))


class ResBlock(nn.Module):
    """Residual block with scale-shift conditioning: ``h = GN(h) * (1 + scale) + shift``.

    ``hidden`` is the width between the two convolutions (default ``out_ch``; smaller in a channel-pruned net)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0, separable: bool = False,
                 hidden_fraction: float = 1.0):
        super().__init__()
        hidden = hidden_width(out_ch, hidden_fraction)
        self.norm1 = group_norm(in_ch)
        self.conv1 = conv3x3(in_ch, hidden, separable=separable)
        self.emb_proj = nn.Linear(emb_dim, 2 * hidden)
        self.norm2 = group_norm(hidden)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(hidden, out_ch, separable=separable)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``x`` (B, in_ch, H, W); ``emb`` (B, emb_dim) already passed through SiLU."""
        h = self.conv1(F.silu(self.norm1(x)))  # (B, hidden, H, W)
        scale, shift = self.emb_proj(emb)[:, :, None, None].chunk(2, dim=1)  # 2 x (B, hidden, 1, 1)
        h = F.silu(torch.addcmul(shift, self.norm2(h), scale + 1.0))
        return self.conv2(self.dropout(h)) + self.skip(x)


class DBlock(nn.Module):
    """Efficient U-Net DBlock (Fig. A.28): optional 2x downsampling conv, ResBlocks, optional attention."""

    def __init__(self, in_ch: int, out_ch: int, num_res: int, emb_dim: int, downsample: bool,
                 attn: Optional[nn.Module], dropout: float = 0.0, separable: bool = False, hidden_fraction: float = 1.0):
        super().__init__()
        if downsample:
            self.down = conv3x3(in_ch, out_ch, stride=2, separable=separable)
        elif in_ch != out_ch:
            self.down = nn.Conv2d(in_ch, out_ch, 1)
        else:
            self.down = nn.Identity()
        self.res = nn.ModuleList(ResBlock(out_ch, out_ch, emb_dim, dropout, separable, hidden_fraction)
                                 for _ in range(num_res))
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
                 upsample: bool, attn: Optional[nn.Module], dropout: float = 0.0, separable: bool = False,
                 hidden_fraction: float = 1.0):
        super().__init__()
        widths = [in_ch + skip_ch] + [ch] * num_res
        self.res = nn.ModuleList(ResBlock(widths[i], ch, emb_dim, dropout, separable, hidden_fraction)
                                 for i in range(num_res))
        self.attn = attn
        self.up = conv3x3(ch, out_ch, separable=separable) if upsample else None

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
