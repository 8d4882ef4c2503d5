"""The cascade: prompt(s) in, images out (Imagen, Saharia et al. 2022, Fig. A.4).

A frozen text encoder embeds the prompts once; the base stage samples a small image; each super-resolution
stage upsamples the previous stage's output. Seeds: image k of a call (prompts in order, each repeated
``num_images_per_prompt`` times) draws all its noise, in every stage, from its own generator seeded with
``seed + k``. So an image depends on its prompt and seed only, not on the batch it was made in.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from openimagen.diffusion.cond import Cond
from openimagen.errors import ConfigError, InvalidArgumentError, ModelLoadError, check_choice, is_int_at_least
from openimagen.pipeline.config import PipelineConfig, SamplingConfig
from openimagen.pipeline.io import (PIPELINE_NAME, check_model_dir, config_error_as_load_error, read_json,
                                    write_json)
from openimagen.pipeline.stage import Stage
from openimagen.samplers import SAMPLERS, generators_from_seeds
from openimagen.text import TextEncoder, load_text_encoder

PerStage = Union[None, int, float, str, Sequence]
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "default"


@dataclass
class PipelineOutput:
    images: list                                            # PIL images of the last stage run
    stages: list = field(default_factory=list)              # per stage: (B, C, R, R) tensor in [-1, 1]
    timings: dict = field(default_factory=dict)             # seconds: "text", "stage0", "stage1", ..., "total"
    seeds: list = field(default_factory=list)               # seed of each image


def to_pil(images: torch.Tensor) -> list:
    """(B, 3, H, W) in [-1, 1] -> PIL RGB images."""
    arr = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(a)) for a in arr]


def make_grid(images: list, cols: Optional[int] = None) -> Image.Image:
    """PIL images of one size -> one grid image, ``cols`` per row (default: about square)."""
    cols = max(1, min(cols or math.ceil(math.sqrt(len(images))), len(images)))
    rows = math.ceil(len(images) / cols)
    w, h = images[0].size
    grid = Image.new("RGB", (cols * w, rows * h), "white")
    for k, im in enumerate(images):
        grid.paste(im, ((k % cols) * w, (k // cols) * h))
    return grid


def _per_stage(value: PerStage, n: int, name: str) -> list:
    if value is None or isinstance(value, (int, float, str)):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise InvalidArgumentError(f"{name} has {len(value)} values but the cascade has {n} stages")
    return value


class Pipeline:
    def __init__(self, text_encoder: TextEncoder, stages: Sequence[Stage], config: PipelineConfig):
        if not stages:
            raise InvalidArgumentError("a pipeline needs at least one stage")
        if stages[0].config.is_super_resolution:
            raise ModelLoadError("the first stage of a cascade must be a base (text-to-image) stage")
        for i, (prev, st) in enumerate(zip(stages, stages[1:]), start=1):
            if not st.config.is_super_resolution:
                raise ModelLoadError(f"stage {i} is a base stage; only the first stage of a cascade may be one")
            if st.config.lowres_resolution != prev.config.resolution:
                raise ModelLoadError(f"stage {i} upsamples {st.config.lowres_resolution}px images but stage {i - 1} "
                                     f"makes {prev.config.resolution}px images")
        for st in stages:
            if st.config.unet.text_dim != text_encoder.dim:
                raise ModelLoadError(f"text encoder {text_encoder.encoder_id} has width {text_encoder.dim} but a stage "
                                     f"expects {st.config.unet.text_dim}")
        self.text_encoder, self.stages, self.config = text_encoder, list(stages), config

    # --- persistence ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path=None, *, device: str = "cpu", dtype: torch.dtype = torch.float32,
                        text_encoder: Optional[TextEncoder] = None) -> "Pipeline":
        if path is None:
            if not (DEFAULT_MODEL_DIR / PIPELINE_NAME).is_file():
                raise ModelLoadError(f"the shipped default model is missing from {DEFAULT_MODEL_DIR} (a broken "
                                     f"install?); reinstall openimagen or pass a model directory")
            path = DEFAULT_MODEL_DIR
        root = check_model_dir(path)
        cfg = config_error_as_load_error(root / PIPELINE_NAME, PipelineConfig.from_dict, read_json(root / PIPELINE_NAME))
        stages = [Stage.load(root / name).to(device=device, dtype=dtype).eval() for name in cfg.stages]
        if text_encoder is None:
            text_encoder = load_text_encoder(cfg.text_encoder, max_length=cfg.max_length, device=device)
        return cls(text_encoder, stages, cfg)

    def save_pretrained(self, path, dtype: Optional[torch.dtype] = None) -> Path:
        root = Path(path)
        for name, stage in zip(self.config.stages, self.stages):
            stage.save(root / name, dtype)
        write_json(root / PIPELINE_NAME, self.config.to_dict())
        return root

    # --- generation ------------------------------------------------------------------------------
    @property
    def resolutions(self) -> list[int]:
        return [s.config.resolution for s in self.stages]

    def encode(self, prompts: list[str]) -> Cond:
        emb = self.text_encoder.encode(prompts)
        drop = torch.tensor([p.strip() == "" for p in prompts], dtype=torch.bool, device=emb.tokens.device)
        return Cond(text=emb.tokens.float(), mask=emb.mask, drop=drop)

    @torch.no_grad()
    def __call__(self, prompts: Union[str, Sequence[str]], num_images_per_prompt: int = 1, steps: PerStage = None,
                 guidance: PerStage = None, sampler: PerStage = None, seed: int = 0,
                 stop_at_stage: Optional[int] = None, callback: Optional[Callable] = None,
                 size: Optional[int] = None, aug_level: PerStage = None, batch_invariant: bool = True) -> PipelineOutput:
        """Generate images. ``steps``/``guidance``/``sampler``/``aug_level``: one value for every stage, a list with
        one per stage, or None for each stage's default. ``callback(stage, step, sigma, x, x0_hat)`` per step.
        ``batch_invariant=False`` batches the network over all images: faster, but the last bits of an image may
        then depend on the batch it is in."""
        prompts = self._check_prompts(prompts, num_images_per_prompt)
        last = self._check_stop(stop_at_stage)
        if size is not None and size != self.stages[last].config.resolution:
            raise InvalidArgumentError(f"this model makes {self.stages[last].config.resolution}x"
                                       f"{self.stages[last].config.resolution} images (stage resolutions "
                                       f"{self.resolutions}); got size {size}")
        sampling = self.sampling_configs(sampler=sampler, steps=steps, guidance=guidance, aug_level=aug_level)
        t0 = time.perf_counter()
        cond = self.encode(prompts)
        out = PipelineOutput(images=[], seeds=[seed + k for k in range(len(prompts))])
        out.timings["text"] = time.perf_counter() - t0
        generators = generators_from_seeds(out.seeds)
        x = None
        for i, stage in enumerate(self.stages[: last + 1]):
            ts = time.perf_counter()
            cb = None if callback is None else (lambda step, s, xt, d, i=i: callback(i, step, s, xt, d))
            x = stage.sample(cond, generators, sampling[i], lowres=x, callback=cb, batch_invariant=batch_invariant)
            out.stages.append(x)
            out.timings[f"stage{i}"] = time.perf_counter() - ts
        out.images = to_pil(x)
        out.timings["total"] = time.perf_counter() - t0
        return out

    def sampling_configs(self, sampler: PerStage = None, steps: PerStage = None, guidance: PerStage = None,
                         aug_level: PerStage = None) -> list[SamplingConfig]:
        """Each stage's sampling config with the overrides of a call applied (same arguments as ``__call__``)."""
        n = len(self.stages)
        return [self._sampling(st.config.sampling, sm, stp, g, a) for st, sm, stp, g, a in
                zip(self.stages, _per_stage(sampler, n, "sampler"), _per_stage(steps, n, "steps"),
                    _per_stage(guidance, n, "guidance"), _per_stage(aug_level, n, "aug_level"))]

    # --- argument checks (one-line errors, before any work) ---------------------------------------
    @staticmethod
    def _check_prompts(prompts, num_images_per_prompt) -> list[str]:
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts) if prompts is not None else []
        if not prompts:
            raise InvalidArgumentError("no prompts given (an empty string \"\" asks for an unconditional image)")
        bad = [p for p in prompts if not isinstance(p, str)]
        if bad:
            raise InvalidArgumentError(f"prompts must be strings, got {type(bad[0]).__name__}")
        if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise InvalidArgumentError(f"num_images_per_prompt must be an integer >= 1, got {num_images_per_prompt!r}")
        return [p for p in prompts for _ in range(num_images_per_prompt)]

    def _check_stop(self, stop_at_stage) -> int:
        n = len(self.stages)
        if stop_at_stage is None:
            return n - 1
        if not isinstance(stop_at_stage, int) or not 0 <= stop_at_stage < n:
            raise InvalidArgumentError(f"stop_at_stage must be an integer in 0..{n - 1}, got {stop_at_stage!r}")
        return stop_at_stage

    @staticmethod
    def _sampling(default: SamplingConfig, sampler, steps, guidance, aug_level) -> SamplingConfig:
        changes = {k: v for k, v in (("sampler", sampler), ("steps", steps), ("guidance", guidance),
                                     ("aug_level", aug_level)) if v is not None}
        if sampler is not None:
            check_choice("sampler", sampler, SAMPLERS)
        if "steps" in changes and not is_int_at_least(steps, 1):
            raise InvalidArgumentError(f"steps must be an integer >= 1, got {steps!r}")
        if "guidance" in changes and not (isinstance(guidance, (int, float)) and guidance >= 0):
            raise InvalidArgumentError(f"guidance must be a number >= 0, got {guidance!r}")
        try:
            return replace(default, **changes).validate()
        except ConfigError as e:
            raise InvalidArgumentError(str(e)) from None
