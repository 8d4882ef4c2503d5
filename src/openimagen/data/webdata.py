"""Streaming WebDataset shards (the ``webdataset`` package), split across ranks and workers.

Sharding is by whole shards, in two stages, so every sample is read by exactly one
(rank, worker):

1. ranks: the expanded, ordered shard list is cut as ``shards[rank::world_size]``
   (the explicit equivalent of ``wds.split_by_node``, which reads the rank from
   ``torch.distributed``; an explicit argument also works before/without it);
2. DataLoader workers: ``wds.split_by_worker`` deals a rank's shards to its workers.

Use at least ``world_size * num_workers`` shards so nobody idles. Each sample needs an
image member (``jpg``/``jpeg``/``png``/``webp``) and a ``txt`` caption; an optional
``json`` member may carry ``captions`` (variants) and ``labels``. Bad samples are counted
in ``self.report`` of the process that read them (each worker keeps its own copy).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import torch

from openimagen.errors import InvalidArgumentError, OpenImagenError

from .formats import RowMeta, parse_row
from .preprocess import Preprocessor, SkipImage, SkipReport, normalize_caption, to_tensor

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


def expand_shards(spec: Union[str, os.PathLike, Sequence[str]]) -> list[str]:
    """Expand a brace pattern (``a-{000..003}.tar``) or list into an ordered shard list.

    Local shards must exist; URLs and ``pipe:`` commands are passed through.
    """
    import braceexpand

    specs = [str(s) for s in spec] if isinstance(spec, (list, tuple)) else [str(spec)]
    shards = [u for s in specs for u in braceexpand.braceexpand(s)]
    local = [u for u in shards if "://" not in u and not u.startswith("pipe:")]
    missing = [u for u in local if not Path(u).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InvalidArgumentError(f"WebDataset shard does not exist: {missing[0]}{more}")
    if not shards:
        raise InvalidArgumentError(f"no WebDataset shards in {spec!r}")
    return shards


def split_by_rank(shards: Sequence[str], rank: int, world_size: int) -> list[str]:
    """This rank's shards: ``shards[rank::world_size]``."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise InvalidArgumentError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return list(shards[rank::world_size])


class WebDatasetStream(torch.utils.data.IterableDataset):
    """Iterable dataset yielding ``{"image": (3, size, size) tensor, "caption", "key"}``."""

    def __init__(self, spec, *, size: int, resize: str = "center_crop", min_size: int = 0,
                 max_pixels: Optional[int] = None, rank: int = 0, world_size: int = 1):
        super().__init__()
        self.pre = Preprocessor(size, resize, min_size, max_pixels)
        self.all_shards = expand_shards(spec)
        self.rank, self.world_size = rank, world_size
        self.shards = split_by_rank(self.all_shards, rank, world_size)
        self.report = SkipReport()
        self.format = "webdataset"

    def _raw(self) -> Iterator[dict]:
        import webdataset as wds

        if not self.shards:
            return iter(())
        return iter(wds.WebDataset(self.shards, shardshuffle=False, empty_check=False,
                                   nodesplitter=lambda src: src,  # already split by rank
                                   workersplitter=wds.split_by_worker,
                                   handler=self._tar_error))

    def _tar_error(self, exn: Exception) -> bool:
        self.report.add("<shard>", f"unreadable tar data: {exn}")
        return True  # keep going

    def iter_pil(self) -> Iterator[dict]:
        """Samples ``{"image": PIL RGB, "caption", "key", "captions", "labels"}`` (not resized)."""
        for raw in self._raw():
            key = raw.get("__key__", "?")
            try:
                yield self._decode(raw)
                self.report.loaded += 1
            except SkipImage as e:
                self.report.add(key, str(e))

    def _decode(self, raw: dict) -> dict:
        key = raw.get("__key__", "?")
        ext = next((e for e in IMAGE_EXTS if e in raw), None)
        if ext is None:
            raise SkipImage("no image member (jpg/jpeg/png/webp)")
        meta = RowMeta()
        if "json" in raw:
            try:
                member = json.loads(raw["json"])
            except (ValueError, UnicodeDecodeError):
                raise SkipImage("bad json member: not UTF-8 JSON") from None
            if not isinstance(member, dict):
                raise SkipImage(f"bad json member: a JSON {type(member).__name__}, not an object")
            try:
                meta = parse_row(RowMeta, member, "")
            except InvalidArgumentError as e:
                raise SkipImage(f"bad json member: {e}") from None
        text = raw["txt"].decode("utf-8", "replace") if "txt" in raw else (meta.caption or "")
        caption = normalize_caption(text)
        if not caption:
            raise SkipImage("no caption: missing txt member")
        img = self.pre.pil(raw[ext])
        captions = [caption] + [c for c in map(normalize_caption, meta.captions or []) if c != caption]
        return {"image": img, "caption": caption, "key": key, "captions": captions,
                "labels": meta.labels or {}}

    def __iter__(self) -> Iterator[dict]:
        for s in self.iter_pil():
            yield {"image": to_tensor(s["image"]), "caption": s["caption"], "key": s["key"]}

    def check(self) -> SkipReport:
        """Read this rank's shards once (in this process) and return the report."""
        for _ in self.iter_pil():
            pass
        if self.report.loaded == 0:
            raise OpenImagenError(f"no usable samples in {len(self.shards)} shard(s) ({self.report.summary()})")
        return self.report


def write_shards(samples, pattern: str, *, per_shard: int) -> list[str]:
    """Write ``{"key", "image": PIL, "caption", ...}`` samples to tar shards.

    ``pattern`` is a printf pattern like ``"out/train-%04d.tar"``. Returns the shard paths.
    Handy for turning a folder/manifest dataset into shards for streaming.
    """
    import webdataset as wds

    paths, writer, n = [], None, 0
    for s in samples:
        if n % per_shard == 0:
            if writer is not None:
                writer.close()
            paths.append(pattern % len(paths))
            Path(paths[-1]).parent.mkdir(parents=True, exist_ok=True)
            writer = wds.TarWriter(paths[-1], mtime=0)
        meta = {k: s[k] for k in ("captions", "labels") if k in s}
        sample = {"__key__": s["key"].replace(".", "_"), "png": s["image"], "txt": s["caption"]}
        if meta:
            sample["json"] = meta
        writer.write(sample)
        n += 1
    if writer is not None:
        writer.close()
    return paths
