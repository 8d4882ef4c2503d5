"""Typed exceptions that speak to the user.

Every error a user can cause (a bad prompt, size, step count, sampler name, path or
checkpoint) is raised as one of these, with a one-line message naming what is allowed.
The CLI turns them into that line and exit code 2; nothing deep from torch leaks out.
"""
from __future__ import annotations


class OpenImagenError(Exception):
    """Base class for errors caused by the user's input, not by a bug."""


class InvalidArgumentError(OpenImagenError, ValueError):
    """A value is out of range or not one of the allowed names."""


class UnknownNameError(InvalidArgumentError, KeyError):
    """A name (sampler, preset, schedule, ...) is not registered; the message lists the valid ones."""

    def __init__(self, kind: str, name: str, valid):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class ModelLoadError(OpenImagenError, OSError):
    """A model directory, config or weights file is missing, unreadable, truncated or inconsistent. ``stage``: the
    index of the cascade stage at fault when the stages disagree with each other (the loader then names its file)."""

    def __init__(self, message: str, stage: "int | None" = None):
        super().__init__(message)
        self.stage = stage


class ConfigError(OpenImagenError, ValueError):
    """A config has an unknown key, a wrong type or an inconsistent value."""


class GenerationError(OpenImagenError, RuntimeError):
    """Generation ran but produced something unusable (non-finite pixels from broken weights or settings)."""


class OutputError(OpenImagenError, OSError):
    """An output cannot be written there (a directory in the way, a path under a file, a read-only folder, a full
    disk); nothing that was there before is lost."""


class TrainingError(OpenImagenError, RuntimeError):
    """Training stopped because it cannot go on meaningfully (a non-finite loss or gradient); the message names
    the step and the last good checkpoint, which is kept."""


class PolicyError(OpenImagenError, ValueError):
    """A prompt was refused by the prompt policy (its deny-list); the message names the prompt and the term."""


def is_int_at_least(value, minimum: int) -> bool:
    """True for an ``int`` (``bool`` excluded) that is at least ``minimum``: the test behind every count, step,
    size and length argument (callers raise their own message naming the argument)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def check_choice(kind: str, name: str, valid) -> str:
    """Return ``name`` if it is in ``valid``, else raise :class:`UnknownNameError`."""
    if name not in valid:
        raise UnknownNameError(kind, name, valid)
    return name
