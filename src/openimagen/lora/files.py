"""LoRA adapter files: a folder with ``adapter.safetensors`` (the adapter's tensors only) and ``adapter.json``.

    my_adapter/
      adapter.safetensors   <module>.lora_A.weight (rank, in[, k, k]) and <module>.lora_B.weight (out, rank[, 1, 1])
      adapter.json          {"format": "openimagen-lora", "version": 1, "stage": "stage0_base",
                             "base_weights_sha256": "<SHA-256 of the base stage's model.safetensors>",
                             "lora": {"rank": 4, "alpha": 4.0, "dropout": 0.0, "targets": ["attention", "text"]},
                             "modules": ["down.1.attn.to_qkv", ...], "peft_version": "...", "source": {...}}

The base model is never written: an adapter names the exact weights it was trained on by their hash, and loading
it onto other weights is refused. Both files are written atomically; ``adapter.json`` is checked by the project's
one validating mechanism (pydantic) when read.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Optional

import torch
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from openimagen.errors import ModelLoadError
from openimagen.lora.config import LoraSettings
from openimagen.pipeline.io import file_sha256, load_weights, read_json, save_weights, write_json
from openimagen.validation import checked

FORMAT = "openimagen-lora"
META_NAME, TENSORS_NAME = "adapter.json", "adapter.safetensors"
_KEY = re.compile(r"^(?P<module>[\w.]+)\.lora_(?:A|B)\.weight$")


class AdapterMeta(BaseModel):
    """What ``adapter.json`` holds (types checked when read)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["openimagen-lora"] = FORMAT
    version: Literal[1] = 1
    stage: StrictStr                                          # the base model's stage folder, e.g. stage0_base
    base_weights_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    lora: LoraSettings
    modules: Annotated[tuple[StrictStr, ...], Field(min_length=1)]
    peft_version: StrictStr = ""
    source: dict = Field(default_factory=dict)                # lineage: the run, its step, the base model's path


class Adapter:
    """A read adapter: its folder, metadata, tensors and the SHA-256 of its tensor file (for records)."""

    def __init__(self, path: Path, meta: AdapterMeta, tensors: dict[str, torch.Tensor], sha256: str):
        self.path, self.meta, self.tensors, self.sha256 = path, meta, tensors, sha256

    @property
    def num_bytes(self) -> int:
        return (self.path / TENSORS_NAME).stat().st_size


def save_adapter(folder, tensors: dict[str, torch.Tensor], meta: AdapterMeta,
                 dtype: Optional[torch.dtype] = None) -> Path:
    """Write ``tensors`` (adapter tensors only) and ``meta`` into ``folder`` (created); returns the folder."""
    folder = Path(folder).expanduser()
    bad = [k for k in tensors if not _KEY.match(k)]
    if bad:
        raise ValueError(f"not an adapter tensor: {bad[0]}")
    save_weights(folder / TENSORS_NAME, tensors, dtype)
    write_json(folder / META_NAME, meta.model_dump(mode="json"))
    return folder


def read_adapter(path) -> Adapter:
    """Read an adapter folder (or its ``adapter.json``/``adapter.safetensors``); :class:`ModelLoadError` in one
    line when it is missing, malformed, or holds tensors other than its modules' A and B matrices."""
    folder = Path(path).expanduser()
    if folder.is_file() and folder.name in (META_NAME, TENSORS_NAME):
        folder = folder.parent
    if not folder.is_dir():
        raise ModelLoadError(f"LoRA adapter {folder} does not exist (expected a folder with {META_NAME} and "
                             f"{TENSORS_NAME}, as `openimagen export RUN -o DIR` writes for a LoRA run)")
    if not (folder / META_NAME).is_file():
        if (folder / "pipeline.json").is_file():
            raise ModelLoadError(f"{folder} is a model directory, not a LoRA adapter; pass it as --model")
        raise ModelLoadError(f"{folder} is not a LoRA adapter: it has no {META_NAME}")
    meta = checked(lambda: AdapterMeta.model_validate(read_json(folder / META_NAME)), ModelLoadError,
                   None, str(folder / META_NAME))
    tensors = load_weights(folder / TENSORS_NAME)
    modules = set(meta.modules)
    for key in tensors:
        m = _KEY.match(key)
        if m is None or m.group("module") not in modules:
            raise ModelLoadError(f"{folder / TENSORS_NAME} holds {key!r}, which is not an A or B matrix of the "
                                 f"modules its {META_NAME} lists")
    return Adapter(folder, meta, tensors, file_sha256(folder / TENSORS_NAME))
