"""The service's settings, validated once where they enter (flags or code), by the same pydantic mechanism as
every other openimagen config (:mod:`openimagen.validation`)."""
from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import Field, StrictBool, StrictStr
from pydantic.dataclasses import dataclass

from openimagen.errors import InvalidArgumentError
from openimagen.validation import NonNegativeInt, PlainNumber, PositiveInt, checked

Count = PositiveInt
Seconds = Annotated[float, Field(gt=0), PlainNumber]
NonNegative = Annotated[float, Field(ge=0), PlainNumber]


@dataclass(frozen=True)
class ServeConfig:
    """What the service allows and how it batches. Units: seconds unless the name says otherwise.

    max_queue         requests waiting for the worker; one more gets 429 with Retry-After
    max_batch         images the worker runs in one batched call
    max_images        images one request may ask for (prompts x n); more is a 422
    batch_wait_ms     how long the worker waits for more requests to fill a batch
    timeout           seconds a request may take, queueing included; then 504 and its work is dropped
    rate_limit        requests per minute per API key (per client address without keys); 0 = unlimited
    max_body_bytes    request bodies larger than this get 413
    max_prompt_chars  longest prompt (or negative prompt) accepted
    max_steps         most sampling steps a request may ask of any stage (bounds the work of one request)
    store_size, store_ttl   images kept for URL responses (count) and for how long (seconds)
    watermark         put the invisible watermark on every image (turning it off warns)
    """

    max_queue: Count = 64
    max_batch: Count = 8
    max_images: Count = 8
    batch_wait_ms: NonNegative = 20.0
    timeout: Seconds = 120.0
    rate_limit: NonNegativeInt = 0
    max_body_bytes: Count = 64 * 1024
    max_prompt_chars: Count = 1000
    max_steps: Count = 250
    store_size: Count = 256
    store_ttl: Seconds = 600.0
    watermark: StrictBool = True
    model_name: StrictStr = "openimagen-default"

    @classmethod
    def build(cls, **values: Any) -> "ServeConfig":
        """Build from keyword values; :class:`InvalidArgumentError` naming the setting if one is wrong."""
        return checked(lambda: cls(**values), InvalidArgumentError, values)


def flag_name(setting: Optional[str]) -> str:
    """The CLI flag of a setting: ``max_queue`` -> ``--max-queue``."""
    return "--" + (setting or "").replace("_", "-")
