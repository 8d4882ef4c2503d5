"""Shared CLI plumbing: running a command with one-line errors, progress bars, and values given for every
cascade stage or one per stage ("4" or "4,1")."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Union

from openimagen.errors import InvalidArgumentError, OpenImagenError

PerStageFloat = Union[float, tuple]


def add_variant_flag(p) -> None:
    """``--variant NAME``: one of the model directory's named alternative cascades (pipeline.json ``variants``)."""
    p.add_argument("--variant", default=None,
                   help="one of the model's named alternative cascades: the default model's 'fast' (its distilled "
                        "4-step base student, then its SR stage at 4 steps) and 'gan-sr' (its base, then a 2-step "
                        "adversarially refined SR stage); `openimagen info` lists them")


def per_stage_float(text: Optional[str], flag: str, lo: float = 0.0, hi: float = float("inf")) -> Optional[PerStageFloat]:
    """``"4"`` -> 4.0 (every stage); ``"4,1"`` -> (4.0, 1.0) (base, then each super-resolution stage); None stays
    None. Every value must lie in [lo, hi); otherwise an :class:`InvalidArgumentError` names ``flag``."""
    if text is None or isinstance(text, (float, tuple)):     # None, or parsed already
        return text
    parts = [t.strip() for t in str(text).split(",")]
    rng = f">= {lo:g}" if hi == float("inf") else f"in [{lo:g}, {hi:g})"
    try:
        values = [float(t) for t in parts]
    except ValueError:
        raise InvalidArgumentError(f"{flag} must be a number {rng}, or one per stage separated by commas "
                                   f"(e.g. 4 or 4,1), got {text!r}") from None
    if any(not lo <= v < hi for v in values):
        raise InvalidArgumentError(f"{flag} must be {rng} (one value, or one per stage), got {text}")
    return values[0] if len(values) == 1 else tuple(values)


ON_OFF = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False}


def on_off(text: str) -> bool:
    """``on``/``off`` (also ``true``/``false``, ``1``/``0``, any case) -> bool; anything else raises ValueError."""
    if text.lower() not in ON_OFF:
        raise ValueError(text)
    return ON_OFF[text.lower()]


def per_stage(text: Optional[str], flag: str, parse: Callable[[str], object] = str):
    """``"a"`` -> ``parse("a")`` (every stage); ``"a,b"`` -> ``(parse("a"), parse("b"))`` (base, then each SR stage);
    None stays None. Types only: ranges are checked by the generation request. A value ``parse`` rejects raises
    :class:`InvalidArgumentError` naming ``flag``."""
    if text is None:
        return None
    try:
        values = tuple(parse(t.strip()) for t in str(text).split(","))
    except ValueError:
        kind = {int: "an integer", float: "a number", on_off: "on or off"}.get(parse, "a value")
        raise InvalidArgumentError(f"{flag} must be {kind}, or one per stage separated by commas, got {text!r}") from None
    return values[0] if len(values) == 1 else values


def run_command(func: Callable, args) -> int:
    """Run ``func(args)`` the way every openimagen command runs: a user error (:class:`OpenImagenError`) is one
    line ``error: ...`` on stderr and exit code 2, never a traceback; Ctrl-C is exit code 130; a closed pipe
    (``openimagen info | head -3``) ends quietly with exit code 141, as a shell tool killed by SIGPIPE."""
    try:
        return func(args)
    except BrokenPipeError:
        # the reader has gone: point stdout at /dev/null so the interpreter's final flush cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OpenImagenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


@contextmanager
def progress_bar(disabled: bool, total: int, desc: str, unit: str = "img",
                 leave: bool = True) -> Iterator[Optional[Callable[[int], object]]]:
    """A tqdm bar for the ``with`` block: yields its ``update(n)`` (None when ``disabled``), closed on exit."""
    if disabled:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, leave=leave)
    try:
        yield bar.update
    finally:
        bar.close()


def read_image(path, what: str = ""):
    """The image at ``path`` as RGB PIL (alpha composited on white, as training does); :class:`InvalidArgumentError`
    (one line, prefixed by ``what``) if it cannot be read as an image."""
    from PIL import Image, UnidentifiedImageError

    from openimagen.data.preprocess import composite_on_white

    try:
        with Image.open(path) as im:
            return composite_on_white(im)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise InvalidArgumentError(f"{what}cannot read {path} as an image ({e.__class__.__name__})") from None
