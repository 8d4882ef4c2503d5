"""Conditioning embeddings of the Efficient U-Net.

* :class:`NoiseEmbedding`: sinusoidal features of the noise-level input ``c_noise``
  (EDM convention, ``c_noise = ln(sigma) / 4``, about [-5, 5]) followed by a 2-layer MLP,
  as the timestep embedding of Ho et al. 2020 / Dhariwal & Nichol 2021.
* :class:`TextConditioner`: projects the frozen text encoder's tokens to the attention
  context width, appends a learned null text (classifier-free guidance, Ho & Salimans 2022),
  layer-normalises the context (Imagen Sec. 2.1/App. B: layer norm on text embeddings in
  the attention and pooling layers helped) and pools it into a vector that is added to the
  noise embedding (Imagen Sec. 2.1).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

FOURIER_SCALE = 250.0    # c_noise in [-5, 5] -> arguments in [-1250, 1250], like DDPM's t in [0, 1000]
MAX_PERIOD = 10000.0


def fourier_features(c: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of a (B,) float tensor (Vaswani et al. 2017; Ho et al. 2020 App. B)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=c.device, dtype=torch.float32) * (-math.log(MAX_PERIOD) / half))
    args = (FOURIER_SCALE * c.float())[:, None] * freqs  # (B, half)
    return torch.cat([args.cos(), args.sin()], dim=-1)   # (B, dim)


class NoiseEmbedding(nn.Module):
    """Fourier features of a noise level, then Linear-SiLU-Linear to ``emb_dim``."""

    def __init__(self, fourier_dim: int, emb_dim: int):
        super().__init__()
        self.fourier_dim = fourier_dim
        self.mlp = nn.Sequential(nn.Linear(fourier_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

    def forward(self, c: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, emb_dim)
        feats = fourier_features(c, self.fourier_dim).to(self.mlp[0].weight.dtype)
        return self.mlp(feats)


class AttentionPool(nn.Module):
    """Multi-head attention pooling of the masked context with one learned query (CLIP-style)."""

    def __init__(self, dim: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = dim // head_dim, head_dim
        self.query = nn.Parameter(torch.randn(dim) * dim ** -0.5)
        self.to_kv = nn.Linear(dim, 2 * dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, ctx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, S, D = ctx.shape
        q = self.query.to(ctx.dtype).view(1, self.heads, 1, self.head_dim).expand(B, -1, -1, -1)  # (B, h, 1, d)
        k, v = self.to_kv(ctx).view(B, S, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 2 x (B, h, S, d)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])  # (B, h, 1, d)
        return self.to_out(out.reshape(B, D))  # (B, D)


def masked_mean(ctx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the tokens where ``mask`` is True; masked tokens' values never enter (not even as 0 * x)."""
    total = ctx.masked_fill(~mask[..., None], 0.0).sum(dim=1)  # (B, D)
    count = mask.sum(dim=1, keepdim=True).clamp(min=1).to(ctx.dtype)  # (B, 1)
    return total / count


class TextConditioner(nn.Module):
    """Text context for cross-attention plus the pooled text embedding.

    Static-shape classifier-free guidance: the context is ``cat(proj(text), null)`` of length
    L + N for every sample; a kept sample's mask shows only its real tokens, a dropped sample's
    mask only the N learned null tokens (Ho & Salimans 2022). A kept sample whose mask is all
    False is treated as dropped, so attention never sees a fully masked row.
    """

    def __init__(self, text_dim: int, ctx_dim: int, emb_dim: int, num_null_tokens: int,
                 pooling: str, head_dim: int):
        super().__init__()
        self.proj = nn.Linear(text_dim, ctx_dim)
        self.null = nn.Parameter(torch.randn(num_null_tokens, ctx_dim))
        self.norm = nn.LayerNorm(ctx_dim)
        self.pool = AttentionPool(ctx_dim, head_dim) if pooling == "attention" else None
        self.to_emb = nn.Linear(ctx_dim, emb_dim)

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor, text_drop: Optional[torch.Tensor]):
        """Return ``ctx`` (B, L+N, D), ``mask`` (B, L+N) bool and the pooled embedding (B, emb_dim)."""
        B, N = text.shape[0], self.null.shape[0]
        text_mask = text_mask.bool()
        drop = ~text_mask.any(dim=1)  # (B,) an empty prompt falls back to the null text
        if text_drop is not None:
            drop = drop | text_drop.bool()
        tokens = self.proj(text.to(self.proj.weight.dtype))  # (B, L, D)
        ctx = torch.cat([tokens, self.null.to(tokens.dtype).expand(B, -1, -1)], dim=1)  # (B, L+N, D)
        ctx = self.norm(ctx)
        mask = torch.cat([text_mask & ~drop[:, None], drop[:, None].expand(B, N)], dim=1)  # (B, L+N)
        pooled = self.pool(ctx, mask) if self.pool is not None else masked_mean(ctx, mask)  # (B, D)
        return ctx, mask, self.to_emb(pooled)
