"""Emoji builder: every fully-qualified emoji the Noto Color Emoji font can draw, in colour.

Sources (both Debian packages, installed by ``make setup``):

* glyphs: ``fonts-noto-color-emoji`` (:data:`NOTO_EMOJI_FONT`), a CBDT bitmap font whose
  only strike is 109 px, so it is opened at size 109 and drawn with ``embedded_color``;
* names, groups and subgroups: Unicode's ``emoji-test.txt`` from Debian's
  ``unicode-data`` (:data:`EMOJI_TEST_PATHS`), the file that defines the RGI set in CLDR
  order with each emoji's status, group ("Smileys & Emotion"), subgroup ("face-smiling")
  and CLDR short name ("woman facepalming: medium-light skin tone").

Captions: the CLDR name as primary caption (it already reads naturally and keeps the
colon that separates base and modifiers; the ``emoji`` package's ``:snake_case:`` names
drop it and the "flag:" prefix, so that name is only stored as the label
``emoji_name``), plus the variants ``"<name> emoji"`` and ``"<name>, <subgroup words>"``.

Rendering of one emoji: draw on a transparent canvas, crop tightly to the alpha bounding
box, composite on white, pad to a centred white square, resize with LANCZOS to ``size``.
Skipped (and reported): a blank render, or a sequence the font draws as several glyphs
(no ligature for it), which happens when ``emoji-test.txt`` is newer than the font.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from openimagen.errors import OpenImagenError

from .preprocess import check_size_arg, composite_on_white, resize_square, to_square
from .writer import BuildResult, BuildWriter, default_workers, run_jobs, save_sample

NOTO_EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_TEST_PATHS = (Path("/usr/share/unicode/emoji/emoji-test.txt"),)   # Debian: unicode-data
NOTO_STRIKE_PX = 109        # the font's single bitmap strike size
_LINE = re.compile(r"^(?P<cps>[0-9A-Fa-f ]+?)\s*;\s*(?P<status>[a-z-]+)\s*#\s*\S+\s+E(?P<ver>[0-9.]+)\s+(?P<name>.+)$")


@dataclass(frozen=True)
class EmojiEntry:
    """One line of ``emoji-test.txt``."""

    chars: str          # the emoji string
    codepoints: str     # "1f469-200d-1f4bb"
    name: str           # CLDR short name
    group: str          # "Smileys & Emotion"
    subgroup: str       # "face-smiling"
    version: str        # emoji version that added it, "1.0"
    status: str         # "fully-qualified", ...


def find_emoji_test(path: Optional[Union[str, os.PathLike]] = None) -> Path:
    """The ``emoji-test.txt`` to use: ``path``, ``$OPENIMAGEN_EMOJI_TEST``, or Debian's."""
    candidates = [Path(p) for p in (path, os.environ.get("OPENIMAGEN_EMOJI_TEST")) if p] or list(EMOJI_TEST_PATHS)
    for p in candidates:
        if p.is_file():
            return p
    raise OpenImagenError(f"emoji-test.txt not found at {', '.join(map(str, candidates))}: "
                          f"install the Debian package unicode-data (make setup) or pass its path")


def read_emoji_test(path: Optional[Union[str, os.PathLike]] = None, *,
                    status: str = "fully-qualified") -> list[EmojiEntry]:
    """Entries of ``emoji-test.txt`` with the given status, in file (CLDR) order."""
    group = subgroup = ""
    entries = []
    for line in find_emoji_test(path).read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#"):
            m = _LINE.match(line.strip())
            if m and m["status"] == status:
                cps = m["cps"].split()
                entries.append(EmojiEntry("".join(chr(int(c, 16)) for c in cps), "-".join(c.lower() for c in cps),
                                          m["name"].strip(), group, subgroup, m["ver"], m["status"]))
    return entries


def emoji_captions(entry: EmojiEntry) -> list[str]:
    """Primary CLDR-name caption and two variants (see the module docstring)."""
    name = entry.name
    return [name, f"{name} emoji", f"{name}, {entry.subgroup.replace('-', ' ')}"]


