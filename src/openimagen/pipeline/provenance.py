"""Provenance: every PNG openimagen writes (CLI, service) carries the record that re-creates it.

Text chunks: ``prompt``, ``negative_prompt``, ``seed``, ``model``, ``model_hash`` and ``openimagen`` (JSON: the
openimagen version, model hash and the request for that image alone with every per-stage setting resolved;
``GenerationRequest.from_dict(record["request"])`` rebuilds it). The pixels carry the invisible watermark
(:mod:`openimagen.safety.watermark`) separately.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from openimagen.errors import InvalidArgumentError

RECORD_KEY = "openimagen"


def png_info(meta: dict) -> PngInfo:
    """PNG text chunks from ``meta`` (strings as they are, anything else as JSON)."""
    info = PngInfo()
    for k, v in meta.items():
        info.add_text(k, v if isinstance(v, str) else json.dumps(v))
    return info


def image_metadata(out, k: int, model: str) -> dict:
    """The text chunks of image ``k`` of a :class:`~openimagen.pipeline.PipelineOutput` made by ``model``."""
    rec = {**out.record(k), "model": model}
    req = rec["request"]
    return {"prompt": req["prompts"][0], "negative_prompt": req["negative_prompt"] or "", "seed": str(req["seed"]),
            "model": model, "model_hash": out.model_hash, RECORD_KEY: rec}


def png_bytes(image: Image.Image, meta: dict) -> bytes:
    """``image`` encoded as PNG with ``meta`` as text chunks."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=png_info(meta))
    return buf.getvalue()


def read_record(path: Path, flag: str = "--from-png") -> dict:
    """The ``openimagen`` record of a PNG written by openimagen; :class:`InvalidArgumentError` if there is none."""
    from PIL import UnidentifiedImageError

    try:
        with Image.open(path) as im:
            text = dict(getattr(im, "text", {}) or {})
    except (OSError, UnidentifiedImageError) as e:
        raise InvalidArgumentError(f"{flag}: cannot read {path} as an image ({e.__class__.__name__})") from None
    if RECORD_KEY not in text:
        raise InvalidArgumentError(f"{flag}: {path} has no openimagen generation record (only PNGs written by "
                                   f"`openimagen generate` or the service have one)")
    try:
        record = json.loads(text[RECORD_KEY])
    except json.JSONDecodeError:
        raise InvalidArgumentError(f"{flag}: the generation record in {path} is not valid JSON") from None
    if not isinstance(record, dict) or not isinstance(record.get("request"), dict):
        raise InvalidArgumentError(f"{flag}: the generation record in {path} has no request")
    return record
