"""Imagen's Efficient U-Net (Saharia et al. 2022, App. B, Fig. A.27-A.30).

Layout for levels 0..n-1 (level i at resolution H / 2**i, width ``base * channel_mults[i]``)::

    x [, bilinear-upsampled lowres]  -> stem conv 3x3
    DBlock_0 .. DBlock_{n-1}          downsample first (i > 0), ResBlocks, attention; output = skip_i
    UBlock_{n-1} .. UBlock_0          [cat skip_i / sqrt(2)] (i < n-1), ResBlocks, attention, upsample (i > 0)
    GroupNorm - SiLU - conv 3x3 (zero-initialised: the untrained net outputs exactly 0)

The deepest level's DBlock and UBlock together play the role of the middle block. Every
ResBlock is scale-shift conditioned on ``emb = MLP(fourier(c_noise)) + pooled text
[+ MLP(fourier(c_aug))] [+ MLP(fourier(w))]`` (Imagen Sec. 2.1 and 2.5; the last term, for a guidance-distilled
student, is Meng et al. 2023's guidance embedding, its output layer zero-initialised so that a student made
from a teacher starts as exactly the teacher). The network maps tensors to a raw
output F; whether F is eps, v or x0 is decided by the preconditioning wrapper.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from openimagen.errors import InvalidArgumentError
from openimagen.nn.attention import Attention
from openimagen.nn.blocks import DBlock, UBlock, group_norm
from openimagen.nn.config import UNetConfig
from openimagen.nn.embeddings import NoiseEmbedding, TextConditioner


class EfficientUNet(nn.Module):
    """Text-conditioned Efficient U-Net; ``config.lowres_cond`` makes it a super-resolution stage."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = cfg = config.validate()
        n, emb_dim = cfg.num_levels, cfg.emb_dim
        ch = [cfg.channels(i) for i in range(n)]
        self.noise_emb = NoiseEmbedding(cfg.fourier_dim, emb_dim)
        self.aug_emb = NoiseEmbedding(cfg.fourier_dim, emb_dim) if cfg.lowres_cond else None
        self.guidance_emb = NoiseEmbedding(cfg.fourier_dim, emb_dim) if cfg.guidance_cond else None
        if self.guidance_emb is not None:
            nn.init.zeros_(self.guidance_emb.mlp[-1].weight)
            nn.init.zeros_(self.guidance_emb.mlp[-1].bias)
        self.text = TextConditioner(cfg.text_dim, emb_dim, emb_dim, cfg.num_null_tokens, cfg.text_pooling, cfg.head_dim)
        self.stem = nn.Conv2d(cfg.in_channels * (2 if cfg.lowres_cond else 1), ch[0], 3, padding=1)
        self.down = nn.ModuleList(
            DBlock(ch[max(i - 1, 0)], ch[i], cfg.num_res_blocks[i], emb_dim, downsample=i > 0,
                   attn=self._attention(i), dropout=cfg.dropout, separable=cfg.separable_convs,
                   hidden_fraction=cfg.res_hidden_fraction)
            for i in range(n))
        self.up = nn.ModuleList(
            UBlock(ch[i], ch[i] if i < n - 1 else 0, ch[i], ch[max(i - 1, 0)], cfg.num_res_blocks[i], emb_dim,
                   upsample=i > 0, attn=self._attention(i), dropout=cfg.dropout, separable=cfg.separable_convs,
                   hidden_fraction=cfg.res_hidden_fraction)
            for i in reversed(range(n)))
        self.out_norm = group_norm(ch[0])
        self.out_conv = nn.Conv2d(ch[0], cfg.out_channels, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def _attention(self, level: int) -> Optional[Attention]:
        cfg = self.config
        use_self, use_cross = level in cfg.self_attn_levels, level in cfg.cross_attn_levels
        if not (use_self or use_cross):
            return None
        return Attention(cfg.channels(level), cfg.emb_dim, cfg.head_dim, self_attn=use_self, cross_attn=use_cross)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                text_drop: Optional[torch.Tensor] = None, lowres: Optional[torch.Tensor] = None,
                c_aug: Optional[torch.Tensor] = None, guidance: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Raw output F (B, out_channels, H, W); see the module docstring for the inputs (``guidance``: (B,) or a
        scalar, the guidance weight w of a guidance-distilled student, ``config.guidance_cond``)."""
        self._check_inputs(x, c_noise, text, text_mask, lowres, c_aug)
        if (guidance is None) == (self.guidance_emb is not None):
            raise InvalidArgumentError("a guidance-distilled U-Net needs the guidance weight (and only it takes one)")
        B, _, H, W = x.shape
        ctx, ctx_mask, pooled = self.text(text, text_mask, text_drop)  # (B, S, D), (B, S), (B, E)
        emb = self.noise_emb(c_noise.reshape(-1).expand(B)) + pooled  # (B, E)
        if self.guidance_emb is not None:
            emb = emb + self.guidance_emb(guidance.reshape(-1).expand(B))
        if self.aug_emb is not None:
            emb = emb + self.aug_emb(c_aug.reshape(-1).expand(B))
            if lowres.shape[-2:] != (H, W):
                lowres = F.interpolate(lowres, size=(H, W), mode="bilinear", align_corners=False)
            x = torch.cat([x, lowres.to(x.dtype)], dim=1)  # (B, 2 * in_channels, H, W)
        emb = F.silu(emb)  # every ResBlock's FiLM projection starts with SiLU: do it once

        h = self.stem(x)  # (B, ch0, H, W)
        skips = []
        for block in self.down:
            h = block(h, emb, ctx, ctx_mask)
            skips.append(h)
        skips[-1] = None  # the deepest level continues straight into its UBlock
        for block in self.up:
            h = block(h, skips.pop(), emb, ctx, ctx_mask)
        return self.out_conv(F.silu(self.out_norm(h)))  # (B, out_channels, H, W)

    def _check_inputs(self, x, c_noise, text, text_mask, lowres, c_aug) -> None:
        """Shape-only checks (no tensor values are read, so ``torch.compile(fullgraph=True)`` traces them away)."""
        cfg, m = self.config, self.config.size_multiple
        if x.dim() != 4 or x.shape[1] != cfg.in_channels:
            raise InvalidArgumentError(f"x must be (B, {cfg.in_channels}, H, W), got {tuple(x.shape)}")
        B, _, H, W = x.shape
        if H % m or W % m:
            raise InvalidArgumentError(
                f"image size {H}x{W} is not supported: H and W must be multiples of {m} (e.g. {m * (cfg.image_size // m)})")
        if c_noise.numel() not in (1, B):
            raise InvalidArgumentError(f"c_noise must have shape ({B},), got {tuple(c_noise.shape)}")
        if text.dim() != 3 or text.shape[0] != B or text.shape[2] != cfg.text_dim:
            raise InvalidArgumentError(f"text must be ({B}, L, {cfg.text_dim}), got {tuple(text.shape)}")
        if tuple(text_mask.shape) != tuple(text.shape[:2]):
            raise InvalidArgumentError(f"text_mask must be {tuple(text.shape[:2])}, got {tuple(text_mask.shape)}")
        if cfg.lowres_cond:
            if lowres is None or c_aug is None:
                raise InvalidArgumentError("this super-resolution U-Net needs lowres and c_aug")
            if lowres.dim() != 4 or lowres.shape[:2] != x.shape[:2]:
                raise InvalidArgumentError(f"lowres must be ({B}, {cfg.in_channels}, h, w), got {tuple(lowres.shape)}")
            if c_aug.numel() not in (1, B):
                raise InvalidArgumentError(f"c_aug must have shape ({B},), got {tuple(c_aug.shape)}")
        elif lowres is not None or c_aug is not None:
            raise InvalidArgumentError("this base U-Net takes no lowres / c_aug (config.lowres_cond is False)")


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
