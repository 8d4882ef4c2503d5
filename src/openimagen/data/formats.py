"""Dataset formats a user already has, and :func:`open_dataset`, which detects them.

=============  ==========================================================================
format         layout
=============  ==========================================================================
folder         a directory (searched recursively) of images, each with a same-stem
               ``.txt`` caption: ``cats/001.jpg`` + ``cats/001.txt``. Images without a
               caption file are skipped and reported. Key: path relative to the folder,
               without suffix.
manifest       ``.jsonl``: one object per line, ``{"path": ..., "caption": ...}`` plus
               optional ``"captions"`` (list of variants), ``"key"`` and ``"labels"``.
               ``.csv``: a header row with at least ``path,caption``. Relative paths are
               relative to the manifest's directory.
webdataset     ``.tar`` shards or a brace pattern (``shards/train-{000..009}.tar``);
               each sample holds an image (``jpg``/``jpeg``/``png``/``webp``) and a ``txt``
               caption, optionally ``json`` labels. Streamed; see :mod:`.webdata`.
=============  ==========================================================================

A built-in builder's output folder ``OUT`` is a folder dataset (primary captions only);
open ``OUT/manifest.jsonl`` instead to get the caption variants and labels as well.

The folder and manifest formats give a map-style :class:`~.dataset.CaptionedImageDataset`;
WebDataset gives an iterable :class:`~.webdata.WebDatasetStream`. Both yield
``{"image": (3, size, size) float tensor in [-1, 1], "caption": str, "key": str}`` and
keep a :class:`~.preprocess.SkipReport` in ``.report``.
"""
from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, TypeAdapter

from openimagen.errors import InvalidArgumentError, OpenImagenError
from openimagen.validation import checked

from .preprocess import SkipReport, normalize_caption

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
FORMATS = ("folder", "manifest", "webdataset")


class RowMeta(BaseModel):
    """What a manifest row or a WebDataset sample's ``json`` member may say about an image, type-checked strictly
    (a number where text belongs is an error, never text): the one check every data record passes."""

    model_config = ConfigDict(extra="ignore", strict=True)
    caption: Optional[StrictStr] = None
    captions: Optional[list[StrictStr]] = None
    key: Optional[Union[StrictStr, StrictInt]] = None
    labels: Optional[dict] = None


class ManifestRow(RowMeta):
    """A ``.jsonl``/``.csv`` manifest row: :class:`RowMeta` plus the image's ``path`` (a non-empty string)."""

    path: StrictStr = Field(min_length=1)


def parse_row(kind, row, where: str):
    """``row`` (a dict) checked as ``kind``; InvalidArgumentError naming the field and ``where`` if it is wrong."""
    return checked(lambda: TypeAdapter(kind).validate_python(row), InvalidArgumentError, row, root=where, kind=kind)


@dataclass(frozen=True)
class Record:
    """One image on disk and its caption(s); ``captions[0] == caption`` (the primary)."""

    key: str
    path: Path
    caption: str
    captions: tuple = ()
    labels: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.captions:
            object.__setattr__(self, "captions", (self.caption,))


def _record(key, path, caption, captions=(), labels=None) -> Record:
    caps = [normalize_caption(c) for c in (captions or [caption])]
    primary = normalize_caption(caption) if caption is not None else caps[0]
    caps = [primary] + [c for c in caps if c != primary]
    return Record(str(key), Path(path), primary, tuple(caps), dict(labels or {}))


def scan_folder(root: Union[str, os.PathLike], report: SkipReport) -> list[Record]:
    """Records for every image under ``root`` with a non-empty same-stem ``.txt`` caption. Names with an image
    suffix that are not images (folders, dangling symlinks, symlink loops) are skipped and reported."""
    root = Path(root)
    records = []
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        key = p.relative_to(root).with_suffix("").as_posix()
        try:
            is_file, is_dir = p.is_file(), p.is_dir()
        except OSError as e:                          # a symlink loop (ELOOP) and the like
            report.add(key, f"unreadable: {e.strerror or e}")
            continue
        if not is_file:
            report.add(key, "a folder named like an image" if is_dir else
                       "a dangling symlink" if p.is_symlink() else "not a regular file")
            continue
        txt = p.with_suffix(".txt")
        if not txt.is_file():
            report.add(key, "no caption: missing " + txt.name)
            continue
        caption = normalize_caption(txt.read_text(encoding="utf-8", errors="replace"))
        if not caption:
            report.add(key, "no caption: empty " + txt.name)
            continue
        records.append(_record(key, p, caption))
    return records


def read_manifest(path: Union[str, os.PathLike], report: SkipReport) -> list[Record]:
    """Records from a ``.jsonl`` or ``.csv`` manifest (see the module docstring)."""
    path = Path(path)
    base = path.parent
    rows = _read_jsonl(path, report) if path.suffix.lower() == ".jsonl" else _read_csv(path, report)
    records = []
    for n, row in rows:
        fallback = f"row {n}"
        try:
            r = parse_row(ManifestRow, row, "")
        except InvalidArgumentError as e:
            key = row.get("key") if isinstance(row.get("key"), (str, int)) and not isinstance(row.get("key"), bool) \
                else row.get("path") if isinstance(row.get("path"), str) and row.get("path") else fallback
            report.add(str(key), f"bad manifest row: {e} (row {n})")
            continue
        key = str(r.key if r.key is not None else Path(r.path).with_suffix("").as_posix())
        caption = r.caption or (r.captions or [None])[0]
        if not caption or not normalize_caption(caption):
            report.add(key, f"no caption: manifest row {n}")
            continue
        records.append(_record(key, base / r.path, caption, r.captions or (), r.labels))
    return records


