"""An on-disk cache of text embeddings, so a frozen encoder runs once per caption.

Because Imagen's text encoder is frozen (Saharia et al. 2022, Sec. 2.1), a caption's
embedding never changes during training and can be computed once and reused across
epochs, runs and the sampling service.

Layout: one small safetensors file per (encoder, dtype, max_length, text),

    <cache_dir>/<key[:2]>/<key>.safetensors     tokens (L, D) in the encoder's dtype, mask (L,) bool

with ``key = sha256(json [format, encoder_id, dtype, max_length, text])``. The dtype is
part of the key so that a float16 and a float32 run of the same weights never share
entries. Files are written to a temporary name and moved into place with
``os.replace``, so concurrent writers and crashes never leave a half-written entry;
an unreadable or inconsistent entry is treated as a miss and rewritten.

Threads: ``encode`` may run in several threads at once if the wrapped encoder allows it (``HFTextEncoder``
does). Reads need no care, and each write goes to its own ``mkstemp`` name before ``os.replace``, so two calls
that miss the same prompt both encode it and the last complete entry wins. The only shared state in memory,
the ``hits``/``misses`` counters, is updated under a lock (``+=`` on an attribute is not atomic); the
once-only warning about an unwritable cache may, at worst, show once per racing thread.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from openimagen.errors import InvalidArgumentError
from openimagen.fsmode import FILE_MODE
from openimagen.text.base import TextEmbedding, TextEncoder, check_prompts

CACHE_FORMAT = 1  # bump when the file layout or key changes


class CachedTextEncoder(TextEncoder):
    """Wrap ``encoder`` with an on-disk cache in ``cache_dir``; same interface, same outputs.

    On each call the cached prompts are read from disk and the misses (deduplicated)
    are encoded by ``encoder`` in a single batch, then stored. Results are bit-for-bit
    what ``encoder`` returned when the entry was computed. ``hits`` and ``misses``
    count prompts served from disk and prompts sent to ``encoder``.
    """

    def __init__(self, encoder: TextEncoder, cache_dir: str | Path):
        if isinstance(encoder, CachedTextEncoder):
            encoder = encoder.encoder  # never stack two caches
        self.encoder = encoder
        self.encoder_id, self.dim, self.max_length = encoder.encoder_id, encoder.dim, encoder.max_length
        self.dtype, self.device = encoder.dtype, encoder.device
        self.cache_dir = Path(cache_dir).expanduser()
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InvalidArgumentError(f"cannot create text cache directory {str(self.cache_dir)!r}: "
                                       f"{e.strerror or e}") from None
        self.hits = 0
        self.misses = 0
        self._count_lock = threading.Lock()  # hits/misses are updated by concurrent encode calls
        self._warned_write = False

    def key(self, text: str) -> str:
        """The sha256 hex digest naming ``text``'s entry for this encoder, dtype and max_length."""
        ident = [CACHE_FORMAT, self.encoder_id, str(self.dtype).removeprefix("torch."), self.max_length, text]
        return hashlib.sha256(json.dumps(ident, ensure_ascii=False).encode("utf-8")).hexdigest()

    def path_for(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.safetensors"

    def encode(self, prompts: Sequence[str]) -> TextEmbedding:
        """Embed ``prompts``, reading hits from disk and encoding all misses in one batch."""
        prompts = check_prompts(prompts)
        keys = [self.key(p) for p in prompts]
        rows: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # key -> (tokens (L, D), mask (L,))
        todo: dict[str, str] = {}                                 # key -> text, misses in first-seen order
        for k, text in zip(keys, prompts):
            if k in rows or k in todo:
                continue
            row = self._read(k, text)
            if row is None:
                todo[k] = text
            else:
                rows[k] = (row[0].to(self.device), row[1].to(self.device))
        if todo:
            emb = self.encoder.encode(list(todo.values()))
            self._check(emb, len(todo))
            for j, (k, text) in enumerate(todo.items()):
                rows[k] = (emb.tokens[j], emb.mask[j])
                self._write(k, text, emb.tokens[j], emb.mask[j])
        with self._count_lock:
            self.misses += len(todo)
            self.hits += len(prompts) - len(todo)
        tokens = torch.stack([rows[k][0] for k in keys])  # (B, L, D)
        mask = torch.stack([rows[k][1] for k in keys])    # (B, L)
        return TextEmbedding(tokens, mask, self.encoder_id)

    def _check(self, emb: TextEmbedding, n: int) -> None:
        want = (n, self.max_length, self.dim)
        if tuple(emb.tokens.shape) != want or emb.tokens.dtype != self.dtype:
            raise ValueError(f"encoder {self.encoder_id!r} returned tokens {tuple(emb.tokens.shape)} "
                             f"{emb.tokens.dtype}, expected {want} {self.dtype}")

    def _read(self, key: str, text: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The stored (tokens, mask) of ``key`` on CPU, or None if absent, unreadable or inconsistent."""
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tokens, mask = f.get_tensor("tokens"), f.get_tensor("mask")
        except Exception:  # truncated or foreign file: recompute and overwrite
            return None
        ok = (meta.get("encoder_id") == self.encoder_id and meta.get("text") == text
              and tuple(tokens.shape) == (self.max_length, self.dim) and tokens.dtype == self.dtype
              and tuple(mask.shape) == (self.max_length,) and mask.dtype == torch.bool)
        return (tokens, mask) if ok else None

    def _write(self, key: str, text: str, tokens: torch.Tensor, mask: torch.Tensor) -> None:
        """Store one entry atomically (temp file + ``os.replace``); warn once and go on if the disk refuses."""
        path = self.path_for(key)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:16]}-", suffix=".tmp")
            os.close(fd)
            meta = {"format": str(CACHE_FORMAT), "encoder_id": self.encoder_id,
                    "max_length": str(self.max_length), "text": text}
            save_file({"tokens": tokens.detach().cpu().contiguous(), "mask": mask.detach().cpu().contiguous()},
                      tmp, metadata=meta)
            os.chmod(tmp, FILE_MODE)                   # readable like any new file (mkstemp gives 0600)
            os.replace(tmp, path)
            tmp = None
        except Exception as e:  # OSError, or safetensors' own error on a full disk
            if not self._warned_write:
                reason = getattr(e, "strerror", None) or (str(e).splitlines() or [type(e).__name__])[0]
                warnings.warn(f"text cache {str(self.cache_dir)!r} is not writable ({reason}); "
                              f"embeddings will be recomputed", stacklevel=3)
                self._warned_write = True
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
