"""CachedTextEncoder: exact results, misses encoded once in one batch, keys separate encoders."""
from __future__ import annotations

import hashlib
from typing import Sequence

import pytest
import torch

from openimagen.text import CachedTextEncoder, TextEmbedding, TextEncoder, load_text_encoder


class HashEncoder(TextEncoder):
    """A fast deterministic fake: each prompt's tokens come from a seed hashed from (id, prompt)."""

    def __init__(self, encoder_id="fake", dim=8, max_length=6, dtype=torch.float32):
        self.encoder_id, self.dim, self.max_length, self.dtype = encoder_id, dim, max_length, dtype

    def encode(self, prompts: Sequence[str]) -> TextEmbedding:
        rows, masks = [], []
        for p in prompts:
            seed = int(hashlib.sha256(f"{self.encoder_id}|{p}".encode()).hexdigest()[:8], 16)
            g = torch.Generator().manual_seed(seed)
            n = min(len(p.split()) + 1, self.max_length)
            m = torch.arange(self.max_length) < n
            rows.append(torch.randn(self.max_length, self.dim, generator=g).to(self.dtype) * m[:, None])
            masks.append(m)
        return TextEmbedding(torch.stack(rows), torch.stack(masks), self.encoder_id)


class Counting(TextEncoder):
    """Wraps an encoder and records every batch it is asked to encode."""

    def __init__(self, inner: TextEncoder):
        self.inner, self.calls = inner, []
        self.encoder_id, self.dim, self.max_length = inner.encoder_id, inner.dim, inner.max_length
        self.dtype, self.device = inner.dtype, inner.device

    def encode(self, prompts):
        self.calls.append(list(prompts))
        return self.inner.encode(prompts)


def _equal(a: TextEmbedding, b: TextEmbedding) -> bool:
    return (torch.equal(a.tokens, b.tokens) and torch.equal(a.mask, b.mask)
            and a.encoder_id == b.encoder_id and a.tokens.dtype == b.tokens.dtype)


def test_exactly_what_the_encoder_returns_and_misses_run_once(t5, tmp_path):
    inner = Counting(t5)
    cache = CachedTextEncoder(inner, tmp_path)
    prompts = ["a red circle", "", "two blue squares"]
    direct = t5.encode(prompts)
    first = cache.encode(prompts)
    assert _equal(first, direct) and inner.calls == [prompts]
    second = cache.encode(prompts)
    assert _equal(second, direct) and len(inner.calls) == 1
    assert (cache.hits, cache.misses) == (3, 3)


def test_only_misses_are_encoded_in_one_batch(tmp_path):
    inner = Counting(HashEncoder())
    cache = CachedTextEncoder(inner, tmp_path)
    cache.encode(["a", "b c"])
    out = cache.encode(["b c", "d", "a", "e f g", "d"])
    assert inner.calls == [["a", "b c"], ["d", "e f g"]]  # one batch of the misses, duplicates once
    assert _equal(out, HashEncoder().encode(["b c", "d", "a", "e f g", "d"]))


def test_survives_a_new_instance(t5, tmp_path):
    first = CachedTextEncoder(t5, tmp_path).encode(["a red circle", "the sky"])
    inner = Counting(t5)
    again = CachedTextEncoder(inner, tmp_path).encode(["the sky", "a red circle"])
    assert inner.calls == []
    assert torch.equal(again.tokens, first.tokens.flip(0)) and torch.equal(again.mask, first.mask.flip(0))


def test_keyed_by_max_length(make_encoder, tmp_path):
    short = CachedTextEncoder(make_encoder("t5", 12), tmp_path)
    long = CachedTextEncoder(make_encoder("t5", 16), tmp_path)
    a, b = short.encode(["a red circle"]), long.encode(["a red circle"])
    assert a.tokens.shape[1] == 12 and b.tokens.shape[1] == 16 and long.misses == 1


@pytest.mark.parametrize("other", [dict(encoder_id="other"), dict(dtype=torch.bfloat16)])
def test_keyed_by_encoder_id_and_dtype(tmp_path, other):
    base, alt = Counting(HashEncoder()), Counting(HashEncoder(**other))
    a = CachedTextEncoder(base, tmp_path).encode(["a red circle"])
    b = CachedTextEncoder(alt, tmp_path).encode(["a red circle"])
    assert len(base.calls) == len(alt.calls) == 1  # the other encoder's entry for the same text is not reused
    assert _equal(a, base.inner.encode(["a red circle"])) and _equal(b, alt.inner.encode(["a red circle"]))
    assert len(list(tmp_path.rglob("*.safetensors"))) == 2


def test_bfloat16_entries_round_trip_exactly(t5_dir, tmp_path):
    enc = load_text_encoder(str(t5_dir), max_length=8, dtype="bf16", cache_dir=tmp_path)
    assert isinstance(enc, CachedTextEncoder)
    a = enc.encode(["a red circle"])
    b = CachedTextEncoder(enc.encoder, tmp_path).encode(["a red circle"])
    assert a.tokens.dtype == torch.bfloat16 and _equal(a, b)


def test_layout_is_sharded_and_atomic(tmp_path):
    cache = CachedTextEncoder(HashEncoder(), tmp_path)
    cache.encode(["a", "b", "c"])
    files = sorted(tmp_path.rglob("*"))
    entries = [f for f in files if f.is_file()]
    assert len(entries) == 3 and not [f for f in entries if f.suffix != ".safetensors"]  # no temp files left
    for f in entries:
        assert f.parent.parent == tmp_path and f.parent.name == f.stem[:2] and len(f.stem) == 64
    assert cache.path_for(cache.key("a")).is_file()


def test_corrupt_entry_is_recomputed(tmp_path):
    inner = Counting(HashEncoder())
    cache = CachedTextEncoder(inner, tmp_path)
    want = cache.encode(["a red circle"])
    path = cache.path_for(cache.key("a red circle"))
    path.write_bytes(path.read_bytes()[:20])
    assert _equal(cache.encode(["a red circle"]), want) and len(inner.calls) == 2
    assert _equal(CachedTextEncoder(HashEncoder(), tmp_path).encode(["a red circle"]), want)  # rewritten


def test_wrapping_a_cache_does_not_stack(tmp_path):
    cache = CachedTextEncoder(HashEncoder(), tmp_path)
    assert isinstance(CachedTextEncoder(cache, tmp_path).encoder, HashEncoder)


def test_unwritable_cache_warns_once_and_still_encodes(tmp_path):
    inner = Counting(HashEncoder())
    cache = CachedTextEncoder(inner, tmp_path)
    for text in ("a", "b"):
        (tmp_path / cache.key(text)[:2]).write_text("a file where the shard folder should be")
    with pytest.warns(UserWarning, match="not writable") as record:
        out = cache.encode(["a", "b"])
    assert len(record) == 1 and _equal(out, HashEncoder().encode(["a", "b"]))
    assert not [f for f in tmp_path.rglob("*.tmp")]
