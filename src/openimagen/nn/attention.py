"""Attention over a feature map: text cross-attention, optionally joined with self-attention.

Imagen (Saharia et al. 2022, App. B) conditions on text "by concatenating the text
embedding to the key-value pairs of each self-attention layer" and adds cross-attention
where there is no self-attention. :class:`Attention` does both in one
``scaled_dot_product_attention`` call: the queries are the image positions, the keys and
values are [image positions (self)] + [text context (cross)], and SDPA's boolean
``attn_mask`` hides padded text tokens and the null/real tokens a sample must not see
(so the values at masked positions cannot change the output).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from openimagen.nn.blocks import group_norm


class Attention(nn.Module):
    """Multi-head attention of a (B, C, H, W) map over itself and/or a (B, S, D) text context.

    Projections act on (B, HW, C) token rows so that q, k, v reach SDPA with a unit-stride
    last dimension, which the fused (flash) CPU/GPU kernels require.
    """

    def __init__(self, channels: int, ctx_dim: int, head_dim: int, self_attn: bool, cross_attn: bool):
        super().__init__()
        if not (self_attn or cross_attn):
            raise ValueError("Attention needs self_attn or cross_attn")
        self.heads, self.head_dim = channels // head_dim, head_dim
        self.norm = group_norm(channels)
        self.to_qkv = nn.Linear(channels, (3 if self_attn else 1) * channels)  # q [, k, v] of the image tokens
        self.to_kv_ctx = nn.Linear(ctx_dim, 2 * channels) if cross_attn else None
        self.to_out = nn.Linear(channels, channels)

    def _split(self, t: torch.Tensor, n: int):
        """(B, T, n*C) -> n x (B, heads, T, head_dim)."""
        B, T, _ = t.shape
        return t.view(B, T, n, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, H, W); ``ctx`` (B, S, D) context; ``ctx_mask`` (B, S) bool, True = may attend."""
        B, C, H, W = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        qkv = self._split(self.to_qkv(tokens), self.to_qkv.out_features // C)  # 1 or 3 x (B, heads, HW, d)
        q, mask = qkv[0], None
        if self.to_kv_ctx is not None:
            k, v = self._split(self.to_kv_ctx(ctx), 2)  # (B, heads, S, d) each
            mask = ctx_mask
            if len(qkv) == 3:  # Imagen: text tokens join the self-attention keys and values
                k, v = torch.cat([qkv[1], k], dim=2), torch.cat([qkv[2], v], dim=2)  # (B, heads, HW+S, d)
                mask = torch.cat([ctx_mask.new_ones(B, H * W), ctx_mask], dim=1)  # (B, HW+S)
            mask = mask[:, None, None, :]  # (B, 1, 1, keys)
        else:
            k, v = qkv[1], qkv[2]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, heads, HW, d)
        out = self.to_out(out.transpose(1, 2).reshape(B, H * W, C))  # (B, HW, C)
        return x + out.transpose(1, 2).reshape(B, C, H, W)
