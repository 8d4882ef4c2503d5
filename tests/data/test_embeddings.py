"""Text-embedding cache: exact fp16 round trip, memory mapping, errors."""
import json

import numpy as np
import pytest
import torch

from openimagen.data import EmbeddingTable, precompute_text_embeddings
from openimagen.errors import ConfigError, InvalidArgumentError


def test_cache_returns_the_encoder_output_in_fp16(tmp_path, fake_encoder):
    captions = [f"caption number {i} with words {'x' * (i % 4)}" for i in range(37)]
    captions.append("caption number 3 with words xxx")  # a duplicate: encoded once
    out = precompute_text_embeddings(captions, fake_encoder, tmp_path / "emb", batch_size=8, progress=False)
    assert fake_encoder.calls == 5  # 37 distinct captions in batches of 8
    index = json.loads((out / "index.json").read_text())
    assert index["encoder_id"] == "fake-encoder-v1" and index["max_length"] == 8 and index["count"] == 37

    table = EmbeddingTable(out, encoder_id="fake-encoder-v1")
    assert isinstance(table.tokens, np.memmap) and isinstance(table.mask, np.memmap)
    assert table.tokens.dtype == np.float16 and table.tokens.shape == (37, 8, 6)
    query = [captions[5], captions[0], captions[30], captions[5]]
    tokens, mask = table.lookup(query)
    ref = fake_encoder.encode(query)
    assert tokens.dtype == torch.float16 and mask.dtype == torch.bool
    assert torch.equal(tokens, ref.tokens.half()) and torch.equal(mask, ref.mask)
    rows = [table.row(c) for c in query]
    tokens_by_row, _ = table(rows, dtype=torch.float32)
    assert torch.equal(tokens_by_row, ref.tokens.half().float())


def test_short_encoder_outputs_are_padded(tmp_path, fake_encoder):
    class Short(type(fake_encoder)):
        def encode(self, texts):
            e = super().encode(texts)
            return type(e)(e.tokens[:, :3], e.mask[:, :3], e.encoder_id)

    enc = Short()
    out = precompute_text_embeddings(["a b c d", "e"], enc, tmp_path / "emb", progress=False)
    tokens, mask = EmbeddingTable(out).lookup(["a b c d"])
    assert tokens.shape == (1, 8, 6) and mask[0].tolist() == [True] * 3 + [False] * 5
    assert torch.all(tokens[0, 3:] == 0)


def test_cache_errors(tmp_path, fake_encoder):
    with pytest.raises(InvalidArgumentError, match="index.json"):
        EmbeddingTable(tmp_path)
    out = precompute_text_embeddings(["hello"], fake_encoder, tmp_path / "emb", progress=False)
    with pytest.raises(ConfigError, match="recompute"):
        EmbeddingTable(out, encoder_id="t5-xxl")
    with pytest.raises(InvalidArgumentError, match="not in the embedding cache"):
        EmbeddingTable(out).lookup(["goodbye"])
    with pytest.raises(InvalidArgumentError, match="no captions"):
        precompute_text_embeddings([], fake_encoder, tmp_path / "e2", progress=False)
