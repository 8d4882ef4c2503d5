"""The run config of one cascade-stage training run: one YAML or TOML file -> typed dataclasses.

Every key is checked: an unknown or mistyped key, or a value of the wrong type, is a :class:`ConfigError`
that names the dotted key (``unknown key 'optimiser.lrr' (valid: betas, decay, ...)``). The resolved config
(defaults filled in, the U-Net preset expanded) is written to every run folder and every checkpoint.

    seed: 0
    max_steps: 2000
    stage: {resolution: 32, unet: {preset: small-cpu}, param: {name: v}}
    data: {path: data/shapes}
    text: {encoder: default, max_length: 16}
    train: {batch_size: 32, ema_decay: 0.999}
    optimiser: {lr: 1.0e-3, warmup_steps: 100}

See ``configs/`` for complete examples and :class:`RunConfig` for every field.
"""
from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from openimagen.diffusion.loss import WEIGHTINGS
from openimagen.diffusion.parameterization import ParamConfig
from openimagen.diffusion.schedules import ScheduleConfig
from openimagen.errors import ConfigError
from openimagen.nn import UNetConfig, get_preset
from openimagen.pipeline.config import SamplingConfig, StageConfig
from openimagen.validation import checked

PRECISIONS = ("fp32", "bf16", "fp16")
OPTIMISERS = ("adamw", "adafactor")
DECAYS = ("cosine", "constant")
STRATEGIES = ("ddp", "fsdp")
BACKENDS = ("auto", "nccl", "gloo")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class UNetSection:
    preset: Optional[str] = None                  # a name from openimagen.nn.PRESETS ...
    overrides: dict = field(default_factory=dict)  # ... with these UNetConfig fields replaced
    config: Optional[dict] = None                 # or a full UNetConfig (instead of preset)


@dataclass(frozen=True)
class StageSection:
    resolution: int = 64                          # output side of the stage (images are loaded at this size)
    lowres_resolution: Optional[int] = None       # set: a super-resolution stage from this size
    unet: UNetSection = field(default_factory=UNetSection)
    schedule: dict = field(default_factory=dict)  # ScheduleConfig fields (name, logsnr_min, logsnr_max, shift)
    param: dict = field(default_factory=dict)     # ParamConfig fields (name: eps | v | edm, sigma_data)
    sampling: dict = field(default_factory=dict)  # SamplingConfig fields: the exported stage's defaults


@dataclass(frozen=True)
class DataSection:
    path: str = ""                                # folder, .jsonl/.csv manifest, or a build_image_cache folder
    resize: str = "center_crop"                   # center_crop | pad
    caption_mode: str = "primary"                 # primary | per_epoch (one caption variant per epoch)
    min_size: int = 0                             # skip images whose shorter side is smaller
    verify: bool = True                           # decode every image at start (false: header check only)
    crop_size: Optional[int] = None               # SR only: train on random crops of this side (Imagen 1024px)
    num_workers: int = 0                          # DataLoader worker processes


@dataclass(frozen=True)
class TextSection:
    encoder: str = "default"                      # "default" (MiniLM) or a local Hugging Face encoder directory
    max_length: int = 32                          # tokens per caption
    cache_dir: Optional[str] = None               # fp16 embedding cache; default RUN/text_embeddings


@dataclass(frozen=True)
class OptimiserSection:
    name: str = "adamw"                           # adamw | adafactor
    lr: float = 1e-4                              # peak learning rate
    betas: tuple[float, ...] = (0.9, 0.999)       # AdamW betas
    eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_steps: int = 0                         # linear warm-up from 0 to lr
    decay: str = "constant"                       # after warm-up: constant | cosine (to min_lr at max_steps)
    min_lr: float = 0.0
    grad_clip: float = 1.0                        # max global grad norm; 0 disables clipping


@dataclass(frozen=True)
class TrainSection:
    batch_size: int = 32                          # per rank and micro-batch; global = batch_size x world x grad_accum
    grad_accum: int = 1                           # micro-batches per optimiser step
    ema_decay: float = 0.9999                     # 0 disables EMA (the EMA then equals the weights)
    text_drop_prob: float = 0.1                   # classifier-free guidance: drop the text this often
    weighting: str = "native"                     # native | min_snr | snr+1
    min_snr_gamma: float = 5.0
    aug_max: float = 0.5                          # SR: noise augmentation level t_aug ~ U[0, aug_max]


