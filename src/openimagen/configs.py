"""One helper shared by the typed configs: build a dataclass from a JSON/YAML dict, naming unknown keys."""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from openimagen.errors import ConfigError


def dataclass_from_dict(cls, d: Any, what: str):
    """``cls(**d)`` for a flat dataclass, with a ConfigError that names unknown keys or bad arguments."""
    if not isinstance(d, dict):
        raise ConfigError(f"{what} must be a mapping, got {type(d).__name__}")
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise ConfigError(f"unknown {what} key(s): {', '.join(sorted(unknown))}")
    try:
        return cls(**d)
    except TypeError as e:
        raise ConfigError(f"bad {what}: {e}") from None
