"""A bounded, expiring store of PNGs for URL responses (``GET /v1/images/{id}.png``).

It lives in the process: with several service processes behind a load balancer, an image URL is served only by
the process that made it (use ``response_format=b64_json`` there, or sticky sessions). cachetools' TTLCache
evicts the oldest image beyond ``size`` and any image older than ``ttl`` seconds.
"""
from __future__ import annotations

import secrets
import threading
from typing import Optional

from cachetools import TTLCache


class ImageStore:
    def __init__(self, size: int, ttl: float):
        self._cache: TTLCache = TTLCache(maxsize=size, ttl=ttl)
        self._lock = threading.Lock()

    def put(self, png: bytes) -> str:
        """Keep ``png``; returns its id (32 hex, unguessable)."""
        image_id = secrets.token_hex(16)
        with self._lock:
            self._cache[image_id] = png
        return image_id

    def get(self, image_id: str) -> Optional[bytes]:
        with self._lock:
            return self._cache.get(image_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)
