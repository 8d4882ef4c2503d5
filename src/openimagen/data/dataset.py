"""Map-style training dataset over folder/manifest records, and a preprocessed image cache.

Pairing with the text-embedding cache (:mod:`.embeddings`): every item carries its
caption *string*; precompute embeddings once for ``dataset.all_captions()`` (every caption
variant), then per batch look them up::

    ds = open_dataset("data/emoji", size=64)
    precompute_text_embeddings(ds.all_captions(), encoder, "cache/emb")
    table = EmbeddingTable("cache/emb", encoder_id=encoder.encoder_id)
    for batch in DataLoader(ds, batch_size=64, shuffle=True):
        tokens, mask = table.lookup(batch["caption"])   # (B, L, D) fp16, (B, L) bool

Caption variants (``caption_mode``):

* ``"primary"`` (default): always the record's primary caption.
* ``"per_epoch"``: one variant per (seed, index, epoch), chosen by a string-seeded
  ``random.Random`` so it is the same in every worker and on every rank. Call
  ``set_epoch(epoch)`` before each epoch; DataLoader workers copy the dataset when an
  epoch's iterator is created, so this works unless ``persistent_workers=True``.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from openimagen.errors import InvalidArgumentError, OpenImagenError, check_choice

from .formats import Record
from .preprocess import Preprocessor, SkipImage, SkipReport, check_header, check_size, load_image, to_tensor

CAPTION_MODES = ("primary", "per_epoch")


def choose_caption(captions: Sequence[str], mode: str, seed: int, index: int, epoch: int) -> str:
    """The caption used for item ``index`` in ``epoch`` (see the module docstring)."""
    if mode == "primary" or len(captions) == 1:
        return captions[0]
    return captions[random.Random(f"{seed}:{index}:{epoch}").randrange(len(captions))]


class _CaptionChoice:
    """Caption-variant selection shared by the on-the-fly and cached datasets."""

    def _init_captions(self, caption_mode: str, seed: int):
        self.caption_mode = check_choice("caption mode", caption_mode, CAPTION_MODES)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def caption(self, index: int) -> str:
        return choose_caption(self.records[index].captions, self.caption_mode, self.seed, index, self.epoch)

    def all_captions(self) -> list[str]:
        """Every distinct caption variant, in record order (input to the embedding cache)."""
        return list(dict.fromkeys(c for r in self.records for c in r.captions))


class CaptionedImageDataset(_CaptionChoice, torch.utils.data.Dataset):
    """Map-style dataset decoding and preprocessing images on the fly.

    Items: ``{"image": (3, size, size) float32 in [-1, 1], "caption": str, "key": str,
    "index": int}``. At construction every record is checked (``verify=True``: fully
    decoded; ``False``: header only); unusable ones go to ``self.report``. If a file
    breaks after that, ``__getitem__`` reports it and returns the next usable item.
    """

    def __init__(self, records: Sequence[Record], *, size: int, resize: str = "center_crop",
                 min_size: int = 0, max_pixels: Optional[int] = None, verify: bool = True,
                 caption_mode: str = "primary", seed: int = 0, report: Optional[SkipReport] = None):
        self.pre = Preprocessor(size, resize, min_size, max_pixels)
        self.report = report if report is not None else SkipReport()
        self._init_captions(caption_mode, seed)
        self.records = [r for r in records if self._usable(r, verify)]
        self.report.loaded = len(self.records)
        self.format = "records"

    def _usable(self, r: Record, verify: bool) -> bool:
        try:
            if verify:
                check_size(load_image(r.path, self.pre.max_pixels), self.pre.min_size)
            else:
                check_header(r.path, self.pre.min_size, self.pre.max_pixels)
            return True
        except SkipImage as e:
            self.report.add(r.key, str(e))
            return False

    def __len__(self) -> int:
        return len(self.records)

    def pil(self, index: int) -> dict:
        """The raw sample ``{"image": PIL RGB (not resized), "caption", "key"}``."""
        r = self.records[index]
        return {"image": load_image(r.path), "caption": self.caption(index), "key": r.key}

    def labels(self, index: int) -> dict:
        return self.records[index].labels

    def __getitem__(self, index: int) -> dict:
        n = len(self.records)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        for j in range(n):
            i = (index + j) % n
            r = self.records[i]
            try:
                x = self.pre(r.path)  # (3, size, size)
            except SkipImage as e:
                self.report.add(r.key, f"{e} (at load time)")
                continue
            return {"image": x, "caption": self.caption(i), "key": r.key, "index": i}
        raise OpenImagenError("no image of the dataset could be loaded")


def build_image_cache(dataset: CaptionedImageDataset, out_dir: Union[str, os.PathLike]) -> Path:
    """Preprocess every image once into ``images.npy`` (N, H, W, 3) uint8 plus ``records.json``.

    Load it with :class:`CachedImageDataset`; decoding and resizing then cost nothing per step.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = dataset.pre.size
    arr = np.lib.format.open_memmap(out / "images.npy", mode="w+", dtype=np.uint8, shape=(len(dataset), s, s, 3))
    for i, r in enumerate(dataset.records):
        try:
            arr[i] = np.asarray(dataset.pre.pil(r.path))
        except SkipImage as e:  # broke since the scan: keep a white image, report it
            arr[i] = 255
            dataset.report.add(r.key, f"{e} (at cache time)")
    arr.flush()
    del arr
    meta = {"size": s, "resize": dataset.pre.resize,
            "records": [{"key": r.key, "captions": list(r.captions), "labels": r.labels} for r in dataset.records]}
    (out / "records.json").write_text(json.dumps(meta, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    return out


class CachedImageDataset(_CaptionChoice, torch.utils.data.Dataset):
    """Items as :class:`CaptionedImageDataset`, read from a :func:`build_image_cache` folder (mmap)."""

    def __init__(self, cache_dir: Union[str, os.PathLike], *, caption_mode: str = "primary", seed: int = 0):
        cache = Path(cache_dir)
        if not (cache / "images.npy").is_file() or not (cache / "records.json").is_file():
            raise InvalidArgumentError(f"not an image cache (images.npy, records.json): {cache}")
        meta = json.loads((cache / "records.json").read_text(encoding="utf-8"))
        self.images = np.load(cache / "images.npy", mmap_mode="r")  # (N, H, W, 3) uint8
        self.records = [Record(m["key"], Path(), m["captions"][0], tuple(m["captions"]), m["labels"])
                        for m in meta["records"]]
        self._init_captions(caption_mode, seed)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        x = to_tensor(Image.fromarray(np.asarray(self.images[index])))  # (3, H, W)
        return {"image": x, "caption": self.caption(index), "key": self.records[index].key, "index": index}
