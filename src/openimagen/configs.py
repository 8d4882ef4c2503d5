"""Helpers shared by the typed configs: build a dataclass from a JSON/YAML dict, naming unknown keys; and write one
back without the fields a later format added, where they hold their defaults."""
from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

from pydantic import ValidationError

from openimagen.errors import ConfigError
from openimagen.validation import raise_one_line


def dataclass_from_dict(cls, d: Any, what: str):
    """``cls(**d)`` for a flat dataclass, with a ConfigError that names unknown keys or bad arguments (and, for the
    pydantic-checked settings such as ``SamplingConfig``, the field and value that fail their type or range)."""
    if not isinstance(d, dict):
        raise ConfigError(f"{what} must be a mapping, got {type(d).__name__}")
    check_known_keys(cls, d, what)
    try:
        return cls(**d)
    except TypeError as e:
        raise ConfigError(f"bad {what}: {e}") from None
    except ValidationError as e:
        raise_one_line(e, ConfigError, d, what, kind=cls)


def check_known_keys(cls, d: dict, what: str) -> None:
    """ConfigError naming every key of ``d`` that is not a field of dataclass ``cls``, and the valid ones."""
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:                                  # repr: a key may hold a newline or be a number
        raise ConfigError(f"unknown {what} key(s): {', '.join(repr(k) for k in sorted(unknown, key=str))} (valid: "
                          f"{', '.join(sorted(known))})")


def fields_omitting_later(obj, later) -> dict[str, Any]:
    """``{field: value}`` of dataclass ``obj``, without the fields named in ``later`` (added after the first model
    format) where they hold their default: configs, and the model hashes made from them, of models that do not use
    those fields stay what they were before the fields existed."""
    def default(f):
        return f.default_factory() if f.default is MISSING else f.default

    return {f.name: v for f in fields(obj) for v in [getattr(obj, f.name)] if not (f.name in later and v == default(f))}
