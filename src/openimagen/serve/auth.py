"""API keys: a file of keys (plain, or ``sha256:<hex>`` of the key), checked in constant time.

Only SHA-256 digests are kept in memory; a request's bearer token is hashed and compared with every stored
digest by :func:`hmac.compare_digest` (no early exit, so timing says nothing about which key or how much of one
matched). Keys are never logged; the service names a key by the first 8 hex digits of its digest (``key_id``),
for rate limits and metrics.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import Optional

from openimagen.errors import ConfigError

_HEX64 = re.compile(r"[0-9a-f]{64}")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeys:
    """The set of accepted keys, as digests."""

    def __init__(self, digests):
        self.digests = tuple(digests)
        if not self.digests:
            raise ConfigError("the API key file has no keys; give one key per line (or sha256:<hex digest>)")

    @classmethod
    def from_file(cls, path) -> "ApiKeys":
        """One key per line; ``sha256:<64 hex>`` lines are digests; blank lines and ``#`` comments are skipped.
        :class:`ConfigError` (one line, no key in it) for an unreadable file or a malformed digest line."""
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"--api-keys {path}: cannot read it as UTF-8 text ({e.__class__.__name__})") from None
        digests = []
        for n, line in enumerate(lines, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("sha256:"):
                hexd = line[len("sha256:"):].strip().lower()
                if not _HEX64.fullmatch(hexd):
                    raise ConfigError(f"--api-keys {path}, line {n}: a sha256: line needs 64 hex digits")
                digests.append(hexd)
            else:
                digests.append(digest(line))
        return cls(digests)

    def check(self, token: Optional[str]) -> Optional[str]:
        """The key id (8 hex) of ``token`` if it is an accepted key, else None. Constant time in the token."""
        if not token:
            return None
        d = digest(token).encode()
        found = None
        for stored in self.digests:                    # no early exit: every digest is compared
            if hmac.compare_digest(d, stored.encode()):
                found = stored
        return None if found is None else found[:8]
