"""Output layout shared by the built-in builders (emoji, shapes, openclipart).

A build folder ``OUT`` holds::

    OUT/images/<key>.png     the image, already ``size`` x ``size`` RGB
    OUT/images/<key>.txt     its primary caption (so OUT is a "folder" dataset)
    OUT/manifest.jsonl       one line per image: key, path, caption, captions, labels
    OUT/report.json          loaded count and skipped keys with reasons
    OUT/info.json            builder name, arguments and counts

Everything is written in a fixed order with sorted JSON keys and no timestamps, so the
same arguments give byte-identical folders. Rebuilding into a folder that holds an
earlier build replaces it; any other non-empty folder is refused.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from multiprocessing import get_context
from typing import Callable, Iterator, Optional, Sequence, Union

from PIL import Image

from openimagen.errors import InvalidArgumentError

from .preprocess import SkipReport, normalize_caption

BUILD_FILES = ("images", "manifest.jsonl", "report.json", "info.json")


@dataclass(frozen=True)
class BuildResult:
    """What a builder wrote: the folder, how many images, how many skipped."""

    out: Path
    count: int
    skipped: int

    @property
    def manifest(self) -> Path:
        return self.out / "manifest.jsonl"

    def __str__(self) -> str:
        return f"wrote {self.count} images to {self.out} ({self.skipped} skipped; manifest {self.manifest})"


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def save_sample(out: Path, key: str, image: Image.Image, caption: str) -> None:
    """Write ``out/images/<key>.png`` and ``<key>.txt``; safe to call from worker processes."""
    image.convert("RGB").save(Path(out) / "images" / f"{key}.png", format="PNG")
    (Path(out) / "images" / f"{key}.txt").write_text(normalize_caption(caption) + "\n", encoding="utf-8",
                                                     newline="\n")


def run_jobs(fn: Callable, jobs: Sequence, workers: int, initializer: Optional[Callable] = None,
             initargs: tuple = ()) -> Iterator:
    """``map(fn, jobs)`` in order, over ``workers`` forked processes when ``workers > 1``."""
    if workers > 1 and len(jobs) > 1:
        with get_context("fork").Pool(workers, initializer=initializer, initargs=initargs) as pool:
            yield from pool.imap(fn, jobs, chunksize=max(1, min(64, len(jobs) // (4 * workers))))
        return
    if initializer is not None:
        initializer(*initargs)
    yield from map(fn, jobs)


def default_workers() -> int:
    """Builder processes by default: the CPU count, at most 2 (the project's machines have 2)."""
    return max(1, min(2, os.cpu_count() or 1))


class BuildWriter:
    """Writes one build folder; use as a context manager, then read ``.result``."""

    def __init__(self, out: Union[str, os.PathLike], *, builder: str, args: dict):
        self.out = Path(out)
        self.builder, self.args = builder, dict(args)
        self.report = SkipReport()
        self._prepare()
        self.images = self.out / "images"
        self.images.mkdir(parents=True)
        self._manifest = open(self.out / "manifest.jsonl", "w", encoding="utf-8", newline="\n")
        self.result: BuildResult | None = None

    def _prepare(self) -> None:
        if self.out.exists() and not self.out.is_dir():
            raise InvalidArgumentError(f"output path exists and is not a folder: {self.out}")
        if self.out.is_dir():
            entries = {p.name for p in self.out.iterdir()}
            if entries and not (entries <= set(BUILD_FILES) and self._is_build_info(self.out / "info.json")):
                raise InvalidArgumentError(f"output folder {self.out} is not empty and holds no earlier "
                                           f"build; choose a new folder")
            for name in entries:  # an earlier build: replace it
                p = self.out / name
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        self.out.mkdir(parents=True, exist_ok=True)
        self._write_info(complete=False)  # marks the folder as a build, even if interrupted

    @staticmethod
    def _is_build_info(path: Path) -> bool:
        try:
            return "builder" in json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError):
            return False

    def _write_info(self, complete: bool) -> None:
        info = {"builder": self.builder, "args": self.args, "complete": complete,
                "count": self.report.loaded, "skipped": len(self.report.skipped)}
        (self.out / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                                            encoding="utf-8")

    def add(self, key: str, image: Image.Image, captions: list[str], labels: dict) -> None:
        """Write one image, its caption file and its manifest line. ``captions[0]`` is primary."""
        save_sample(self.out, key, image, captions[0])
        self.record(key, captions, labels)

    def record(self, key: str, captions: list[str], labels: dict) -> None:
        """Add the manifest line of an image already written with :func:`save_sample`."""
        captions = [normalize_caption(c) for c in captions]
        self._manifest.write(_dumps({"key": key, "path": f"images/{key}.png", "caption": captions[0],
                                     "captions": captions, "labels": labels}) + "\n")
        self.report.loaded += 1

    def skip(self, key: str, reason: str) -> None:
        self.report.add(key, reason)

    def __enter__(self) -> "BuildWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._manifest.close()
        if exc_type is not None:
            return
        self.report.write(self.out / "report.json")
        self._write_info(complete=True)
        self.result = BuildResult(self.out, self.report.loaded, len(self.report.skipped))
