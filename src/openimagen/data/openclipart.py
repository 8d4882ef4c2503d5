"""Openclipart builder: Debian's ``openclipart-png`` clip art, captioned from path and title.

Files look like ``/usr/share/openclipart/png/animals/birds/blue_jay.png`` or
``science/astronomy/saturn_dan_gerhards_01.png``: a category path, then a title that
often ends in the author's name (cut at 24 characters, so ``medicina_dottore_archite``)
and a number. :func:`clean_title` lower-cases, splits on ``_``/``-``, drops trailing
and leading numbers, digits inside words, a trailing author name or any cut-off prefix
of one (:data:`AUTHORS`, the prolific contributors found in the package's file names),
one-letter leftovers and dangling function words. Generated stars
(``star_32pt05step`` -> "32-pointed star") and playing cards (``simple_h_k`` -> "king of
hearts playing card") get titles of their own. The caption is the title followed by the
categories from the most specific up, without repeats or the uninformative ``unsorted``
and ``duplicates``: ``"blue jay, birds, animals"``, ``"saturn, astronomy, science"``.

Images are composited on white (transparent backgrounds), padded to a white square (clip
art must not be cut) and resized to ``size``; unreadable files and images whose shorter
side is below ``min_size`` are skipped and listed in ``report.json``, and so are images
of one flat colour (the package's ``special/gradients`` are fully transparent) or with
more than ``max_pixels`` pixels (:data:`MAX_PIXELS`; checked before decoding).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image

from openimagen.errors import OpenImagenError

from .preprocess import Preprocessor, SkipImage, check_size_arg
from .writer import BuildResult, BuildWriter, default_workers, run_jobs, save_sample

OPENCLIPART_ROOT = Path("/usr/share/openclipart/png")
MAX_PIXELS = 40_000_000   # a dozen posters of 10k x 16k px take ~12 s each to decode: skipped
SKIP_CATEGORIES = {"unsorted", "duplicates", "png"}
FUNCTION_WORDS = {"a", "an", "the", "of", "on", "in", "for", "and", "with", "to", "at", "by",
                  "di", "da", "de", "del", "per", "la", "il", "le", "e", "y"}
AUTHORS = tuple(sorted({    # contributors whose names end many file names (tails are cut to match)
    "abiclipart", "afief halumi", "aj ashton", "alejandro tejada", "alex kuehne", "andreas nilsson",
    "andy fitzsimon", "anita", "anthony liekens", "anton yu", "architetto francesco rollandin",
    "aubanel monnier", "benji park", "brice boyer", "charles mccolm", "christian h.", "christoph brill",
    "dan gerhards", "dave pena", "dave reckoning", "davide pesenti", "didier fabert", "dirk struve",
    "enrique meza c", "erich schubert", "etienne bersac", "fabio olivo", "fco. andrade",
    "frederic moser", "frouke", "fudriot omic.ch", "gabrielle nowicki", "ganson", "gerald g.",
    "gino river", "glenn rolla", "hash 0x89c79d4", "guillaume boitel", "hans deragon", "israel c",
    "jakob chaosinfaktor",
    "james birkett", "james kilfiger", "jarno vasamaa", "jasper van de grond", "jean victor balin",
    "jeff walden", "joel montes de oca", "joeseph teed", "jon phillips", "jonadab", "jonathan dietrich",
    "josu alcalde", "juliane krug", "k yager", "leif lodahl", "linda kim", "lumen design studio",
    "marcelo caiafa", "marcelo staudt", "mateya", "matt todd", "matthew gates", "mauro olivo",
    "michael breuer", "michael tunnicliffe", "mikhail a.medvedev", "mimooh", "mirjam meijer",
    "molumen", "nathan eady", "nicu buculei", "nubldoff", "nurbldoff", "olivier boyer", "openclipart",
    "orlando karam", "patricia fidi", "peterm", "petri lummemaki", "ralf stephan", "raph",
    "richard torkar", "romus", "rory mccann", "ruairi hannon", "ruud steltenpool", "saurabh",
    "sergio luiz araujo", "luiz araujo", "seth yastrov", "shandy brown", "snuatautisticido",
    "stefan bazelkov", "stefan graubner", "stefan illner", "steffen gluck", "stepan kliuchnyk", "stuart moore",
    "susan park", "t. eitel", "toh yen cheng", "wolfram esser", "yemu", "yogesh kanitkar", "yves guillou",
}))


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s_\-]+", text.lower()) if w]


_AUTHOR_WORDS = [" ".join(re.sub(r"\d+", "", w) for w in _words(a)) for a in AUTHORS]


def _strip_author(words: list[str]) -> list[str]:
    """Drop the longest tail that is an author's name or a cut-off prefix of one (keep >= 1 word)."""
    for j in range(1, len(words)):
        tail = " ".join(words[j:])
        if len(tail) >= 2 and any(a.startswith(tail) for a in _AUTHOR_WORDS):
            return words[:j]
    return words


