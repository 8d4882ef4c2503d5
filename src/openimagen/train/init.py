"""Start a training run from a trained stage (fine-tuning): ``init: {model: DIR or default, stage: NAME}``.

NAME is one of the model's stage folders, those only its variants use included (the default model's
``stage0_base_student4``); without it, the main cascade's stage that makes the run's resolution.

The stage's weights are loaded into the new run's network before training (its EMA starts from them too); its
U-Net, schedule, parameterization and resolutions must equal the run's ``stage`` section (a ConfigError lists
every field that differs), and its model's text encoder the run's. The source folder is only read: the run
folder must lie outside it. The source and the SHA-256 of its weights file are written to the run's log and
kept in ``run_config.json`` (the lineage).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import torch

from openimagen.errors import ConfigError
from openimagen.pipeline.config import PipelineConfig, StageConfig
from openimagen.pipeline.io import (CONFIG_NAME, PIPELINE_NAME, WEIGHTS_NAME, check_model_dir,
                                    config_error_as_load_error, file_sha256, load_weights, read_json)
from openimagen.pipeline.pipeline import DEFAULT_MODEL_DIR
from openimagen.train.checkpoint import stage_differences
from openimagen.train.config import RunConfig


def source_dir(cfg: RunConfig) -> Path:
    return DEFAULT_MODEL_DIR if cfg.init.model == "default" else Path(cfg.init.model).expanduser()


def _stage_name(root: Path, pipeline: PipelineConfig, stage: StageConfig, asked, field: str = "init.stage") -> str:
    if asked is not None:
        folders = list(dict.fromkeys([*pipeline.stages, *(s for v in pipeline.variants.values() for s in v)]))
        if asked not in folders:
            raise ConfigError(f"{field} {asked!r} is not a stage of {root} (its stages, its variants' included: "
                              f"{', '.join(folders)})")
        return asked
    for name in pipeline.stages:
        cfg = StageConfig.from_dict(read_json(root / name / CONFIG_NAME))
        if (cfg.resolution, cfg.lowres_resolution) == (stage.resolution, stage.lowres_resolution):
            return name
    raise ConfigError(f"no stage of {root} makes {stage.resolution}px images"
                      + (f" from {stage.lowres_resolution}px" if stage.lowres_resolution else "")
                      + "; set init.stage")


@dataclass
class InitSource:
    """The trained stage a run starts from: its weights and where they came from (the run's lineage)."""

    weights: dict[str, torch.Tensor]
    model: Path                   # the model directory
    stage: str                    # its stage folder
    weights_sha256: str           # SHA-256 of that stage's model.safetensors (a LoRA adapter's base hash)
    config: Optional[StageConfig] = None    # that stage's own config (its U-Net may be shallower than the run's)

    def describe(self) -> str:
        return f"initialised from {self.model / self.stage} (weights sha256 {self.weights_sha256[:16]})"

    def to_dict(self) -> dict:
        """JSON-ready lineage (kept in every checkpoint's state.json as ``init``)."""
        return {"model": str(self.model), "stage": self.stage, "weights_sha256": self.weights_sha256}


def init_weights(cfg: RunConfig, stage: StageConfig, run_dir: Path, folder: Optional[str] = None,
                 field: str = "init.stage", grow: bool = False) -> InitSource:
    """The network weights the run starts from, and where they came from: init.model's stage folder ``folder``
    (default: init.stage, else the stage of the run's resolution), checked against ``stage``. ConfigError (naming
    ``field``, the setting that chose the folder) for a folder the model does not have or a different stage.
    ``grow``: ``stage``'s U-Net may have more ResBlocks per level than the source's (``unet.num_res_blocks``,
    each entry >= the source's; a deeper distillation student, :func:`grown_blocks`)."""
    root = check_model_dir(source_dir(cfg))
    if run_dir.resolve() == root.resolve() or root.resolve() in run_dir.resolve().parents:
        raise ConfigError(f"the run folder {run_dir} lies inside init.model {root}; the source model is only read, "
                          f"so choose an --out outside it")
    pipeline = config_error_as_load_error(root / PIPELINE_NAME, PipelineConfig.from_dict,
                                          read_json(root / PIPELINE_NAME))
    if pipeline.text_encoder != cfg.text.encoder and {pipeline.text_encoder, cfg.text.encoder} != {"default",
                                                                                                    "minilm-l6-v2"}:
        raise ConfigError(f"init.model {root} was trained with text encoder {pipeline.text_encoder!r} but the run "
                          f"uses text.encoder {cfg.text.encoder!r}; they must be the same")
    name = _stage_name(root, pipeline, stage, cfg.init.stage if folder is None else folder, field)
    source = config_error_as_load_error(root / name / CONFIG_NAME, StageConfig.from_dict,
                                        read_json(root / name / CONFIG_NAME))
    if grow:
        check_growth(source.unet.num_res_blocks, stage.unet.num_res_blocks, f"{root}/{name}")
        stage = replace(stage, unet=replace(stage.unet, num_res_blocks=source.unet.num_res_blocks))
    diffs = stage_differences(source.to_dict(), stage.to_dict(), ("init", "run"), "stage.")
    if diffs:
        raise ConfigError(f"init.model {root}/{name} is a different stage than the run's; set these in the run's "
                          f"stage section to match: " + "; ".join(diffs))
    weights = root / name / WEIGHTS_NAME
    return InitSource(load_weights(weights), root, name, file_sha256(weights), source)


def check_growth(source_blocks: tuple[int, ...], run_blocks: tuple[int, ...], source: str) -> None:
    """ConfigError unless ``run_blocks`` (ResBlocks per level of the run's U-Net) has the source's levels and at least
    its blocks on each: a deeper network can start from a shallower one (:func:`grown_blocks`), never the reverse."""
    if len(run_blocks) != len(source_blocks) or any(r < s for r, s in zip(run_blocks, source_blocks)):
        raise ConfigError(f"stage.unet num_res_blocks {list(run_blocks)} cannot start from {source}'s "
                          f"{list(source_blocks)}: it needs the same number of levels and at least as many ResBlocks "
                          f"on each")


def grown_blocks(source_blocks: tuple[int, ...], run_blocks: tuple[int, ...]) -> tuple[str, ...]:
    """State-dict prefixes of the ResBlocks that a U-Net with ``run_blocks`` ResBlocks per level has beyond one with
    ``source_blocks`` (each DBlock's and UBlock's extra blocks come after its own, so every source tensor keeps its
    name): ``("down.1.res.2.", "up.1.res.2.", ...)``. Empty when they are equal."""
    n = len(run_blocks)
    out = []
    for level in range(n):
        for j in range(source_blocks[level], run_blocks[level]):
            out += [f"down.{level}.res.{j}.", f"up.{n - 1 - level}.res.{j}."]
    return tuple(out)


def zero_grown_blocks(net: torch.nn.Module, prefixes: tuple[str, ...]) -> None:
    """Make the ResBlocks named by ``prefixes`` (:func:`grown_blocks`) identities: their last convolution (weights
    and bias) set to zero, so that ``block(x) = x + conv2(...) = x`` and the grown network computes exactly what the
    source computed (function-preserving growth, as in Net2Net's deeper networks, Chen et al. 2016, Sec. 2.3, with
    the residual form's zero branch instead of an identity convolution). The blocks' other weights keep their
    random initialisation, so the zero branch receives gradients from the first step."""
    modules = dict(net.named_modules())
    with torch.no_grad():
        for prefix in prefixes:
            for p in modules[prefix.rstrip(".") + ".conv2"].parameters():
                p.zero_()
