"""The run config of one cascade-stage training run: one YAML or TOML file -> typed dataclasses.

Every key is checked: an unknown or mistyped key, or a value of the wrong type, is a :class:`ConfigError`
that names the dotted key (``unknown field 'optimiser.lrr' (valid: betas, decay, ...)``). The resolved config
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
from collections.abc import Hashable
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import yaml
from pydantic import ConfigDict, Field, Strict, StrictBool, StrictStr, TypeAdapter
from pydantic.dataclasses import dataclass

from openimagen.diffusion.loss import WEIGHTINGS
from openimagen.diffusion.parameterization import ParamConfig
from openimagen.diffusion.schedules import ScheduleConfig
from openimagen.errors import ConfigError
from openimagen.lora.config import LoraSettings
from openimagen.nn import UNetConfig, get_preset
from openimagen.pipeline.config import SamplerName, SamplingConfig, StageConfig
from openimagen.configs import dataclass_from_dict
from openimagen.validation import NonNegativeInt, PlainNumber, PositiveInt, checked

PRECISIONS = ("fp32", "bf16", "fp16")
OPTIMISERS = ("adamw", "adafactor")
DECAYS = ("cosine", "constant")
STRATEGIES = ("ddp", "fsdp")
BACKENDS = ("auto", "nccl", "gloo")
DEVICES = ("auto", "cpu", "cuda")


def _one_of(*valid):
    return Literal[valid]


# Field types with their ranges, declared once; pydantic checks them when the config is built (one-line
# ConfigError naming the dotted key, e.g. ``optimiser.lr should be greater than 0, got -1.0``).
Count = PositiveInt
NonNegInt = NonNegativeInt
NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False), PlainNumber, Strict()]
Unit = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False), PlainNumber, Strict()]      # [0, 1)
Side = Annotated[int, Field(ge=1, le=1 << 14), PlainNumber, Strict()]
Bool = StrictBool
Str = StrictStr
CONFIG = ConfigDict(extra="forbid")


@dataclass(frozen=True, config=CONFIG)
class UNetSection:
    preset: Optional[Str] = None                  # a name from openimagen.nn.PRESETS ...
    overrides: dict = field(default_factory=dict)  # ... with these UNetConfig fields replaced
    config: Optional[dict] = None                 # or a full UNetConfig (instead of preset)


@dataclass(frozen=True, config=CONFIG)
class StageSection:
    resolution: Side = 64                         # output side of the stage (images are loaded at this size)
    lowres_resolution: Optional[Side] = None      # set: a super-resolution stage from this size
    unet: UNetSection = field(default_factory=UNetSection)
    schedule: dict = field(default_factory=dict)  # ScheduleConfig fields (name, logsnr_min, logsnr_max, shift)
    param: dict = field(default_factory=dict)     # ParamConfig fields (name: eps | v | edm, sigma_data)
    sampling: dict = field(default_factory=dict)  # SamplingConfig fields: the exported stage's defaults


@dataclass(frozen=True, config=CONFIG)
class DataSection:
    path: Str = ""                                # folder, .jsonl/.csv manifest, or a build_image_cache folder
    resize: _one_of("center_crop", "pad") = "center_crop"
    caption_mode: _one_of("primary", "per_epoch") = "primary"   # per_epoch: one caption variant per epoch
    min_size: NonNegInt = 0                       # skip images whose shorter side is smaller
    verify: Bool = True                           # decode every image at start (false: header check only)
    crop_size: Optional[Side] = None              # SR only: train on random crops of this side (Imagen 1024px)
    num_workers: NonNegInt = 0                    # DataLoader worker processes


@dataclass(frozen=True, config=CONFIG)
class TextSection:
    encoder: Str = "default"                      # "default" (MiniLM) or a local Hugging Face encoder directory
    max_length: Annotated[int, Field(ge=1, le=4096), PlainNumber, Strict()] = 32   # tokens per caption
    cache_dir: Optional[Str] = None               # fp16 embedding cache; default RUN/text_embeddings


@dataclass(frozen=True, config=CONFIG)
class OptimiserSection:
    name: _one_of(*OPTIMISERS) = "adamw"
    lr: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False), PlainNumber, Strict()] = 1e-4   # peak rate
    betas: tuple[Unit, Unit] = (0.9, 0.999)       # AdamW betas, each in [0, 1)
    eps: Annotated[float, Field(gt=0, allow_inf_nan=False), PlainNumber, Strict()] = 1e-8
    weight_decay: NonNeg = 0.0
    warmup_steps: NonNegInt = 0                   # linear warm-up from 0 to lr
    decay: _one_of(*DECAYS) = "constant"          # after warm-up: constant | cosine (to min_lr at max_steps)
    min_lr: NonNeg = 0.0
    grad_clip: NonNeg = 1.0                       # max global grad norm; 0 disables clipping


@dataclass(frozen=True, config=CONFIG)
class TrainSection:
    batch_size: Annotated[int, Field(ge=1, le=1 << 16), PlainNumber, Strict()] = 32   # per rank and micro-batch
    grad_accum: Count = 1                         # micro-batches per optimiser step
    ema_decay: Unit = 0.9999                      # 0 disables EMA (the EMA then equals the weights)
    text_drop_prob: Unit = 0.1                    # classifier-free guidance: drop the text this often
    weighting: _one_of(*WEIGHTINGS) = "native"
    min_snr_gamma: Annotated[float, Field(gt=0, allow_inf_nan=False), PlainNumber, Strict()] = 5.0
    aug_max: Unit = 0.5                           # SR: noise augmentation level t_aug ~ U[0, aug_max]
    compile: Bool = False                         # torch.compile the network's training forward (GPU runs)


@dataclass(frozen=True, config=CONFIG)
class LogSection:
    log_every: Count = 10                         # steps between metrics.jsonl / TensorBoard rows
    sample_every: NonNegInt = 0                   # steps between sample grids (0: never)
    checkpoint_every: Count = 1000                # steps between checkpoints (one is always written at the end)
    keep_last: Count = 3                          # checkpoints kept
    sample_prompts: tuple[Str, ...] = ("a red circle", "a blue square")
    sample_seed: NonNegInt = 0                    # image k of a grid uses seed sample_seed + k
    sample_steps: Optional[Count] = None          # sampler steps of the grids (default: stage.sampling.steps)
    tensorboard: Bool = True
    progress: Bool = True                         # tqdm bar


@dataclass(frozen=True, config=CONFIG)
class DistributedSection:
    strategy: _one_of(*STRATEGIES) = "ddp"        # ddp | fsdp (shards parameters, grads, optimiser state)
    backend: _one_of(*BACKENDS) = "auto"          # auto (nccl on GPU, gloo on CPU) | nccl | gloo


@dataclass(frozen=True, config=CONFIG)
class AdversarialSection:
    """Adversarial refinement of a super-resolution stage (openimagen.train.adversarial): a conditional patch
    discriminator judges the stage's x0 estimates against real images; hinge loss, R1 penalty, spectral norm."""
    weight: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False), PlainNumber, Strict()] = 0.1  # generator's
    r1_gamma: NonNeg = 1.0                        # R1 gradient penalty on real images (Mescheder et al. 2018)
    lr: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False), PlainNumber, Strict()] = 2e-4   # discriminator
    channels: Annotated[int, Field(ge=4, le=1024), PlainNumber, Strict()] = 32   # discriminator width
    spectral_norm: Bool = True                    # spectral normalisation of the discriminator's convolutions
    # what D judges: "estimate", the stage's one-step x0 estimate at the diffusion loss's noise level; "samples",
    # its own few-step DDIM samples started, as it samples, from the bicubic-upsampled low-res image noised to
    # stage.sampling.sr_strength (Adversarial Diffusion Distillation's loss on the student's samples)
    judged: _one_of("estimate", "samples") = "estimate"
    sample_steps: Annotated[int, Field(ge=1, le=8), PlainNumber, Strict()] = 2     # "samples": DDIM steps (backprop)
    # training steps at the start in which only D learns (the generator's adversarial term is off): a D trained
    # against a moving stage from step 1 stayed at chance (docs/EVALUATION.md)
    warmup_steps: NonNegInt = 0


