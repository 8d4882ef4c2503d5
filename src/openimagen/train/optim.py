"""Optimiser, learning-rate schedule and EMA of the weights.

The learning rate is a pure function of the step (linear warm-up, then constant or cosine decay to
``min_lr`` at ``max_steps``), so the "scheduler state" of a checkpoint is its step alone.

EMA (Polyak averaging; Imagen and DDPM sample from the EMA weights): a float32 shadow of every
parameter and floating buffer, ``ema <- decay * ema + (1 - decay) * w`` after each optimiser step.
"""
from __future__ import annotations

import math

import torch

from openimagen.train.config import RunConfig


def build_optimiser(params, cfg: RunConfig) -> torch.optim.Optimizer:
    o = cfg.optimiser
    params = [p for p in params if p.requires_grad]
    if o.name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(params, lr=o.lr, weight_decay=o.weight_decay, scale_parameter=False, relative_step=False,
                         warmup_init=False)
    return torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)


def lr_at(cfg: RunConfig, step: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based): warm-up, then constant or cosine to ``min_lr``."""
    o = cfg.optimiser
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    if o.decay == "constant":
        return o.lr
    span = max(1, cfg.max_steps - o.warmup_steps)
    progress = min(1.0, (step - o.warmup_steps) / span)
    return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1 + math.cos(math.pi * progress))


def set_lr(optimiser: torch.optim.Optimizer, lr: float) -> None:
    for group in optimiser.param_groups:
        group["lr"] = lr


class EMA:
    """Float32 exponential moving average of a module's parameters and floating buffers, by name."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in _floating(module).items()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        current = _floating(module)
        names = list(self.shadow)
        ema, now = [self.shadow[k] for k in names], [current[k].detach().float() for k in names]
        torch._foreach_lerp_(ema, now, 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = sorted(set(self.shadow) - set(state))
        if missing:
            raise KeyError(f"EMA state lacks {len(missing)} tensors (e.g. {missing[0]})")
        self.shadow = {k: state[k].to(self.shadow[k].device, torch.float32).clone() for k in self.shadow}


def _floating(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in module.state_dict(keep_vars=True).items() if v.is_floating_point()}
