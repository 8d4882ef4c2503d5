"""The cascade: prompt(s) in, images out (Imagen, Saharia et al. 2022, Fig. A.4).

A frozen text encoder embeds the prompts once; the base stage samples a small image; each super-resolution
stage upsamples the previous stage's output. Seeds: image k of a call (prompts in order, each repeated
``num_images_per_prompt`` times) draws all its noise, in every stage, from its own generator seeded with
``seed + k``. So an image depends on its prompt and seed only, not on the batch it was made in.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from openimagen.diffusion.cond import Cond
from openimagen.errors import GenerationError, InvalidArgumentError, ModelLoadError
from openimagen.pipeline.config import PipelineConfig, SamplingConfig
from openimagen.pipeline.io import (CONFIG_NAME, PIPELINE_NAME, WEIGHT_DTYPES, check_model_dir,
                                    config_error_as_load_error, read_json, tensors_sha256, write_json)
from openimagen.pipeline.request import GenerationRequest
from openimagen.pipeline.stage import NetTransform, Stage
from openimagen.safety.watermark import Watermark
from openimagen.samplers import generators_from_seeds
from openimagen.text import TextEncoder, load_text_encoder
from openimagen.text.hf import resolve_device

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "default"


@dataclass
class PipelineOutput:
    """What a call made, and exactly how."""

    images: list                                            # PIL images of the last stage run
    stages: list = field(default_factory=list)              # per stage: (B, C, R, R) float32 tensor in [-1, 1]
    timings: dict = field(default_factory=dict)             # seconds: "text", "stage0", "stage1", ..., "total"
    seeds: list = field(default_factory=list)               # seed of each image
    request: Optional[GenerationRequest] = None             # the validated request
    settings: list = field(default_factory=list)            # the SamplingConfig each stage ran with (resolved)
    model_hash: str = ""                                    # Pipeline.model_hash of the model that ran
    edit: Optional[dict] = None                             # img2img / upscale: mode, strength, first stage run
    loras: list = field(default_factory=list)               # the LoRA adapters that ran: name, stage, scale, sha256
    variant: Optional[str] = None                           # the model's named alternative cascade that ran, if one

    def record(self, k: int) -> dict:
        """JSON-ready record that re-creates image ``k``: openimagen version, model hash and the request for that
        image alone with every per-stage setting explicit (``GenerationRequest.from_dict(record["request"])``)."""
        from openimagen import __version__

        used = {a["name"]: a["scale"] for a in self.loras}
        record = {"openimagen_version": __version__, "model_hash": self.model_hash,
                  "request": self.request.for_image(k, self.settings, used).to_dict()}
        if self.loras:                                      # the adapter files by hash, to re-create it
            record["loras"] = self.loras
        if self.variant is not None:                        # the model's named alternative cascade that ran
            record["variant"] = self.variant
        if self.edit is not None:                           # made from a user's image: not re-creatable alone
            record["edit"] = self.edit
        return record


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


def check_dtype(dtype) -> torch.dtype:
    """``dtype`` if it is one a network runs in (float32, float16, bfloat16), else InvalidArgumentError."""
    if dtype not in WEIGHT_DTYPES:
        raise InvalidArgumentError(f"dtype must be torch.float32, torch.float16 or torch.bfloat16, got {dtype!r}")
    return dtype


class Pipeline:
    """The cascade. ``watermark``: the invisible mark put on every output image (``out.images``; the raw stage
    tensors ``out.stages`` are unmarked); None turns it off. Default: :class:`~openimagen.safety.Watermark`."""

    def __init__(self, text_encoder: TextEncoder, stages: Sequence[Stage], config: PipelineConfig,
                 watermark: Union[Watermark, None, str] = "default"):
        if not stages:
            raise InvalidArgumentError("a pipeline needs at least one stage")
        if stages[0].config.is_super_resolution:
            raise ModelLoadError("the first stage of a cascade must be a base (text-to-image) stage", stage=0)
        for i, (prev, st) in enumerate(zip(stages, stages[1:]), start=1):
            if not st.config.is_super_resolution:
                raise ModelLoadError(f"stage {i} is a base stage; only the first stage of a cascade may be one",
                                     stage=i)
            if st.config.lowres_resolution != prev.config.resolution:
                raise ModelLoadError(f"stage {i} upsamples {st.config.lowres_resolution}px images but stage {i - 1} "
                                     f"makes {prev.config.resolution}px images", stage=i)
        for i, st in enumerate(stages):
            if st.config.unet.text_dim != text_encoder.dim:
                raise ModelLoadError(f"text encoder {text_encoder.encoder_id} has width {text_encoder.dim} but a stage "
                                     f"expects {st.config.unet.text_dim}", stage=i)
        self.text_encoder, self.stages, self.config = text_encoder, list(stages), config
        self.watermark: Optional[Watermark] = Watermark() if watermark == "default" else watermark
        self._model_hash: Optional[str] = None
        self.variant: Optional[str] = None                 # set by from_pretrained(variant=...)
        from openimagen.lora.manager import LoraAdapters

        self.loras = LoraAdapters(self)                    # LoRA adapters loaded onto the stages, and the active set

    # --- persistence ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path=None, *, device: str = "cpu", dtype: torch.dtype = torch.float32,
                        text_encoder: Optional[TextEncoder] = None,
                        transform: Optional[NetTransform] = None,
                        watermark: Union[Watermark, None, str] = "default",
                        variant: Optional[str] = None) -> "Pipeline":
        """Load a model directory (default: the shipped default model). ``dtype`` (float32, float16, bfloat16) is the
        networks' precision; sampling state stays float32. ``transform(net) -> net`` is applied to each stage's
        network after its weights are loaded (LoRA, quantization). ``watermark``: see the class docstring.
        ``variant``: one of pipeline.json's named alternative cascades (e.g. the default model's ``"fast"``, its
        distilled base student then its SR stage at 4 steps, and ``"gan-sr"``, its base then a 2-step SR stage);
        ModelLoadError names the variants there are."""
        check_dtype(dtype)
        device = resolve_device(device)
        if path is None:
            if not (DEFAULT_MODEL_DIR / PIPELINE_NAME).is_file():
                raise ModelLoadError(f"the shipped default model is missing from {DEFAULT_MODEL_DIR} (a broken "
                                     f"install?); reinstall openimagen or pass a model directory")
            path = DEFAULT_MODEL_DIR
        root = check_model_dir(path)
        full = config_error_as_load_error(root / PIPELINE_NAME, PipelineConfig.from_dict,
                                          read_json(root / PIPELINE_NAME))
        cfg = config_error_as_load_error(root / PIPELINE_NAME, full.variant, variant)
        stages = [Stage.load(root / name, transform).to(device=device, dtype=dtype).eval() for name in cfg.stages]
        for stage, defaults in zip(stages, full.stage_sampling(variant)):     # the variant's own sampling defaults
            if defaults:
                stage.config = replace(stage.config, sampling=replace(stage.config.sampling, **defaults))
        if text_encoder is None:
            text_encoder = load_text_encoder(cfg.text_encoder, max_length=cfg.max_length, device=device)
        try:
            pipe = cls(text_encoder, stages, cfg, watermark=watermark)
            pipe.variant = variant
            return pipe
        except ModelLoadError as e:             # the cascade's stages disagree: name the file of the stage at fault
            if e.stage is None:
                raise
            raise ModelLoadError(f"{root / cfg.stages[e.stage] / CONFIG_NAME}: {e}") from None

    def save_pretrained(self, path, dtype: Optional[torch.dtype] = None) -> Path:
        """Write the model directory (configs as JSON, weights as safetensors in ``dtype``: None keeps each
        stage's, or float32/float16/bfloat16)."""
        if dtype is not None:
            check_dtype(dtype)
        root = Path(path)
        for name, stage in zip(self.config.stages, self.stages):
            stage.save(root / name, dtype)
        write_json(root / PIPELINE_NAME, self.config.to_dict())
        return root

    # --- generation ------------------------------------------------------------------------------
    @property
    def resolutions(self) -> list[int]:
        return [s.config.resolution for s in self.stages]

    @property
    def model_hash(self) -> str:
        """A short hash (16 hex) of what makes this model: the pipeline and stage configs and each stage's weights
        (the SHA-256 of the weights file it was loaded from, or of its tensors if built in code). Computed once;
        code that changes a stage's weights in place afterwards calls :meth:`weights_changed`."""
        if self._model_hash is None:
            self._model_hash = self._compute_model_hash()
        return self._model_hash

    def weights_changed(self) -> None:
        """Forget the cached :attr:`model_hash` (after changing weights in place)."""
        self._model_hash = None

    def _compute_model_hash(self) -> str:
        h = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True).encode())
        for st in self.stages:
            h.update(json.dumps(st.config.to_dict(), sort_keys=True).encode())
            h.update((st.weights_sha256 or tensors_sha256(st.denoiser.net.state_dict())).encode())
        return h.hexdigest()[:16]

    def encode(self, prompts: Sequence[str], negative_prompts: Optional[Sequence[str]] = None,
               batch_invariant: bool = False) -> Cond:
        """Text conditioning of each image: (B, L, D) tokens and (B, L) mask; ``drop`` flags empty prompts (the null
        text). With ``negative_prompts`` (one per image) the cond carries them for guidance's other branch.

        Each distinct text is encoded once. ``batch_invariant``: one encoder call per text (batch of 1), so its
        tokens have the same bits whatever else is in the call; otherwise all texts go in one batch (faster)."""
        texts = list(prompts) + list(negative_prompts or [])
        unique = list(dict.fromkeys(texts))
        if batch_invariant:
            embs = [self.text_encoder.encode([u]) for u in unique]
            tokens, mask = torch.cat([e.tokens for e in embs]), torch.cat([e.mask for e in embs])
        else:
            emb = self.text_encoder.encode(unique)
            tokens, mask = emb.tokens, emb.mask
        row = {u: i for i, u in enumerate(unique)}
        idx = torch.tensor([row[t] for t in texts], device=tokens.device)
        tokens, mask = tokens.float()[idx], mask[idx]
        empty = torch.tensor([t.strip() == "" for t in texts], dtype=torch.bool, device=tokens.device)
        b = len(prompts)
        cond = Cond(text=tokens[:b], mask=mask[:b], drop=empty[:b])
        if negative_prompts is None:
            return cond
        return replace(cond, neg_text=tokens[b:], neg_mask=mask[b:], neg_drop=empty[b:])

    @torch.no_grad()
    def __call__(self, prompts: Union[str, Sequence[str], GenerationRequest, None] = None, *,
                 callback: Optional[Callable] = None, **settings) -> PipelineOutput:
        """Generate images: ``pipe(prompts, negative_prompt=..., steps=..., guidance=..., seed=...)`` builds a
        :class:`GenerationRequest` from the keyword arguments (its fields; per-stage settings take one value or one
        per stage), ``pipe(request)`` runs one. ``callback(stage, step, sigma, x, x0_hat)`` sees every step.

        Raises :class:`InvalidArgumentError` (or :class:`UnknownNameError`) naming the bad field, before any work;
        :class:`GenerationError` if a stage produces non-finite values (broken weights or settings)."""
        if isinstance(prompts, GenerationRequest):
            if settings:
                raise InvalidArgumentError(f"pass a GenerationRequest or keyword settings, not both "
                                           f"(got {', '.join(sorted(settings))})")
            request = prompts
        else:
            request = GenerationRequest(prompts=prompts, **settings)
        return self.generate(request, callback)

    def resolve(self, request: GenerationRequest) -> list[SamplingConfig]:
        """The sampling settings each stage that runs would use for ``request`` (see ``GenerationRequest.resolve``)."""
        return request.resolve([st.config.sampling for st in self.stages], self.resolutions)

    def sampling_configs(self, **overrides) -> list[SamplingConfig]:
        """Every stage's sampling settings with per-stage ``overrides`` applied (request fields such as ``sampler``,
        ``steps``, ``guidance``, ``aug_level``), validated as a request's are."""
        return self.resolve(GenerationRequest(prompts=("",), **overrides))

    max_batch_images = 32      # a request for more images runs in chunks of this many (bounded memory)

    def generate(self, request: GenerationRequest, callback: Optional[Callable] = None) -> PipelineOutput:
        """Run a validated request through the cascade (``__call__`` without the argument handling). More than
        ``max_batch_images`` images run in chunks of that many, in order (image k keeps seed + k and its prompt),
        so memory stays bounded whatever the request asks for; the callback then sees each chunk's steps."""
        n, chunk = request.num_images, self.max_batch_images
        if n <= chunk:
            return self.generate_batch([request], callback)[0]
        neg, prompts = request.image_negative_prompts, request.image_prompts
        parts = []
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            part = request.model_copy(update={"prompts": tuple(prompts[a:b]), "num_images_per_prompt": 1,
                                              "seed": request.seed + a,
                                              "negative_prompt": None if neg is None else tuple(neg[a:b])})
            parts.append(self.generate_batch([part], callback)[0])
        timings = {k: sum(p.timings[k] for p in parts) for k in parts[0].timings}
        return PipelineOutput(images=[im for p in parts for im in p.images],
                              stages=[torch.cat([p.stages[i] for p in parts]) for i in range(len(parts[0].stages))],
                              timings=timings, seeds=request.seeds, request=request, settings=parts[0].settings,
                              model_hash=self.model_hash, loras=parts[0].loras, variant=self.variant)

    def batch_key(self, request: GenerationRequest) -> tuple:
        """What requests must share to run in one :meth:`generate_batch` call: ``(settings, batch_invariant,
        loras)``, the resolved per-stage settings, the mode, and the LoRA adapters with their scales."""
        loras = tuple(sorted(self.loras.resolve(request.loras).items()))
        return tuple(self.resolve(request)), request.batch_invariant, loras

    def generate_batch(self, requests: Sequence[GenerationRequest],
                       callback: Optional[Callable] = None) -> list[PipelineOutput]:
        """Run several requests as one batch (the serving worker's call), one output per request.

        The requests must have equal :meth:`batch_key` (settings, ``batch_invariant``, LoRA adapters;
        :class:`InvalidArgumentError` otherwise); prompts, negative prompts and seeds stay each image's own, so
        each output is what ``generate(request)`` makes: bit for bit in batch-invariant mode, otherwise within
        the rounding that batch composition changes (README, "Reproducibility"). A request without a negative
        prompt gets the null text "", which gives the plain call's estimate. ``callback(stage, step, sigma, x,
        x0_hat)`` sees the whole batch, requests in order."""
        if not requests:
            raise InvalidArgumentError("generate_batch needs at least one request")
        key = self.batch_key(requests[0])
        for i, r in enumerate(requests[1:], start=1):
            if self.batch_key(r) != key:
                raise InvalidArgumentError(f"request {i} resolves to other sampling settings, batch_invariant or LoRA "
                                           f"adapters than request 0; only requests with equal ones can share a batch")
        settings, loras = list(key[0]), dict(key[2])
        invariant = requests[0].batch_invariant
        prompts = [p for r in requests for p in r.image_prompts]
        negatives = None
        if any(r.negative_prompt is not None for r in requests):
            negatives = [n for r in requests for n in (r.image_negative_prompts or [""] * r.num_images)]
        t0 = time.perf_counter()
        cond = self.encode(prompts, negatives, invariant)
        t_text = time.perf_counter() - t0
        generators = generators_from_seeds([s for r in requests for s in r.seeds])
        xs, timings = self.run_stages(cond, generators, settings, invariant, callback, loras=loras)
        images = self.mark(to_pil(xs[-1]))
        timings = {"text": t_text, **timings, "total": time.perf_counter() - t0}
        outs, start = [], 0
        for r in requests:
            sl = slice(start, start + r.num_images)
            outs.append(PipelineOutput(images=images[sl], stages=[t[sl] for t in xs], timings=dict(timings),
                                       seeds=r.seeds, request=r, settings=settings, model_hash=self.model_hash,
                                       loras=self.loras.describe(loras), variant=self.variant))
            start += r.num_images
        return outs

    def run_stages(self, cond: Cond, generators, settings: Sequence[SamplingConfig], batch_invariant: bool,
                   callback: Optional[Callable] = None, first: int = 0,
                   sample: Optional[Callable] = None, loras: Optional[dict] = None) -> tuple[list, dict]:
        """Run stages ``first``..``len(settings) - 1``, each on the previous one's output: ``(xs, timings)``, the
        stage outputs (B, C, R, R) float32 in [-1, 1] and seconds per stage. ``sample(i, stage, sampling, lowres,
        callback)`` replaces a stage's plain ``Stage.sample`` where it returns a tensor (the editing modes);
        ``loras`` (name -> scale): exactly these LoRA adapters run (None: the active set, ``self.loras.active``).
        :class:`GenerationError` if a stage makes NaN or inf."""
        with self.loras.using(loras):
            return self._run_stages(cond, generators, settings, batch_invariant, callback, first, sample)

    def _run_stages(self, cond, generators, settings, batch_invariant, callback, first, sample):
        x, xs, timings = None, [], {}
        for i in range(first, len(settings)):
            ts = time.perf_counter()
            cb = None if callback is None else (lambda step, s, xt, d, i=i: callback(i, step, s, xt, d))
            stage, sampling = self.stages[i], settings[i]
            out = None if sample is None else sample(i, stage, sampling, x, cb)
            x = out if out is not None else stage.sample(cond, generators, sampling, lowres=x, callback=cb,
                                                         batch_invariant=batch_invariant)
            if not torch.isfinite(x).all():
                raise GenerationError(f"stage {i} ({self.config.stages[i]}) produced non-finite values (NaN or "
                                      f"inf): its weights or settings are broken; no image was written")
            xs.append(x)
            timings[f"stage{i}"] = time.perf_counter() - ts
        return xs, timings

    # --- LoRA adapters (openimagen.lora) -------------------------------------------------------------------
    def load_lora(self, path, scale: float = 1.0, stage=None, name: Optional[str] = None) -> str:
        """Load a LoRA adapter folder onto its stage and activate it with ``scale``; returns its name. Refused
        (ModelLoadError) when it was trained on other weights. See :class:`openimagen.lora.LoraAdapters`."""
        return self.loras.load(path, scale, stage, name)

    def set_loras(self, scales: dict) -> None:
        """Make exactly ``scales`` (adapter name -> scale) the adapters that run by default."""
        self.loras.set(scales)

    def unload_lora(self, name: Optional[str] = None) -> None:
        """Remove one adapter (default: all); the stages' original layers are put back."""
        self.loras.unload(name)

    def fuse_lora(self) -> None:
        """Merge the active adapters into the weights for speed (originals kept; :meth:`unfuse_lora` restores them
        bit for bit)."""
        self.loras.fuse()

    def unfuse_lora(self) -> None:
        self.loras.unfuse()

    def img2img(self, images, prompts=None, *, strength: float = 0.6, fit: str = "center_crop",
                callback: Optional[Callable] = None, **settings) -> PipelineOutput:
        """Image-to-image (SDEdit): see :func:`openimagen.edit.img2img`."""
        from openimagen.edit import img2img

        return img2img(self, images, prompts, strength=strength, fit=fit, callback=callback, **settings)

    def inpaint(self, images, mask, prompts=None, *, callback: Optional[Callable] = None,
                **settings) -> PipelineOutput:
        """Inpainting (white mask = repaint): see :func:`openimagen.edit.inpaint`."""
        from openimagen.edit import inpaint

        return inpaint(self, images, mask, prompts, callback=callback, **settings)

    def outpaint(self, images, prompts=None, *, border: int = 8, callback: Optional[Callable] = None,
                 **settings) -> PipelineOutput:
        """Outpainting: see :func:`openimagen.edit.outpaint`."""
        from openimagen.edit import outpaint

        return outpaint(self, images, prompts, border=border, callback=callback, **settings)

    def upscale(self, images, prompts="", *, stage: int = 1, fit: str = "center_crop",
                callback: Optional[Callable] = None, **settings) -> PipelineOutput:
        """Super-resolution of user images with the SR stages: see :func:`openimagen.edit.upscale`."""
        from openimagen.edit import upscale

        return upscale(self, images, prompts, stage=stage, fit=fit, callback=callback, **settings)

    def restore(self, images, kind: str, prompts="", *, callback: Optional[Callable] = None,
                **settings) -> PipelineOutput:
        """Restoration of degraded images (denoise, deblur, jpeg, scratches): see :func:`openimagen.edit.restore`."""
        from openimagen.edit import restore

        return restore(self, images, kind, prompts, callback=callback, **settings)

    def mark(self, images: list) -> list:
        """``images`` with this pipeline's watermark (unchanged when it has none)."""
        return images if self.watermark is None else [self.watermark.embed(im) for im in images]