@dataclass(frozen=True, config=CONFIG)
class DistillSection:
    """Distillation of init.model's stage into a student. ``guidance`` (openimagen.train.distill): Meng et al.
    2023's guidance distillation; the run's U-Net needs ``guidance_cond: true`` (stage.unet.overrides).
    ``progressive`` (openimagen.train.progressive): Salimans & Ho 2022, one student DDIM step for two of the
    teacher's; the student samples with ``student_steps`` DDIM steps ("time" spacing) at guidance 1, the teacher
    with twice as many at ``teacher_guidance``. ``trajectory`` (openimagen.train.trajectory): one round from the
    teacher's own sampler, ``teacher_steps`` (a multiple of ``student_steps``; "time" spacing) of
    ``teacher_sampler`` at ``teacher_guidance`` with the stage's thresholding, through a bank of ``trajectories``
    sampled trajectories per rank; the student samples as a progressive one; ``student_forcing`` p: the share of
    the examples past the first step that start from the student's own state instead of the teacher's
    (openimagen.train.trajectory), at the student steps ``student_forcing_steps`` (0-based, each in 1..N-1;
    default: all of them); ``student_forcing_backprop``: their loss also reaches the student's earlier steps
    (backpropagation through its own steps). The student starts as the teacher
    unless ``student_init`` names another stage folder of init.model (a variant's included), such as a student
    trained earlier that a new teacher setting continues; it must be the run's stage like the teacher, except that
    the student's U-Net (the run's) may be deeper than the teacher's and ``student_init``'s
    (more ResBlocks per level, ``stage.unet`` num_res_blocks; the extra blocks start as identities,
    openimagen.train.init.zero_grown_blocks)."""
    kind: _one_of("guidance", "progressive", "trajectory") = "guidance"
    guidance_min: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False), PlainNumber, Strict()] = 0.0
    guidance_max: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False), PlainNumber, Strict()] = 8.0
    student_steps: Annotated[int, Field(ge=1, le=512), PlainNumber, Strict()] = 4          # progressive, trajectory
    teacher_guidance: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False), PlainNumber, Strict()] = 1.0
    teacher_steps: Annotated[int, Field(ge=1, le=1024), PlainNumber, Strict()] = 32       # trajectory only
    teacher_sampler: SamplerName = "dpmpp_2m"                                             # trajectory only
    trajectories: Annotated[int, Field(ge=1, le=10_000_000), PlainNumber, Strict()] = 4096  # trajectory only
    student_forcing: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False), PlainNumber, Strict()] = 0.0
    student_forcing_steps: Optional[tuple[Annotated[int, Field(ge=1, le=511), PlainNumber, Strict()], ...]] = None
    student_forcing_backprop: Bool = False        # forced examples' loss also trains the student's earlier steps
    # trajectory only: a discriminator's loss on the student's N-step samples against the bank's teacher samples
    # (openimagen.train.adversarial_trajectory); 0 = off. Its factor, the rollouts per step, D-only steps at start,
    # and the discriminator's learning rate
    adversarial_weight: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False), PlainNumber, Strict()] = 0.0
    adversarial_samples: Annotated[int, Field(ge=1, le=1024), PlainNumber, Strict()] = 4
    adversarial_warmup_steps: NonNegInt = 0
    adversarial_lr: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False), PlainNumber, Strict()] = 2e-4  # D's Adam
    # trajectory only: distribution matching (DMD, Yin et al. 2024) on the student's N-step samples against the
    # teacher's guided score, through a fake denoiser trained online (openimagen.train.distribution_matching); 0 =
    # off. Its factor, the rollouts per step, fake-only steps at start, the fake denoiser's learning rate and its
    # updates per step
    dm_weight: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False), PlainNumber, Strict()] = 0.0
    dm_samples: Annotated[int, Field(ge=1, le=1024), PlainNumber, Strict()] = 4
    dm_warmup_steps: NonNegInt = 0
    dm_lr: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False), PlainNumber, Strict()] = 1e-4
    dm_fake_steps: Annotated[int, Field(ge=1, le=64), PlainNumber, Strict()] = 1
    # the guidance of the teacher's estimate that the samples are matched to (default: teacher_guidance)
    dm_guidance: Optional[Annotated[float, Field(ge=0, le=100, allow_inf_nan=False), PlainNumber, Strict()]] = None
    student_init: Optional[Str] = None            # a stage folder of init.model the student starts from (default:
    #                                               the teacher, init.stage), e.g. an earlier student to continue