def emoji_package_name(chars: str) -> Optional[str]:
    """The ``emoji`` package's English name (``":grinning_face:"``), or None."""
    try:
        import emoji
    except ImportError:
        return None
    data = emoji.EMOJI_DATA.get(chars)
    return data["en"] if data else None


_FONT = None
_SINGLE = 0.0


def _init_font(font_path: str) -> None:
    global _FONT, _SINGLE
    _FONT = ImageFont.truetype(font_path, NOTO_STRIKE_PX)
    _SINGLE = _FONT.getlength("\U0001F600")  # advance of one emoji glyph


def render_emoji(chars: str, size: int) -> Image.Image:
    """Render one emoji in colour on white, tightly cropped, centred, ``size`` x ``size``.

    Uses the font loaded by ``_init_font``. Raises ``ValueError`` with the reason when the
    font cannot draw ``chars`` as one non-blank glyph.
    """
    if _FONT.getlength(chars) > 1.5 * _SINGLE:
        raise ValueError("not a single glyph in this font")
    pad = NOTO_STRIKE_PX // 2  # generous margin: glyphs are ~136 x 128 px
    side = 2 * NOTO_STRIKE_PX + 2 * pad
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    ImageDraw.Draw(canvas).text((pad, pad), chars, font=_FONT, embedded_color=True)
    bbox = canvas.getchannel("A").getbbox()
    if bbox is None:
        raise ValueError("blank render")
    rgb = composite_on_white(canvas.crop(bbox))
    if np.asarray(rgb).min() >= 250:
        raise ValueError("blank render (white on white)")
    return resize_square(to_square(rgb, "pad"), size)


def _emoji_job(job) -> Optional[str]:
    """Render and save one emoji (runs in a worker); returns the skip reason or None."""
    out, key, chars, caption, size = job
    try:
        save_sample(out, key, render_emoji(chars, size), caption)
    except ValueError as e:
        return str(e)
    return None


def build_emoji(out: Union[str, os.PathLike], size: int = 64, *, workers: Optional[int] = None,
                limit: Optional[int] = None, font: Union[str, os.PathLike] = NOTO_EMOJI_FONT,
                emoji_test: Optional[Union[str, os.PathLike]] = None) -> BuildResult:
    """Render every fully-qualified emoji into ``out`` (see :mod:`.writer` for the layout).

    Labels per image: ``group``, ``subgroup``, ``name`` (CLDR), ``emoji`` (the string),
    ``codepoints``, ``emoji_version`` and ``emoji_name`` (the ``emoji`` package's name).
    Keys are ``<CLDR order>_<codepoints>``, e.g. ``0001_1f600``. ``workers`` processes
    render and write in parallel (default: up to 2); the output does not depend on it.
    ``limit`` keeps the first N emoji (for quick tests).
    """
    check_size_arg(size)
    if not Path(font).is_file():
        raise OpenImagenError(f"emoji font not found: {font} (install the Debian package fonts-noto-color-emoji)")
    if limit is not None:
        check_size_arg(limit, "limit")
    entries = read_emoji_test(emoji_test)[:limit]
    args = {"size": size, "font": Path(font).name, "emoji_test": find_emoji_test(emoji_test).name, "limit": limit}
    keys = [f"{i + 1:04d}_{e.codepoints}" for i, e in enumerate(entries)]
    with BuildWriter(out, builder="emoji", args=args) as w:
        jobs = [(w.out, k, e.chars, emoji_captions(e)[0], size) for k, e in zip(keys, entries)]
        reasons = run_jobs(_emoji_job, jobs, workers or default_workers(), _init_font, (str(font),))
        for key, e, reason in zip(keys, entries, reasons):
            if reason is not None:
                w.skip(key, f"{reason}: {e.name}")
                continue
            labels = {"group": e.group, "subgroup": e.subgroup, "name": e.name, "emoji": e.chars,
                      "codepoints": e.codepoints, "emoji_version": e.version, "emoji_name": emoji_package_name(e.chars)}
            w.record(key, emoji_captions(e), labels)
    return w.result
