"""Assemble trained stage runs into a pipeline directory that ``Pipeline.from_pretrained`` and
``openimagen generate --model`` load: ``pipeline.json`` plus one folder per stage holding its EMA weights.

    export_pipeline(["runs/base", "runs/sr"], "models/mine")        # base first, then each SR stage
    export_pipeline(["models/default/stage0_base", "runs/sr-gan"], "models/mixed")   # a stage of a model, too

The stages must chain (a super-resolution stage's low-res side equals the previous stage's resolution) and
share one text encoder (same encoder, same max_length).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch

from openimagen.errors import ConfigError
from openimagen.pipeline import PipelineConfig, Stage
from openimagen.pipeline.config import StageConfig
from openimagen.pipeline.io import (CONFIG_NAME, PIPELINE_NAME, WEIGHTS_NAME, config_error_as_load_error,
                                    folder_written_whole, load_state_into, load_weights, read_json, write_json)
from openimagen.text.registry import DEFAULT_NAMES
from openimagen.train.checkpoint import EMA, Checkpoint, run_dir_of
from openimagen.validation import checked


class StageFolder:
    """A stage folder of an exported model directory (``MODEL_DIR/stage1_sr``), usable wherever export takes a
    run, so that a cascade can mix stages of a model with newly trained ones (e.g. the shipped base with a
    refined SR stage). Offers what export reads of a :class:`Checkpoint`: ``path``, ``stage_config()``,
    ``state["run_config"]["text"]`` (from the model's ``pipeline.json``) and the weights as ``tensors(EMA)``."""

    def __init__(self, path):
        self.path = Path(path).expanduser()
        pipeline = read_json(self.path.parent / PIPELINE_NAME)
        self._config = config_error_as_load_error(self.path / CONFIG_NAME, StageConfig.from_dict,
                                                  read_json(self.path / CONFIG_NAME))
        self.state = {"run_config": {"text": {"encoder": pipeline.get("text_encoder", "default"),
                                              "max_length": pipeline.get("max_length")}}}
        self.step = f"as in {self.path.parent.name}"
        self.source = self.path.parent           # what export must never overwrite

    @staticmethod
    def is_one(path) -> bool:
        p = Path(path).expanduser()
        return (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file() and (p.parent / PIPELINE_NAME).is_file()

    def stage_config(self) -> StageConfig:
        return self._config

    def tensors(self, name: str) -> dict:
        return load_weights(self.path / WEIGHTS_NAME)


def read_source(path):
    """A run or checkpoint folder (:class:`Checkpoint`), or a model's stage folder (:class:`StageFolder`)."""
    return StageFolder(path) if StageFolder.is_one(path) else Checkpoint.read(path)


def _encoder_key(spec: str) -> str:
    return "default" if spec.lower() in DEFAULT_NAMES else str(Path(spec).expanduser().resolve())


def check_chain(ckpts: list[Checkpoint]) -> tuple[str, int]:
    """ConfigError unless the runs form a cascade with one text encoder; returns (encoder spec, max_length)."""
    if not ckpts:
        raise ConfigError("export needs at least one run")
    configs = [c.stage_config() for c in ckpts]
    if configs[0].is_super_resolution:
        raise ConfigError(f"the first run ({ckpts[0].path}) is a super-resolution stage; list the base stage first")
    for i, (prev, cur) in enumerate(zip(configs, configs[1:]), start=1):
        if not cur.is_super_resolution:
            raise ConfigError(f"run {i + 1} ({ckpts[i].path}) is a base stage; only the first stage may be one")
        if cur.lowres_resolution != prev.resolution:
            raise ConfigError(f"run {i + 1} ({ckpts[i].path}) upsamples {cur.lowres_resolution}px images but the "
                              f"previous stage makes {prev.resolution}px images")
    texts = [c.state["run_config"]["text"] for c in ckpts]
    keys = {(_encoder_key(t["encoder"]), t["max_length"]) for t in texts}
    if len(keys) > 1:
        listed = ", ".join(f"{t['encoder']} (max_length {t['max_length']})" for t in texts)
        raise ConfigError(f"the runs use different text encoders: {listed}")
    dims = {c.unet.text_dim for c in configs}
    if len(dims) > 1:
        raise ConfigError(f"the stages expect different text widths: {sorted(dims)}")
    return texts[0]["encoder"], texts[0]["max_length"]


def parse_sampling(spec: str) -> dict:
    """``"steps=32,guidance=2"`` -> ``{"steps": 32, "guidance": 2.0}``: SamplingConfig fields, typed and checked."""
    import typing

    from openimagen.pipeline import SamplingConfig

    types = typing.get_type_hints(SamplingConfig)        # without extras: the plain int, float or str of each field
    out = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in types:
            raise ConfigError(f"bad sampling default {item!r}: expected KEY=VALUE with KEY one of "
                              f"{', '.join(types)}")
        key, kind = key.strip(), types[key.strip()]
        try:
            out[key] = int(value) if kind in (int, "int") else float(value) if kind in (float, "float") else value
        except ValueError:
            what = "an integer" if kind in (int, "int") else "a number"
            raise ConfigError(f"bad sampling default {item!r}: {key} takes {what}") from None
    checked(lambda: replace(SamplingConfig(), **out), ConfigError, out, "bad sampling default")
    return out


def check_export_target(out: Path, sources: list, overwrite: bool, marker: str = PIPELINE_NAME,
                        what: str = "model directory") -> None:
    """ConfigError unless ``out`` may be written: a new or empty folder, or (with ``overwrite``) a ``what`` that
    openimagen wrote (it holds ``marker``); never a folder holding, or inside, one of ``sources``."""
    target = out.resolve()
    for src in sources:
        src = Path(src).resolve()
        if target == src or target in src.parents or src in target.parents:
            raise ConfigError(f"{out} holds or lies inside the run being exported ({src}); write the {what} "
                              f"elsewhere")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; give a folder for the {what}")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(f"{out} exists and is not empty; choose another output folder or pass --overwrite")
        if not (out / marker).is_file():
            raise ConfigError(f"{out} is not a {what} (no {marker}); --overwrite only replaces a {what} "
                              f"openimagen wrote, so choose another output folder")


def export_pipeline(runs, out, *, fp16: bool = False, overwrite: bool = False, description: str = "",
                    sampling: Optional[list] = None) -> Path:
    """Write the cascade of ``runs`` (run folders, checkpoint folders or stage folders of exported models, base
    first) to ``out``; returns ``out``.
    ``sampling``: per stage, a dict of :class:`SamplingConfig` fields that replace the run's sampling defaults
    (chosen from evaluation after training), or None to keep them."""
    out = Path(out).expanduser()
    ckpts = [read_source(r) for r in runs]
    check_export_target(out, [getattr(c, "source", None) or run_dir_of(c.path) or c.path for c in ckpts], overwrite)
    lora = [c.path for c in ckpts if c.state.get("run_config", {}).get("lora") is not None]
    if lora:
        raise ConfigError(f"{lora[0]} is a LoRA run: export it alone as an adapter (openimagen.train.lora."
                          f"export_adapter, or `openimagen export RUN -o ADAPTER_DIR`)")
    encoder, max_length = check_chain(ckpts)
    sampling = list(sampling or [])
    if len(sampling) > len(ckpts):
        raise ConfigError(f"{len(sampling)} sampling overrides for {len(ckpts)} stages")
    sampling += [None] * (len(ckpts) - len(sampling))
    names = [f"stage{i}_{'sr' if c.stage_config().is_super_resolution else 'base'}" for i, c in enumerate(ckpts)]
    with folder_written_whole(out) as tmp:
        for name, ckpt, override in zip(names, ckpts, sampling):
            cfg = ckpt.stage_config()
            if override:
                sampling_cfg = checked(lambda: replace(cfg.sampling, **override), ConfigError, override, "sampling")
                cfg = replace(cfg, sampling=sampling_cfg)
            stage = Stage(cfg)
            load_state_into(stage.denoiser.net, ckpt.tensors(EMA),
                            ckpt.path / (WEIGHTS_NAME if isinstance(ckpt, StageFolder) else EMA))
            stage.save(tmp / name, torch.float16 if fp16 else None)
        spec = encoder if encoder.lower() in DEFAULT_NAMES else _encoder_key(encoder)
        steps = ", ".join(f"{n} {'step ' if isinstance(c.step, int) else ''}{c.step}" for n, c in zip(names, ckpts))
        cfg = PipelineConfig(stages=tuple(names), text_encoder=spec, max_length=max_length,
                             description=description or f"exported from training runs: {steps}")
        write_json(tmp / PIPELINE_NAME, cfg.to_dict())
    return out
