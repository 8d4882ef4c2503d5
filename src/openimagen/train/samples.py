"""Sample grids during training, from the EMA weights, with fixed prompts and seeds (rank 0).

A base stage samples ``log.sample_prompts``. A super-resolution stage needs low-res inputs: it upsamples the
antialiased downsamples of the first examples of the run's data order (step 0's batch), with their captions;
the grid's first row shows those inputs (nearest-neighbour enlarged), the second row the stage's outputs.
Image k of a grid uses seed ``log.sample_seed + k``, so grids of different steps are comparable.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from openimagen.diffusion.cond import Cond
from openimagen.pipeline import Stage, to_pil
from openimagen.samplers import generators_from_seeds
from openimagen.train.data import epoch_permutation
from openimagen.train.step import downsample

SR_EXAMPLES = 4


class SampleMaker:
    def __init__(self, trainer):
        cfg, self.trainer = trainer.cfg, trainer
        self.stage = Stage(trainer.stage_config)
        if cfg.lora is not None:                     # the same adapted network as the trainer's, EMA copied in
            from openimagen.train.lora import add_lora

            add_lora(self.stage.denoiser.net, cfg.lora)
        self.stage = self.stage.to(trainer.dist.device).eval()
        sampling = trainer.stage_config.sampling
        self.sampling = replace(sampling, steps=cfg.log.sample_steps or sampling.steps)
        self.lowres = None
        if trainer.stage_config.is_super_resolution:
            ds = trainer.dataset
            first = epoch_permutation(cfg.seed, 0, len(ds))[:SR_EXAMPLES].tolist()
            items = [ds[i] for i in first]
            images = torch.stack([it["image"] for it in items])                       # (k, 3, R, R)
            self.lowres = downsample(images, trainer.stage_config.lowres_resolution)  # (k, 3, r, r)
            self.prompts = [it["caption"] for it in items]
        else:
            self.prompts = list(cfg.log.sample_prompts)

    @torch.no_grad()
    def grid(self, step: int, ema: dict[str, torch.Tensor]):
        t = self.trainer
        net = self.stage.denoiser.net
        for k, v in net.state_dict().items():
            if k in ema:
                v.copy_(ema[k].to(v.device, v.dtype))
        tokens, mask = t.table.lookup(self.prompts, dtype=torch.float32)
        dev = t.dist.device
        cond = Cond(text=tokens.to(dev), mask=mask.to(dev), drop=torch.zeros(len(self.prompts), dtype=torch.bool,
                                                                               device=dev))
        gens = generators_from_seeds([t.cfg.log.sample_seed + k for k in range(len(self.prompts))])
        lowres = None if self.lowres is None else self.lowres.to(dev)
        x = self.stage.sample(cond, gens, self.sampling, lowres=lowres, batch_invariant=False)
        images = to_pil(x)
        if lowres is not None:
            r = self.stage.config.resolution
            images = [im.resize((r, r), 0) for im in to_pil(lowres)] + images  # 0 = nearest
        return t.monitor.save_samples(step, images, cols=len(self.prompts))
