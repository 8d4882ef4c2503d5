"""Image and caption preprocessing shared by every dataset format and builder.

Pipeline for one image (:class:`Preprocessor`):

1. ``load_image``: decode fully (a truncated file fails here, not in a DataLoader worker
   three hours later), composite any alpha channel or palette transparency on white, RGB.
2. ``check_size``: an image whose shorter side is below ``min_size`` is skipped (and,
   before decoding, one with more than ``max_pixels`` pixels, when that is set).
3. ``to_square`` with a resize policy: ``"center_crop"`` (crop the central square) or
   ``"pad"`` (centre the image on a white square; nothing is cut off).
4. ``resize_square``: to ``size`` x ``size`` with PIL's LANCZOS filter, which antialiases
   when downsampling.
5. ``to_tensor``: float32 ``(3, H, W)`` in ``[-1, 1]`` (``x / 127.5 - 1``).

Images that cannot be used raise :class:`SkipImage`; the datasets catch it and record the
key and reason in a :class:`SkipReport` (written as ``report.json``), so a bad file is
counted, never a crash.

Captions (:func:`normalize_caption`) are Unicode-NFC normalised, stripped and have runs of
whitespace collapsed to one space. Case is kept: the T5-style text encoders are cased and
captions carry proper nouns ("flag: South Africa").
"""
from __future__ import annotations

import io
import json
import os
import re
from contextlib import contextmanager
import unicodedata
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from openimagen.errors import InvalidArgumentError, check_choice, is_int_at_least

RESIZE_POLICIES = ("center_crop", "pad")
WHITE = (255, 255, 255)

ImageSource = Union[str, os.PathLike, bytes, Image.Image]


class SkipImage(Exception):
    """An image that cannot be used; ``str(exc)`` is the reason recorded in the report."""


def normalize_caption(text: str) -> str:
    """NFC-normalise, strip and collapse whitespace; case is kept (see module docstring)."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", str(text))).strip()


def _to_8bit(img: Image.Image) -> Image.Image:
    """Grey images of more than 8 bits as 8-bit "L": 16-bit ("I;16*", or "I" holding values above 255) scaled by
    255/65535, float ("F") by 255 when its values lie in [0, 1]; PIL's own convert would saturate them to white."""
    if not (img.mode.startswith("I") or img.mode == "F"):
        return img
    arr = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16") or (img.mode == "I" and arr.size and arr.max() > 255):
        arr = arr / 257.0
    elif img.mode == "F" and arr.size and arr.min() >= 0 and arr.max() <= 1:
        arr = arr * 255.0
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), mode="L")


def composite_on_white(img: Image.Image) -> Image.Image:
    """Return an RGB image; transparent pixels (alpha, palette transparency) become white; 16-bit and float grey
    images are scaled to 8 bits (not saturated)."""
    img = _to_8bit(img)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