@dataclass(frozen=True, config=CONFIG)
class InitSection:
    """Start from a trained stage instead of random weights (fine-tuning). The stage's U-Net, schedule and
    parameterization must equal the run's ``stage`` section; the source model is only read."""

    model: Optional[Str] = None                   # "default" (the shipped model) or an exported model directory
    stage: Optional[Str] = None                   # its stage folder (default: the stage of the run's resolution)


@dataclass(frozen=True, config=CONFIG)
class RunConfig:
    stage: StageSection = field(default_factory=StageSection)
    data: DataSection = field(default_factory=DataSection)
    text: TextSection = field(default_factory=TextSection)
    optimiser: OptimiserSection = field(default_factory=OptimiserSection)
    train: TrainSection = field(default_factory=TrainSection)
    log: LogSection = field(default_factory=LogSection)
    distributed: DistributedSection = field(default_factory=DistributedSection)
    init: InitSection = field(default_factory=InitSection)
    lora: Optional[LoraSettings] = None           # set: train a LoRA adapter on init.model's stage (Hu et al. 2021)
    adversarial: Optional[AdversarialSection] = None   # set: add a discriminator's loss (SR stages only)
    distill: Optional[DistillSection] = None      # set: distil init.model's stage into this run's student
    seed: NonNegInt = 0
    max_steps: Count = 1000
    # wall-clock budget of this process's training loop, in minutes: past it, finish the step, write a
    # checkpoint and stop as on SIGTERM (resumable); None: no limit. For short GPU windows (openimagen.gpu).
    max_minutes: Optional[Annotated[float, Field(gt=0, allow_inf_nan=False), PlainNumber, Strict()]] = None
    # the same in CPU time of this process (all its threads; time.process_time): a compute budget that other
    # jobs on the machine do not shorten, for comparing recipes at matched compute on a shared CPU
    max_cpu_minutes: Optional[Annotated[float, Field(gt=0, allow_inf_nan=False), PlainNumber, Strict()]] = None
    precision: _one_of(*PRECISIONS) = "fp32"      # fp32 | bf16 | fp16 (autocast on GPU; CPU always trains fp32)
    device: _one_of(*DEVICES) = "auto"            # auto | cpu | cuda
    out: Str = "runs/run"                         # run folder (``--out`` overrides)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: Any) -> "RunConfig":
        """Build and check a run config from a mapping; :class:`ConfigError` (one line, dotted key) if not."""
        if not isinstance(d, dict):
            raise ConfigError(f"the config must be a mapping, got {type(d).__name__}")
        cfg = checked(lambda: TypeAdapter(cls).validate_python(d), ConfigError, d, kind=cls)
        return cfg.validate()

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
            parts[name] = dataclass_from_dict(cls, getattr(st, name), f"stage.{name}")
        try:
            return StageConfig(unet=unet, resolution=st.resolution, lowres_resolution=st.lowres_resolution,
                               **parts).validate()
        except ConfigError as e:
            raise ConfigError(f"stage: {e}") from None

    def validate(self) -> "RunConfig":
        """The checks that span fields (types and ranges are the fields' own)."""
        if self.optimiser.min_lr > self.optimiser.lr:
            raise ConfigError(f"optimiser.min_lr ({self.optimiser.min_lr}) must not exceed optimiser.lr "
                              f"({self.optimiser.lr})")
        if not self.data.path:
            raise ConfigError("data.path is required (a folder, a .jsonl/.csv manifest or an image cache folder)")
        if not self.log.sample_prompts and not self.is_super_resolution and self.log.sample_every:
            raise ConfigError("log.sample_prompts is empty but log.sample_every asks for sample grids")
        if self.init.stage is not None and self.init.model is None:
            raise ConfigError("init.stage needs init.model (\"default\" or an exported model directory)")
        if self.lora is not None and self.init.model is None:
            raise ConfigError("lora adapts a trained stage: set init.model (\"default\" or an exported model "
                              "directory)")
        if self.lora is not None and self.distributed.strategy == "fsdp":
            raise ConfigError("lora trains a few adapter tensors and keeps the base frozen: use distributed.strategy "
                              "ddp (fsdp shards weights it would not train)")
        if self.distill is not None:
            if self.init.model is None:
                raise ConfigError("distill needs the teacher: set init.model (\"default\" or an exported model)")
            if self.distill.kind == "guidance" and not self.stage_config().unet.guidance_cond:
                raise ConfigError("guidance distillation trains a student with a guidance input: set "
                                  "stage.unet.overrides.guidance_cond: true")
            if self.distill.kind in ("progressive", "trajectory"):
                if self.stage_config().unet.guidance_cond:
                    raise ConfigError(f"{self.distill.kind} distillation's student is its teacher's network: remove "
                                      "stage.unet.overrides.guidance_cond")
                sampling = self.stage_config().sampling
                want = {"sampler": "ddim", "steps": self.distill.student_steps, "guidance": 1.0, "spacing": "time"}
                got = {k: getattr(sampling, k) for k in want}
                if got != want:
                    raise ConfigError(f"a {self.distill.kind} student samples as it was trained: set stage.sampling "
                                      f"to {want} (got {got})")
            if self.distill.student_forcing_backprop and not self.distill.student_forcing:
                raise ConfigError("distill.student_forcing_backprop trains through the forced examples' own steps: "
                                  "set distill.student_forcing > 0")
            for name in ("adversarial_weight", "dm_weight", "student_forcing"):
                if self.distill.kind != "trajectory" and getattr(self.distill, name):
                    raise ConfigError(f"distill.{name} is for trajectory distillation, not {self.distill.kind}")
            if self.distill.dm_weight and self.distill.adversarial_weight:
                raise ConfigError("distill.dm_weight and distill.adversarial_weight are two distribution-level terms: "
                                  "set one of them to 0")
            for weight in ("dm_weight", "adversarial_weight"):          # a term's settings while the term is off
                prefix = weight.removesuffix("weight")
                idle = [f.name for f in dataclasses.fields(self.distill) if f.name.startswith(prefix) and
                        f.name != weight and getattr(self.distill, f.name) != f.default]
                if idle and not getattr(self.distill, weight):
                    raise ConfigError(f"distill.{idle[0]} acts only with distill.{weight} > 0 (it is 0): set "
                                      f"{weight}, or remove {', '.join(idle)}")
            bad = [j for j in self.distill.student_forcing_steps or () if j >= self.distill.student_steps]
            if bad:
                raise ConfigError(f"distill.student_forcing_steps must lie in 1..{self.distill.student_steps - 1} "
                                  f"(the student's steps after the first, counted from 0), got {bad[0]}")
            if self.distill.kind == "trajectory" and self.distill.teacher_steps % self.distill.student_steps:
                raise ConfigError(f"distill.teacher_steps ({self.distill.teacher_steps}) must be a multiple of "
                                  f"distill.student_steps ({self.distill.student_steps})")
            if self.distill.guidance_min > self.distill.guidance_max:
                raise ConfigError(f"distill.guidance_min ({self.distill.guidance_min}) must not exceed "
                                  f"distill.guidance_max ({self.distill.guidance_max})")
            if self.adversarial is not None or self.lora is not None:
                raise ConfigError("distill trains a whole student: it does not combine with adversarial or lora")
        if self.adversarial is not None and not self.is_super_resolution:
            raise ConfigError("adversarial refines super-resolution stages: set stage.lowres_resolution")
        if self.adversarial is not None and self.distributed.strategy == "fsdp":
            raise ConfigError("adversarial training runs with distributed.strategy ddp (the discriminator is not "
                              "sharded)")
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
    """YAML 1.1 reads ``1e-4`` as a string; read every float literal as a float, as YAML 1.2 and TOML do. A key
    given twice in one mapping is an error (YAML says keys are unique; PyYAML would keep the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue                                  # left to the constructor, which refuses it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice in one mapping (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep)


class _DuplicateKey(ValueError):
    pass


def _unique_pairs(pairs: list) -> dict:
    """A JSON object's pairs as a dict; _DuplicateKey for a key given twice (json keeps the last silently)."""
    keys = [k for k, _ in pairs]
    twice = next((k for k in keys if keys.count(k) > 1), None)
    if twice is not None:
        raise _DuplicateKey(f"key {twice!r} given twice in one object")
    return dict(pairs)


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
            data = json.loads(text, object_pairs_hook=_unique_pairs)
        else:
            raise ConfigError(f"config file {p} must end in .yaml, .yml or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError, _DuplicateKey) as e:
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

