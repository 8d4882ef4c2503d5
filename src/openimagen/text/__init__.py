"""Frozen text encoders: prompts -> per-token embeddings ``(B, L, D)`` and a mask ``(B, L)``.

Imagen conditions its cascade on a frozen pretrained text encoder (Saharia et al. 2022,
Sec. 2.1). ``load_text_encoder()`` gives the offline default (all-MiniLM-L6-v2, D = 384);
``load_text_encoder(path)`` any local Hugging Face T5-family or BERT-like encoder;
``cache_dir=`` adds an on-disk embedding cache.
"""
from openimagen.text.base import TextEmbedding, TextEncoder
from openimagen.text.cache import CachedTextEncoder
from openimagen.text.hf import HFTextEncoder
from openimagen.text.registry import DEFAULT_ENCODER_ID, TextEncoderConfig, load_text_encoder

__all__ = [
    "TextEmbedding",
    "TextEncoder",
    "HFTextEncoder",
    "CachedTextEncoder",
    "load_text_encoder",
    "TextEncoderConfig",
    "DEFAULT_ENCODER_ID",
]