_CARD = re.compile(r"(?:bordered|simple|white|ornamental)_([cdhs])_(\w+)")
_SUITS = {"c": "clubs", "d": "diamonds", "h": "hearts", "s": "spades"}
_RANKS = {"a": "ace", "1": "ace", "j": "jack", "q": "queen", "k": "king"}


def _special_title(stem: str) -> Optional[str]:
    """Titles the generic rule would garble: generated stars and playing cards."""
    m = re.fullmatch(r"star_(\d+)pt\d+step", stem)
    if m:
        return f"{int(m[1])}-pointed star"
    m = _CARD.fullmatch(stem.lower())
    if m and (m[2] in _RANKS or m[2].isdigit()):
        return f"{_RANKS.get(m[2], m[2])} of {_SUITS[m[1]]} playing card"
    return None


def clean_title(stem: str) -> str:
    """Human title from a file stem, e.g. ``"saturn_dan_gerhards_01"`` -> ``"saturn"``."""
    special = _special_title(stem)
    if special:
        return special
    words = _words(stem)
    while words and re.fullmatch(r"\d+[a-z]?", words[-1]):       # "01", "01r", "3"
        words.pop()
    while words and words[0].isdigit():                           # "08_waningcrescent"
        words.pop(0)
    words = [w if w.isdigit() else re.sub(r"\d+", "", w).strip(".") for w in words]  # "fc14" -> "fc"
    words = _strip_author([w for w in words if w])
    words = [w for w in words if len(w) > 1 or w == "a"]
    while words and words[-1] in FUNCTION_WORDS:
        words.pop()
    while words and words[0] in FUNCTION_WORDS - {"a", "an"}:
        words.pop(0)
    return " ".join(words)


def openclipart_caption(relpath: Union[str, Path]) -> tuple:
    """``(caption, title, categories)`` for a path relative to the clip-art root."""
    rel = Path(relpath)
    title = clean_title(rel.stem)
    cats = []
    for part in reversed(rel.parent.parts):
        c = " ".join(_words(part))
        if c and c not in SKIP_CATEGORIES and c != title and c not in cats:
            cats.append(c)
    caption = ", ".join([title] * bool(title) + cats) or "clip art"
    return caption, title, cats


def list_clipart(root: Union[str, os.PathLike] = OPENCLIPART_ROOT, limit: Optional[int] = None) -> list[Path]:
    """Sorted PNG paths relative to ``root``; ``limit`` takes that many evenly spaced ones."""
    root = Path(root)
    if not root.is_dir():
        raise OpenImagenError(f"clip art not found at {root} (install the Debian package openclipart-png)")
    files = sorted(p.relative_to(root) for p in root.rglob("*.png") if p.is_file())
    if limit is not None and 0 < limit < len(files):
        files = [files[i * len(files) // limit] for i in range(limit)]
    return files


def is_flat(img: Image.Image) -> bool:
    """True for an image of one flat colour (value range under 8 of 255; e.g. fully transparent clip art)."""
    arr = np.asarray(img)
    return int(arr.max()) - int(arr.min()) < 8


def _clipart_job(job) -> Optional[str]:
    out, key, path, caption, pre = job
    try:
        img = pre.pil(path)
    except SkipImage as e:
        return str(e)
    if is_flat(img):
        return "blank: a single flat colour (e.g. fully transparent)"
    save_sample(out, key, img, caption)
    return None


def build_openclipart(out: Union[str, os.PathLike], size: int = 64, *, limit: Optional[int] = None,
                      min_size: int = 16, max_pixels: Optional[int] = MAX_PIXELS,
                      root: Union[str, os.PathLike] = OPENCLIPART_ROOT, workers: Optional[int] = None) -> BuildResult:
    """Write the clip art (all of it, or ``limit`` evenly spaced files) to ``out``.

    Labels: ``title``, ``categories`` (most specific first) and ``source`` (relative path).
    Captions: the primary caption, the bare title and ``"<title> clip art"``.
    """
    check_size_arg(size)
    pre = Preprocessor(size, "pad", min_size, max_pixels)
    if limit is not None:
        check_size_arg(limit, "limit")
    files = list_clipart(root, limit)
    args = {"size": size, "limit": limit, "min_size": min_size, "max_pixels": max_pixels}
    with BuildWriter(out, builder="openclipart", args=args) as w:
        keys = [f"{i:05d}_{re.sub(r'[^A-Za-z0-9]+', '-', f.stem).strip('-')[:40]}" for i, f in enumerate(files)]
        caps = [openclipart_caption(f) for f in files]
        jobs = [(w.out, k, Path(root) / f, c[0], pre) for k, f, c in zip(keys, files, caps)]
        for key, f, (caption, title, cats), reason in zip(keys, files, caps,
                                                          run_jobs(_clipart_job, jobs, workers or default_workers())):
            if reason is not None:
                w.skip(key, reason)
                continue
            captions = list(dict.fromkeys(c for c in (caption, title, f"{title} clip art" if title else "") if c))
            w.record(key, captions, {"title": title, "categories": cats, "source": f.as_posix()})
    return w.result
