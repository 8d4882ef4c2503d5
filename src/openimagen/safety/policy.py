"""A prompt policy: a deny-list of terms; a prompt containing one is refused before any work.

The list is a text file, one term per line (``#`` starts a comment). Matching ignores case (Unicode case folding
after NFKC normalisation) and spacing (whitespace, ``-``, ``_`` and ``.`` are removed from both the term and the
prompt), so ``"Bad  Word"``, ``"bad-word"`` and ``"BADWORD"`` all match the term ``bad word``. It is a coarse
guard against deliberate misuse (Imagen's paper, Sec. 6), not a classifier: it refuses what the list names and
nothing else. The service and the CLI apply :meth:`PromptPolicy.default` unless told otherwise (loudly).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from openimagen.errors import ConfigError, PolicyError

DEFAULT_DENY_LIST = Path(__file__).resolve().parent / "deny_list.txt"
_SPACING = re.compile(r"[\s\-_.]+")


def normalise(text: str) -> str:
    """NFKC, case-folded, with whitespace, '-', '_' and '.' removed."""
    return _SPACING.sub("", unicodedata.normalize("NFKC", text).casefold())


@dataclass(frozen=True)
class PromptPolicy:
    """``terms``: the denied terms as written in the file; ``source``: where they came from (for messages)."""

    terms: tuple[str, ...]
    source: str = "built in"

    @classmethod
    def from_file(cls, path) -> "PromptPolicy":
        """Read a deny-list file; :class:`ConfigError` (one line) if it cannot be read."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"prompt policy {path}: cannot read it as UTF-8 text ({e.__class__.__name__})") from None
        terms = tuple(t for t in (line.split("#", 1)[0].strip() for line in text.splitlines()) if normalise(t))
        return cls(terms, str(path))

    @classmethod
    def default(cls) -> "PromptPolicy":
        return cls.from_file(DEFAULT_DENY_LIST)

    def violation(self, prompt: str) -> str | None:
        """The first denied term ``prompt`` contains, or None."""
        text = normalise(prompt)
        return next((t for t in self.terms if normalise(t) in text), None)

    def check(self, prompts: Sequence[str], field: str = "prompt") -> None:
        """Raise :class:`PolicyError` naming the prompt and the term if any prompt (or negative prompt) matches."""
        for i, prompt in enumerate(prompts):
            term = self.violation(prompt)
            if term is not None:
                where = field if len(prompts) == 1 else f"{field}[{i}]"
                raise PolicyError(f"{where} refused by the prompt policy ({self.source}): it contains the denied "
                                  f"term {term!r}")
