"""Training a LoRA adapter (Hu et al. 2021) on a trained stage, and exporting it as an adapter folder.

A run config with a ``lora`` section (and ``init.model``, the stage it adapts) injects one adapter, named
:data:`TRAIN_ADAPTER`, into the stage's network through peft before training; only its A and B matrices require
gradients, so the optimiser holds only them and the base weights stay exactly as loaded (checkpoints keep them
beside the adapter so that a run resumes on its own). ``openimagen export RUN -o DIR`` of such a run writes the
adapter alone (EMA weights): ``adapter.safetensors`` + ``adapter.json`` naming the base stage's weights hash.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import nn

from openimagen.errors import ConfigError, ModelLoadError
from openimagen.lora import layers
from openimagen.lora.config import LoraSettings
from openimagen.lora.files import META_NAME, AdapterMeta, save_adapter
from openimagen.pipeline import Stage
from openimagen.pipeline.io import load_state_into
from openimagen.train.checkpoint import EMA, Checkpoint, run_dir_of
from openimagen.train.export import check_export_target

TRAIN_ADAPTER = "lora"


def add_lora(net: nn.Module, settings: LoraSettings) -> list[str]:
    """Inject the run's adapter into ``net``; afterwards only adapter parameters require gradients."""
    return layers.add_adapter(net, TRAIN_ADAPTER, settings)


def check_same_lora(ckpt: Checkpoint, settings: Optional[LoraSettings]) -> None:
    """ConfigError when resuming a checkpoint with other LoRA settings (or with / without LoRA) than it was
    trained with: its tensors would not fit."""
    old = ckpt.state.get("run_config", {}).get("lora")
    new = None if settings is None else settings.to_dict()
    if old != new:
        raise ConfigError(f"checkpoint {ckpt.path} was trained with lora {old} but the config has lora {new}; "
                          f"resume with the run's own lora section")


def is_lora_run(ckpt: Checkpoint) -> bool:
    return ckpt.state.get("run_config", {}).get("lora") is not None


def export_adapter(run, out, *, fp16: bool = False, overwrite: bool = False) -> Path:
    """Write the LoRA adapter of run (or checkpoint) ``run`` to the folder ``out``: the EMA values of its A and B
    matrices only, and ``adapter.json`` naming the base stage and its weights' SHA-256."""
    ckpt = Checkpoint.read(run)
    if not is_lora_run(ckpt):
        raise ConfigError(f"{ckpt.path} is not a LoRA run (its config has no lora section)")
    out = Path(out).expanduser()
    check_export_target(out, [run_dir_of(ckpt.path) or ckpt.path], overwrite, META_NAME, "LoRA adapter folder")
    init = ckpt.state.get("init")
    if not init or not init.get("weights_sha256"):
        raise ModelLoadError(f"{ckpt.path} does not record the weights it started from (init); it cannot name the "
                             f"base an adapter needs")
    settings = LoraSettings(**ckpt.state["run_config"]["lora"])
    stage = Stage(ckpt.stage_config())
    net = stage.denoiser.net
    modules = add_lora(net, settings)
    load_state_into(net, ckpt.tensors(EMA), ckpt.path / EMA)
    import peft

    meta = AdapterMeta(stage=init["stage"], base_weights_sha256=init["weights_sha256"], lora=settings,
                       modules=tuple(modules), peft_version=peft.__version__,
                       source={"run": str(ckpt.path), "step": ckpt.step, "base_model": init.get("model", "")})
    return save_adapter(out, layers.adapter_state(net, TRAIN_ADAPTER), meta, torch.float16 if fp16 else None)