@dataclass(frozen=True)
class LogSection:
    log_every: int = 10                           # steps between metrics.jsonl / TensorBoard rows
    sample_every: int = 0                         # steps between sample grids (0: never)
    checkpoint_every: int = 1000                  # steps between checkpoints (one is always written at the end)
    keep_last: int = 3                            # checkpoints kept
    sample_prompts: tuple[str, ...] = ("a red circle", "a blue square")
    sample_seed: int = 0                          # image k of a grid uses seed sample_seed + k
    sample_steps: Optional[int] = None            # sampler steps of the grids (default: stage.sampling.steps)
    tensorboard: bool = True
    progress: bool = True                         # tqdm bar


@dataclass(frozen=True)
class DistributedSection:
    strategy: str = "ddp"                         # ddp | fsdp (shards parameters, grads, optimiser state)
    backend: str = "auto"                         # auto (nccl on GPU, gloo on CPU) | nccl | gloo


@dataclass(frozen=True)
class RunConfig:
    stage: StageSection = field(default_factory=StageSection)
    data: DataSection = field(default_factory=DataSection)
    text: TextSection = field(default_factory=TextSection)
    optimiser: OptimiserSection = field(default_factory=OptimiserSection)
    train: TrainSection = field(default_factory=TrainSection)
    log: LogSection = field(default_factory=LogSection)
    distributed: DistributedSection = field(default_factory=DistributedSection)
    seed: int = 0
    max_steps: int = 1000
    precision: str = "fp32"                       # fp32 | bf16 | fp16 (autocast on GPU; CPU always trains fp32)
    device: str = "auto"                          # auto | cpu | cuda
    out: str = "runs/run"                         # run folder (``--out`` overrides)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: Any) -> "RunConfig":
        cfg = _build(cls, d, "")
        cfg.validate()
        return cfg

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    @property
    def is_super_resolution(self) -> bool:
        return self.stage.lowres_resolution is not None

    def stage_config(self) -> StageConfig:
        """The :class:`StageConfig` this run trains (the U-Net preset expanded, image_size = resolution)."""
        st = self.stage
        try:
            if st.unet.config is not None:
                unet = UNetConfig.from_dict({"image_size": st.resolution, **st.unet.config})
            else:
                unet = get_preset(st.unet.preset, **{"image_size": st.resolution, **st.unet.overrides})
        except ConfigError as e:
            raise ConfigError(f"stage.unet: {e}") from None
        parts = {}
        for name, cls in (("schedule", ScheduleConfig), ("param", ParamConfig), ("sampling", SamplingConfig)):
            parts[name] = _build(cls, getattr(st, name), f"stage.{name}.")
        try:
            return StageConfig(unet=unet, resolution=st.resolution, lowres_resolution=st.lowres_resolution,
                               **parts).validate()
        except ConfigError as e:
            raise ConfigError(f"stage: {e}") from None

    def validate(self) -> "RunConfig":
        checks = [("precision", self.precision, PRECISIONS), ("device", self.device, DEVICES),
                  ("optimiser.name", self.optimiser.name, OPTIMISERS), ("optimiser.decay", self.optimiser.decay, DECAYS),
                  ("train.weighting", self.train.weighting, WEIGHTINGS),
                  ("distributed.strategy", self.distributed.strategy, STRATEGIES),
                  ("distributed.backend", self.distributed.backend, BACKENDS),
                  ("data.resize", self.data.resize, ("center_crop", "pad")),
                  ("data.caption_mode", self.data.caption_mode, ("primary", "per_epoch"))]
        for key, value, valid in checks:
            if value not in valid:
                raise ConfigError(f"{key} must be one of {', '.join(valid)}; got {value!r}")
        positive = [("max_steps", self.max_steps), ("train.batch_size", self.train.batch_size),
                    ("train.grad_accum", self.train.grad_accum), ("log.log_every", self.log.log_every),
                    ("log.checkpoint_every", self.log.checkpoint_every), ("log.keep_last", self.log.keep_last),
                    ("text.max_length", self.text.max_length), ("stage.resolution", self.stage.resolution)]
        for key, value in positive:
            if value < 1:
                raise ConfigError(f"{key} must be >= 1, got {value}")
        for key, value, lo, hi in (("train.text_drop_prob", self.train.text_drop_prob, 0, 1),
                                   ("train.ema_decay", self.train.ema_decay, 0, 1),
                                   ("train.aug_max", self.train.aug_max, 0, 1)):
            if not lo <= value < hi:
                raise ConfigError(f"{key} must be in [{lo}, {hi}), got {value}")
        if self.optimiser.lr <= 0 or self.optimiser.min_lr < 0 or self.optimiser.grad_clip < 0:
            raise ConfigError("optimiser.lr must be > 0, optimiser.min_lr and optimiser.grad_clip >= 0")
        if len(self.optimiser.betas) != 2:
            raise ConfigError(f"optimiser.betas must hold two numbers, got {list(self.optimiser.betas)}")
        if not self.data.path:
            raise ConfigError("data.path is required (a folder, a .jsonl/.csv manifest or an image cache folder)")
        if not self.log.sample_prompts and not self.is_super_resolution and self.log.sample_every:
            raise ConfigError("log.sample_prompts is empty but log.sample_every asks for sample grids")
        unet = self.stage.unet
        if (unet.preset is None) == (unet.config is None):
            raise ConfigError("stage.unet needs exactly one of 'preset' (with optional 'overrides') or 'config'")
        self._check_crop()
        self.stage_config()
        return self

    def _check_crop(self) -> None:
        c, st = self.data.crop_size, self.stage
        if c is None:
            return
        if st.lowres_resolution is None:
            raise ConfigError("data.crop_size is for super-resolution stages (set stage.lowres_resolution)")
        if not 0 < c <= st.resolution or (c * st.lowres_resolution) % st.resolution:
            raise ConfigError(f"data.crop_size {c} must be in (0, {st.resolution}] and give a whole low-res crop "
                              f"(crop_size * {st.lowres_resolution} / {st.resolution})")


