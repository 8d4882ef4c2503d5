"""Text embeddings computed once into a memory-mapped fp16 cache (Imagen trains on a frozen
text encoder, so its outputs per caption never change; computing them per step is waste).

Layout of ``out_dir``:

==============  ===============================================================
``tokens.npy``  (N, L, D) float16, row i = caption i's token embeddings
``mask.npy``    (N, L) bool, True where a real token is
``index.json``  ``{"encoder_id", "max_length", "dim", "count", "captions": {caption: row}}``
==============  ===============================================================

``L`` is ``encoder.max_length``; batches the encoder returns shorter are zero-padded with
mask False. ``index.json`` is written last, so a folder without it is an interrupted run.
The encoder interface (:mod:`openimagen.text`): ``encoder.encode(list[str])`` returns an
object with ``tokens`` (B, L, D), ``mask`` (B, L) and ``encoder_id``; encoders expose
``encoder_id``, ``max_length`` and ``dim``.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from openimagen.errors import ConfigError, InvalidArgumentError


TABLE_FILES = ("tokens.npy", "mask.npy", "index.json")


def precompute_text_embeddings(captions: Sequence[str], encoder, out_dir: Union[str, os.PathLike], *,
                               batch_size: int = 256, progress: bool = True) -> Path:
    """Encode each distinct caption once and write the cache; returns ``out_dir``.

    Duplicates are encoded once (first occurrence wins the row). Works in batches of
    ``batch_size`` with a tqdm progress bar; memory stays O(batch) since rows are written
    straight into numpy memmaps. The table is written to a temporary folder and renamed into place, so a
    process reading an earlier table in ``out_dir`` (memory-mapped) keeps reading it intact.
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be >= 1, got {batch_size}")
    unique = list(dict.fromkeys(str(c) for c in captions))
    if not unique:
        raise InvalidArgumentError("no captions to embed")
    out = Path(out_dir)
    if out.is_dir() and any(p.name not in TABLE_FILES for p in out.iterdir()):
        raise InvalidArgumentError(f"{out} holds more than an embedding table ({', '.join(TABLE_FILES)}); "
                                   f"choose an empty or new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _write_table(unique, encoder, tmp, batch_size, progress)
        from openimagen.pipeline.io import replace_folder   # readers keep their mapped files: renamed, not rewritten

        replace_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write_table(unique: list, encoder, out: Path, batch_size: int, progress: bool) -> None:
    n, L, D = len(unique), int(encoder.max_length), int(encoder.dim)
    tokens = np.lib.format.open_memmap(out / "tokens.npy", mode="w+", dtype=np.float16, shape=(n, L, D))
    mask = np.lib.format.open_memmap(out / "mask.npy", mode="w+", dtype=np.bool_, shape=(n, L))
    encoder_id = str(encoder.encoder_id)
    with torch.inference_mode():
        for start in tqdm(range(0, n, batch_size), desc="text embeddings", unit="batch", disable=not progress):
            batch = unique[start:start + batch_size]
            emb = encoder.encode(batch)
            t = emb.tokens.detach().to("cpu", torch.float16).numpy()    # (B, n_tok, D)
            m = emb.mask.detach().to("cpu", torch.bool).numpy()         # (B, n_tok)
            if t.shape[0] != len(batch) or t.shape[2] != D or t.shape[1] > L:
                raise ConfigError(f"encoder {encoder_id} returned tokens of shape {tuple(t.shape)}; "
                                  f"expected ({len(batch)}, <={L}, {D})")
            rows, n_tok = slice(start, start + len(batch)), t.shape[1]
            tokens[rows, :n_tok], tokens[rows, n_tok:] = t, 0
            mask[rows, :n_tok], mask[rows, n_tok:] = m, False
            encoder_id = str(getattr(emb, "encoder_id", encoder_id))
    tokens.flush()
    mask.flush()
    del tokens, mask
    index = {"encoder_id": encoder_id, "max_length": L, "dim": D, "count": n,
             "captions": {c: i for i, c in enumerate(unique)}}
    (out / "index.json").write_text(json.dumps(index, ensure_ascii=False) + "\n", encoding="utf-8")


class EmbeddingTable:
    """Read side of the cache: ``lookup(captions or rows) -> (tokens, mask)``.

    Arrays are opened with ``np.load(mmap_mode="r")``: nothing is read until a row is
    looked up, and DataLoader workers share the OS page cache.
    ``tokens`` come back as float16 (``dtype=`` to cast), ``mask`` as bool.
    """

    def __init__(self, out_dir: Union[str, os.PathLike], *, encoder_id: Optional[str] = None):
        self.dir = Path(out_dir)
        if not (self.dir / "index.json").is_file():
            raise InvalidArgumentError(f"no text-embedding cache in {self.dir} (index.json missing; "
                                       f"run precompute_text_embeddings first)")
        index = json.loads((self.dir / "index.json").read_text(encoding="utf-8"))
        self.encoder_id, self.max_length, self.dim = index["encoder_id"], index["max_length"], index["dim"]
        if encoder_id is not None and encoder_id != self.encoder_id:
            raise ConfigError(f"embedding cache {self.dir} was made with encoder {self.encoder_id!r}, "
                              f"not {encoder_id!r}; recompute it")
        self.rows: dict[str, int] = index["captions"]
        self.tokens = np.load(self.dir / "tokens.npy", mmap_mode="r")  # (N, L, D) float16
        self.mask = np.load(self.dir / "mask.npy", mmap_mode="r")      # (N, L) bool
        n = index["count"]
        if (self.tokens.shape != (n, self.max_length, self.dim) or self.mask.shape != (n, self.max_length)
                or len(self.rows) != n or (n and max(self.rows.values()) >= n)):
            raise ConfigError(f"embedding cache {self.dir} is inconsistent (index of {n} captions, arrays "
                              f"{self.tokens.shape} and {self.mask.shape}); delete it to recompute")

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, caption: str) -> bool:
        return caption in self.rows

    def row(self, caption: str) -> int:
        try:
            return self.rows[caption]
        except KeyError:
            raise InvalidArgumentError(f"caption not in the embedding cache {self.dir}: {caption[:80]!r}") from None

    def lookup(self, items: Sequence[Union[str, int]], *, dtype: torch.dtype = torch.float16):
        """Tokens (B, L, D) and mask (B, L) for captions (str) or row numbers (int or a tensor)."""
        if isinstance(items, torch.Tensor):
            items = items.tolist()
        rows = np.asarray([i if isinstance(i, (int, np.integer)) else self.row(i) for i in items], dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self.tokens)):
            raise InvalidArgumentError(f"row out of range 0..{len(self.tokens) - 1}")
        order = np.argsort(rows, kind="stable")  # sorted reads are kinder to the page cache
        t = np.empty((len(rows), self.max_length, self.dim), np.float16)
        m = np.empty((len(rows), self.max_length), np.bool_)
        t[order], m[order] = self.tokens[rows[order]], self.mask[rows[order]]
        return torch.from_numpy(t).to(dtype), torch.from_numpy(m)

    __call__ = lookup
