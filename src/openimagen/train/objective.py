"""The training-objective interface: what the trainer minimises, as one callable over a denoiser.

    loss = objective(denoiser, batch, generator)        # (B,) float, one loss per example

The trainer only ever does this: build a :class:`TrainBatch` from the data, call the objective with the
:class:`~openimagen.diffusion.denoiser.Denoiser` it trains, average, back-propagate, clip, step, update the EMA.
It contains no diffusion math, so a new way of training a stage is a new objective, not a new trainer
(as in EDM's ``training/loss.py``, Karras et al. 2022, and openai/consistency_models).

The contract (:class:`Objective`):

    denoiser   the Denoiser being trained, D(x; sigma, cond) -> x0_hat, around the possibly DDP/FSDP-wrapped
               network. Call it (or its ``net_output``) on the whole micro-batch: under data parallelism the
               gradient sync hangs on that forward pass.
    batch      a :class:`TrainBatch`: real images in [-1, 1] at the resolution trained on, their captions'
               token embeddings and mask (from the frozen text encoder's cache).
    generator  one ``torch.Generator`` for the batch, or a sequence of them, one per example. Every random draw
               comes from it, in a fixed order; with one per example, example k draws from generator k only,
               so a batch split into micro-batches or across ranks draws what the unsplit batch draws, and a
               resumed run draws what the uninterrupted one drew (see :mod:`openimagen.train.data`).
    returns    the per-example loss, shape (B,); the trainer takes the mean.

Implementations:

* :class:`~openimagen.train.step.DiffusionObjective`: the denoising loss of every cascade stage, base or
  super-resolution (Imagen, Saharia et al. 2022), the default.

Extra networks live on the objective object, never in the trainer:

* distillation (guidance distillation, Meng et al. 2023; progressive distillation, Salimans & Ho 2022;
  trajectory distillation, :mod:`openimagen.train.trajectory`): the frozen teacher (and, for trajectory
  distillation, its bank of sampled trajectories) are fields of the objective; the student is the ``denoiser``
  argument, so the trainer's optimiser, EMA and checkpoints apply to the student only.
* adversarial super-resolution: the discriminator is a field of the objective, and ``__call__`` returns the
  generator's loss. The discriminator's own update (its optimiser, gradient sync and checkpoint entry) is
  state the trainer does not have yet: that hook is added with the first objective that needs it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from openimagen.diffusion.denoiser import Denoiser
from openimagen.samplers.noise import Generators


@dataclass(frozen=True, eq=False)
class TrainBatch:
    """One (micro-)batch of training data, on the device the denoiser runs on."""

    image: torch.Tensor   # (B, C, R, R) float in [-1, 1], at the resolution trained on (an SR crop's side)
    text: torch.Tensor    # (B, L, D) float, caption token embeddings of the frozen text encoder
    mask: torch.Tensor    # (B, L) bool, True where a real token is

    def __post_init__(self) -> None:
        shapes = tuple(tuple(t.shape) for t in (self.image, self.text, self.mask))
        if (self.image.ndim, self.text.ndim) != (4, 3) or shapes[2] != shapes[1][:2] or shapes[1][0] != shapes[0][0]:
            raise ValueError(f"TrainBatch expects image (B, C, R, R), text (B, L, D) and mask (B, L); got {shapes}")
        if self.mask.dtype != torch.bool:
            raise ValueError(f"TrainBatch mask must be bool, got {self.mask.dtype}")

    @property
    def batch_size(self) -> int:
        return self.image.shape[0]


class Objective(Protocol):
    """A training objective: ``(denoiser, batch, generator) -> per-example loss (B,)`` (module docstring)."""

    def __call__(self, denoiser: Denoiser, batch: TrainBatch, generator: Generators) -> torch.Tensor: ...
