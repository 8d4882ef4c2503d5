"""One cascade stage: a config, its denoiser, and how to sample it.

A base stage samples from text alone; a super-resolution stage also takes the previous stage's output,
upsamples it inside the U-Net, and sees it noise-augmented at a fixed level (Imagen Sec. 2.5, "noise
conditioning augmentation": lowres + s_aug n, with s_aug given to the network).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from openimagen.diffusion.batching import PerSample
from openimagen.diffusion.consistency import LowresConsistency
from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import Denoiser, append_dims
from openimagen.diffusion.guidance import guided
from openimagen.diffusion.schedules import make_schedule, sampling_sigmas
from openimagen.errors import InvalidArgumentError
from openimagen.nn import EfficientUNet, count_parameters
from openimagen.pipeline.config import SamplingConfig, StageConfig
from openimagen.pipeline.io import (CONFIG_NAME, WEIGHTS_NAME, config_error_as_load_error, file_sha256,
                                    load_state_into, load_weights, read_json, save_weights, write_json)
from openimagen.samplers.resampling import with_resampling
from openimagen.samplers import get_sampler, randn

NetTransform = Callable[[nn.Module], nn.Module]


def upsampled_lowres(lowres: torch.Tensor, side: int) -> torch.Tensor:
    """The image an SR stage's SDEdit start noises (``sampling.sr_strength`` < 1): ``lowres`` (B, C, r, r) in
    [-1, 1] bicubic-upsampled to (B, C, side, side) and clamped to [-1, 1]."""
    return F.interpolate(lowres, size=(side, side), mode="bicubic", align_corners=False).clamp(-1, 1)


class Stage(nn.Module):
    """One stage: its config, its denoiser and schedule, and ``sample``.

    ``device`` and ``dtype`` are the network's, held explicitly by the denoiser and updated by ``.to(...)``; the
    sampler's state (noise, x, sigmas, history) stays float32 whatever ``dtype`` is (fp16/bf16 run the network
    only). ``weights_sha256`` is the SHA-256 of the weights file the stage was loaded from (None if built in code).
    """

    def __init__(self, config: StageConfig):
        super().__init__()
        self.config = config.validate()
        self.denoiser = Denoiser(EfficientUNet(config.unet), config.param)
        self.schedule = make_schedule(config.schedule)
        self.weights_sha256: Optional[str] = None

    @property
    def device(self) -> torch.device:
        return self.denoiser.device

    @property
    def dtype(self) -> torch.dtype:
        return self.denoiser.dtype

    @property
    def num_parameters(self) -> int:
        return count_parameters(self.denoiser.net)

    # --- persistence -----------------------------------------------------------------------
    def save(self, folder: Path, dtype: torch.dtype | None = None) -> None:
        folder = Path(folder)
        write_json(folder / CONFIG_NAME, self.config.to_dict())
        save_weights(folder / WEIGHTS_NAME, self.denoiser.net.state_dict(), dtype)

    @classmethod
    def load(cls, folder: Path, transform: Optional[NetTransform] = None) -> "Stage":
        """Read ``config.json`` and ``model.safetensors`` from ``folder`` (strictly: every weight present, none extra,
        shapes matching), then apply ``transform`` to the loaded network: the one hook where later work changes a
        network after its weights are in (LoRA adapters, quantization), ``transform(net) -> net``."""
        folder = Path(folder)
        cfg = config_error_as_load_error(folder / CONFIG_NAME, StageConfig.from_dict, read_json(folder / CONFIG_NAME))
        stage = cls(cfg)
        load_state_into(stage.denoiser.net, load_weights(folder / WEIGHTS_NAME), folder / WEIGHTS_NAME)
        stage.weights_sha256 = file_sha256(folder / WEIGHTS_NAME)
        if transform is not None:
            stage.denoiser.net = transform(stage.denoiser.net)
        return stage

    # --- sampling ----------------------------------------------------------------------------
    def augment_lowres(self, lowres: torch.Tensor, aug_level: float, generators) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise the low-res image to schedule time ``aug_level``: returns (lowres + s_aug n, s_aug)."""
        b = lowres.shape[0]
        s_aug = self.schedule.noise_level(torch.full((b,), float(aug_level), dtype=torch.float64)).float()
        s_aug = s_aug.to(lowres.device)
        if aug_level == 0:
            return lowres, torch.zeros_like(s_aug)
        noise = randn(lowres.shape, generators, lowres.device, lowres.dtype)
        return lowres + append_dims(s_aug, lowres.ndim).to(lowres.dtype) * noise, s_aug

    @torch.no_grad()
    def sample(self, cond: Cond, generators: Sequence[torch.Generator], sampling: SamplingConfig,
               lowres: Optional[torch.Tensor] = None, callback: Optional[Callable] = None,
               t_max: float = 1.0, init: Optional[torch.Tensor] = None, batch_invariant: bool = True,
               wrap: Optional[Callable] = None, resample: Optional[tuple] = None,
               init_noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Sample images in [-1, 1], shape (B, C, R, R). ``init`` with ``t_max < 1`` starts from a noised image:
        ``init + s0 n`` at the grid's first noise level s0; ``init_noise`` (B,), the Gaussian noise level ``init``
        already carries (restoration's noisy photo), makes that ``init + sqrt(max(s0^2 - init_noise^2, 0)) n``.
        A super-resolution stage whose ``sampling.sr_strength`` is below 1 starts, when no ``init``/``t_max`` is
        given, from its bicubic-upsampled low-res input noised to schedule time ``sr_strength`` (SDEdit, Meng et al.
        2022, applied to super-resolution), so an SR stage whose estimates at high noise are still worse than
        bicubic keeps the low-res image's layout and adds detail in the low-noise steps only.
        ``sampling.lowres_consistency`` projects every x0 estimate of an SR stage onto the images whose downsample
        is the clean low-res input (:mod:`openimagen.diffusion.consistency`). ``wrap(denoiser) -> denoiser`` wraps the guided denoiser of the whole batch (inpainting's known region);
        ``resample = (jump_length, jumps)`` adds RePaint's resampling jumps to the sampler
        (:mod:`openimagen.samplers.resampling`).

        ``batch_invariant``: evaluate the network image by image so a seed gives the same bits in any batch
        (see ``openimagen.diffusion.batching``); False batches all images for throughput."""
        b = cond.batch_size
        if len(generators) != b:
            raise InvalidArgumentError(f"need one generator per image: got {len(generators)} for {b} images")
        device, state = self.device, torch.float32                 # the sampler's state stays float32
        if self.config.is_super_resolution:
            if lowres is None:
                raise InvalidArgumentError("a super-resolution stage needs the low-res image")
            r = self.config.lowres_resolution
            if tuple(lowres.shape[-2:]) != (r, r):
                raise InvalidArgumentError(f"this stage upsamples {r}x{r} images, got {tuple(lowres.shape[-2:])}")
            lowres = lowres.to(device, state)
            clean_lowres = lowres
            if init is None and t_max == 1.0 and sampling.sr_strength < 1:
                # SDEdit from the bicubic-upsampled low-res image: start at schedule time sr_strength instead of
                # pure noise (the clean low-res, before augmentation; an explicit init/t_max, img2img's, wins)
                init = upsampled_lowres(lowres, self.config.resolution)
                t_max = sampling.sr_strength
            lowres, s_aug = self.augment_lowres(lowres, sampling.aug_level, generators)
            cond = replace(cond, lowres=lowres, aug_sigma=s_aug)
        cond = cond.map(lambda t: t.to(device=device, dtype=state) if t.is_floating_point() else t.to(device))
        sigmas = sampling_sigmas(self.schedule, sampling.steps, sampling.spacing, t_max=t_max)
        shape = (b, self.config.unet.out_channels, self.config.resolution, self.config.resolution)
        s0 = sigmas[0].to(state)
        if init_noise is not None:
            s0 = append_dims((s0 ** 2 - init_noise.to(device, state) ** 2).clamp(min=0).sqrt(), len(shape))
        x = randn(shape, generators, device, state) * s0
        if init is not None:
            x = x + init.to(device, state)
        den = guided(self.denoiser, sampling.guidance, sampling.threshold, sampling.percentile,
                     embedded=self.config.unet.guidance_cond)
        if batch_invariant and b > 1:
            den = PerSample(den)
        if self.config.is_super_resolution and sampling.lowres_consistency:
            den = LowresConsistency(den, clean_lowres)
        if wrap is not None:
            den = wrap(den)
        sampler = get_sampler(sampling.sampler)
        if resample is not None:
            sampler = with_resampling(sampler, *resample)
        out = sampler(den, x, sigmas, cond=cond, generator=generators, callback=callback)
        return out.clamp(-1, 1)