def _read_jsonl(path: Path, report: SkipReport) -> list[tuple[int, dict]]:
    """(line number, object) of every JSON-object line; other lines (not UTF-8, not JSON, not an object) are
    skipped and reported."""
    rows = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                report.add(f"row {n}", f"bad manifest row: not UTF-8 text (row {n})")
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                report.add(f"row {n}", f"bad manifest row: not valid JSON, {e.msg} (row {n})")
                continue
            if not isinstance(row, dict):
                report.add(f"row {n}", f"bad manifest row: a JSON {type(row).__name__}, not an object with path "
                                       f"and caption (row {n})")
                continue
            rows.append((n, row))
    return rows


def _read_csv(path: Path, report: SkipReport) -> list[tuple[int, dict]]:
    """(row number, fields) of every CSV row; rows that are not UTF-8 are skipped and reported. Fields may be
    as long as the file (the csv module's default limit is 128 KiB)."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"path", "caption"} - set(reader.fieldnames or ())
        if missing:
            raise InvalidArgumentError(f"{path}: CSV header must name path and caption columns "
                                       f"(missing {', '.join(sorted(missing))})")
        rows = []
        for n, r in enumerate(reader, 2):
            values = [v for v in r.values() if isinstance(v, str)]
            if any(_has_surrogates(v) for v in values):
                report.add(f"row {n}", f"bad manifest row: not UTF-8 text (row {n})")
                continue
            rows.append((n, {k: v for k, v in r.items() if k is not None}))
        return rows


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def is_webdataset_spec(spec) -> bool:
    """True for a list of shards, a brace pattern, a URL or a path ending in ``.tar``."""
    if isinstance(spec, (list, tuple)):
        return True
    s = str(spec)
    return ("{" in s and "}" in s) or s.startswith(("pipe:", "http://", "https://", "s3://", "gs://")) \
        or s.endswith((".tar", ".tar.gz", ".tgz"))


def detect_format(spec) -> str:
    """``"folder"``, ``"manifest"`` or ``"webdataset"`` for ``spec``, or a typed error."""
    if is_webdataset_spec(spec):
        return "webdataset"
    p = Path(spec)
    if not p.exists():
        raise InvalidArgumentError(f"dataset path does not exist: {p}")
    if p.is_dir():
        return "folder"
    if p.suffix.lower() in (".jsonl", ".csv"):
        return "manifest"
    raise InvalidArgumentError(f"cannot tell the dataset format of {p}: expected a folder, "
                               f"a .jsonl/.csv manifest, or .tar WebDataset shards")


def load_records(spec, report: SkipReport) -> list[Record]:
    """Records of a folder or manifest dataset (not WebDataset, which streams)."""
    fmt = detect_format(spec)
    if fmt == "webdataset":
        raise InvalidArgumentError(f"{spec} is a WebDataset; it streams and has no record list")
    return scan_folder(spec, report) if fmt == "folder" else read_manifest(spec, report)


def open_dataset(path_or_spec: Union[str, os.PathLike, Sequence[str]], *, size: int,
                 resize: str = "center_crop", rank: int = 0, world_size: int = 1,
                 min_size: int = 0, max_pixels: Optional[int] = None, verify: bool = True,
                 caption_mode: str = "primary", seed: int = 0):
    """Open a dataset in any supported format (detected from ``path_or_spec``).

    Folder and manifest datasets are scanned now (``verify=True`` decodes every image
    once, so corrupt ones are skipped up front) and returned as a map-style
    :class:`~.dataset.CaptionedImageDataset`; with ``world_size > 1`` use a
    ``DistributedSampler`` for them. WebDataset shards are split across ranks here
    (``rank``/``world_size``) and across DataLoader workers when iterated.

    Images whose shorter side is below ``min_size`` or with more than ``max_pixels``
    pixels are skipped and reported.

    Raises :class:`InvalidArgumentError` for a missing path or unknown format and
    :class:`OpenImagenError` when no usable image is found.
    """
    from .dataset import CaptionedImageDataset
    from .webdata import WebDatasetStream

    fmt = detect_format(path_or_spec)
    if fmt == "webdataset":
        return WebDatasetStream(path_or_spec, size=size, resize=resize, min_size=min_size,
                                max_pixels=max_pixels, rank=rank, world_size=world_size)
    report = SkipReport()
    records = load_records(path_or_spec, report)
    ds = CaptionedImageDataset(records, size=size, resize=resize, min_size=min_size, max_pixels=max_pixels,
                               verify=verify, caption_mode=caption_mode, seed=seed, report=report)
    if len(ds) == 0:
        raise OpenImagenError(f"no usable images in {path_or_spec} ({fmt} format; "
                              f"{report.summary()})")
    ds.format = fmt
    return ds