# ------------------------------------------------------------------------------------------ reading files
class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-4`` as a string; read every float literal as a float, as YAML 1.2 and TOML do."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*(?:\.\d*)?[eE][-+]?\d+|\.\d+[eE][-+]?\d+)$"),  # 1e-4, 2.5E+3, .5e-2
    list("-+0123456789."))


def read_config_file(path) -> dict:
    """Parse a ``.yaml``/``.yml`` or ``.toml`` file into a dict (no checks yet)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif p.suffix.lower() in (".yaml", ".yml"):
            data = yaml.load(text, Loader=_Loader)
        elif p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"config file {p} must end in .yaml, .yml or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{p} is not valid {p.suffix[1:].upper()}: {str(e).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must hold a mapping of keys at the top level, got {type(data).__name__}")
    return data


def load_config(path, **overrides) -> RunConfig:
    """Read and check a run config file; ``overrides`` replace top-level keys (e.g. ``max_steps``, ``out``)."""
    data = read_config_file(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return RunConfig.from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


# ------------------------------------------------------------------------------------------ typed building
def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None)) + " or null"
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0])}s"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping"}.get(
        tp, str(tp))


def _convert(value, tp, key: str, expected: str = ""):
    """``value`` as type ``tp`` or a ConfigError naming ``key`` and the expected type."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(value, inner, key, _type_name(tp))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".")
    ok = {int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          str: isinstance(value, str), bool: isinstance(value, bool), dict: isinstance(value, dict)}.get(tp)
    if origin is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(_convert(v, typing.get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(value))
        ok = False
    if not ok:
        raise ConfigError(f"key '{key}' must be {expected or _type_name(tp)}, got {value!r} ({type(value).__name__})")
    return float(value) if tp is float else value


def _build(cls, d: Any, prefix: str):
    """Build dataclass ``cls`` from a mapping, naming every unknown key and wrong type with its dotted path."""
    if not isinstance(d, dict):
        where = f"'{prefix[:-1]}'" if prefix else "the config"
        raise ConfigError(f"{where} must be a mapping, got {d!r} ({type(d).__name__})")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in d:
        if key not in names:
            raise ConfigError(f"unknown key '{prefix}{key}' (valid: {', '.join(sorted(names))})")
    values = {k: _convert(v, hints[k], prefix + k) for k, v in d.items()}
    return checked(lambda: cls(**values), ConfigError, values, prefix[:-1])