@contextmanager
def _skip_on_decode_errors():
    """Turn PIL's many decode errors into :class:`SkipImage` with a short reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the hard limit is handled below
            yield
    except FileNotFoundError:
        raise SkipImage("file not found") from None
    except UnidentifiedImageError:
        raise SkipImage("not an image (unidentified format)") from None
    except Image.DecompressionBombError:
        limit = 2 * Image.MAX_IMAGE_PIXELS
        raise SkipImage(f"too large: over {limit} pixels (PIL's decompression-bomb limit)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise SkipImage(f"corrupt or truncated image: {e}") from None


def _open(source: ImageSource) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray)):
        return Image.open(io.BytesIO(source))
    return Image.open(source)


def check_header(source: ImageSource, min_size: int = 0, max_pixels: Optional[int] = None) -> tuple:
    """Cheap check from the header only (no decode): readable, big enough, not too large.

    Returns ``(width, height)``; raises :class:`SkipImage` otherwise.
    """
    with _skip_on_decode_errors():
        img = _open(source)
        size = img.size
        if img is not source:
            img.close()
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        raise SkipImage(f"too large: {size[0]}x{size[1]} > max_pixels {max_pixels}")
    if min(size) < min_size:
        raise SkipImage(f"too small: {size[0]}x{size[1]} < min_size {min_size}")
    return size


def load_image(source: ImageSource, max_pixels: Optional[int] = None) -> Image.Image:
    """Decode ``source`` (path, bytes or PIL image) fully into RGB on white.

    Raises :class:`SkipImage` for anything unreadable: missing file, not an image,
    truncated data, decompression bomb, or more than ``max_pixels`` pixels (checked
    from the header, before decoding).
    """
    with _skip_on_decode_errors():
        img = _open(source)
        if max_pixels is not None and img.size[0] * img.size[1] > max_pixels:
            raise SkipImage(f"too large: {img.size[0]}x{img.size[1]} > max_pixels {max_pixels}")
        img.load()  # full decode: truncated files raise here
        return composite_on_white(img)


def check_size(img: Image.Image, min_size: int) -> Image.Image:
    """Raise :class:`SkipImage` when the shorter side is below ``min_size``."""
    if min(img.size) < min_size:
        raise SkipImage(f"too small: {img.size[0]}x{img.size[1]} < min_size {min_size}")
    return img


def to_square(img: Image.Image, policy: str = "center_crop") -> Image.Image:
    """Make ``img`` square: crop the central square, or pad with white around it."""
    check_choice("resize policy", policy, RESIZE_POLICIES)
    w, h = img.size
    if w == h:
        return img
    if policy == "center_crop":
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        return img.crop((left, top, left + s, top + s))
    s = max(w, h)
    canvas = Image.new("RGB", (s, s), WHITE)
    canvas.paste(img, ((s - w) // 2, (s - h) // 2))
    return canvas


def resize_square(img: Image.Image, size: int) -> Image.Image:
    """Resize a square image to ``size`` x ``size`` with LANCZOS (antialiased)."""
    if img.size == (size, size):
        return img
    return img.resize((size, size), Image.Resampling.LANCZOS)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 tensor (3, H, W) in [-1, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)            # (H, W, 3)
    x = torch.from_numpy(arr.copy()).permute(2, 0, 1)                # (3, H, W)
    return x.float().div_(127.5).sub_(1.0)


def to_pil(x: torch.Tensor) -> Image.Image:
    """Inverse of :func:`to_tensor` (clamped, rounded)."""
    arr = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte()  # (3, H, W)
    return Image.fromarray(arr.permute(1, 2, 0).cpu().numpy(), "RGB")


def check_size_arg(size: int, name: str = "size") -> int:
    """Validate a positive image size argument."""
    if not is_int_at_least(size, 1):
        raise InvalidArgumentError(f"{name} must be a positive integer, got {size!r}")
    return size


@dataclass(frozen=True)
class Preprocessor:
    """Turns any image source into a training tensor; see the module docstring for the steps."""

    size: int                       # output side in pixels
    resize: str = "center_crop"     # "center_crop" | "pad"
    min_size: int = 0               # shorter input side below this -> skipped
    max_pixels: Optional[int] = None  # more input pixels than this -> skipped before decoding

    def __post_init__(self):
        check_size_arg(self.size)
        check_choice("resize policy", self.resize, RESIZE_POLICIES)
        if self.min_size < 0:
            raise InvalidArgumentError(f"min_size must be >= 0, got {self.min_size}")

    def pil(self, source: ImageSource) -> Image.Image:
        """Load, check, square and resize; returns an RGB ``size`` x ``size`` PIL image."""
        img = check_size(load_image(source, self.max_pixels), self.min_size)
        return resize_square(to_square(img, self.resize), self.size)

    def __call__(self, source: ImageSource) -> torch.Tensor:
        return to_tensor(self.pil(source))  # (3, size, size)


class SkipReport:
    """Counts loaded images and lists skipped ones with their reasons."""

    def __init__(self):
        self.loaded = 0
        self.skipped: list[dict] = []

    def add(self, key: str, reason: str) -> None:
        self.skipped.append({"key": str(key), "reason": str(reason)})

    def reasons(self) -> Counter:
        """Skip counts by reason kind (text before the first colon)."""
        return Counter(s["reason"].split(":")[0] for s in self.skipped)

    def to_dict(self) -> dict:
        return {"loaded": self.loaded, "skipped": len(self.skipped),
                "by_reason": dict(sorted(self.reasons().items())), "items": self.skipped}

    def write(self, path: Union[str, os.PathLike]) -> Path:
        """Write the report as JSON (``report.json`` by convention) and return its path."""
        from openimagen.pipeline.io import atomic_write

        path = Path(path)
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        return path

    def summary(self) -> str:
        parts = ", ".join(f"{n} {r}" for r, n in sorted(self.reasons().items()))
        return f"{self.loaded} loaded, {len(self.skipped)} skipped" + (f" ({parts})" if parts else "")
