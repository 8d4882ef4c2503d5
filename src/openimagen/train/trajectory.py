"""Trajectory distillation: a student that does in N deterministic DDIM steps what its teacher does in M = k N
steps of its own sampler, learnt in ONE round from a bank of the teacher's sampled trajectories.

Progressive distillation (:mod:`openimagen.train.progressive`, Salimans & Ho 2022) halves the steps per round and
runs the teacher twice (four network passes when guided) on every training example. Here the teacher samples a
trajectory once, the bank keeps its states on the student's grid, and every later update reuses it, so an update
costs the student's forward and backward pass only; the student jumps k teacher steps at once, as in TRACT's
transitive closure (Berthelot et al. 2023, "TRACT: Denoising Diffusion Models with Transitive Closure Time
Distillation", Sec. 3) and knowledge distillation of the whole sampler (Luhman & Luhman 2021).

The grids: the student samples with ``sampling_sigmas(schedule, N, "time")``; the teacher with its own sampler on
``sampling_sigmas(schedule, M, "time")``, whose every k-th point is the student's (both are s(t) at
t = linspace(1, 0, .)). A trajectory is the teacher's state x_j at those points, j = 0..N (x_0 = s_0 n, x_N the
teacher's sample, after its thresholding). In the VE form x = x0 + s n, one DDIM step of the student from s_j to
s_{j+1} with estimate D is ``x' = D + r (x - D)``, r = s_{j+1} / s_j (openimagen.samplers.ddim, eta = 0), so the x0
it must predict to land on the teacher's x_{j+1} is (Salimans & Ho's eq. 8 target, for k steps instead of 2)

    x0~ = (x_{j+1} - r x_j) / (1 - r)          (x0~ = x_N on the last step, where r = 0)

and the loss is the student's x0 error with the project's ``snr+1`` weighting, (s_j^-2 + 1) |D_S(x_j, s_j) - x0~|^2.

The bank is built from the training data as the run goes: while it holds fewer than ``capacity`` trajectories,
each call first samples the teacher for the batch's captions (noise from the batch's generators) and appends them
as one chunk file (``bank_dir/rank{r}-{n:06d}.safetensors``, written atomically); every call then trains on
examples drawn from the whole bank. Per example, in this draw order: the trajectory k ~ U{0..K-1}, the step
j ~ U{0..N-1} and, with ``student_forcing`` p > 0, u ~ U[0, 1).

Student forcing (p > 0): with probability p an example with j >= 1 (j in ``student_forcing_steps``) starts not
from the teacher's x_j but from the student's own state after j of its DDIM steps from the same starting noise x_0
(the current weights, no gradient, thresholded as the student samples), and learns the x0 that lands from there
on the teacher's x_{j+1}. Teacher forcing alone trains every step on the teacher's states, which the student never
sees when it samples on its own; its first step's error then reaches the later steps as inputs they were not
trained on (exposure bias, Ning et al. 2023, "Input Perturbation Reduces Exposure Bias in Diffusion Models";
scheduled sampling, Bengio et al. 2015). With forcing, the later steps learn to pull a state the student itself
made back onto the teacher's trajectory. It costs up to N - 1 gradient-free forward passes for the forced examples.
With ``student_forcing_backprop`` the student's own steps keep their graph: a forced example's loss at step j,
(s_j^-2 + 1) |D_S(x'_j) - x0~(x'_j)|^2 = (s_j^-2 + 1) |x'_{j+1} - x_{j+1}|^2 / (1 - r)^2 with x'_{j+1} the student's
state after j + 1 of its own steps, then also trains the earlier steps toward where the later ones land
(backpropagation through the unrolled sampler, as when a sampler's few steps are trained end to end, Watson et al.
2022, "Learning Fast Samplers for Diffusion Models by Differentiating Through Sample Quality"): the first step from
pure noise learns the layout that its successor can carry onto the teacher's state, not only its own landing
point. It costs the backward pass of those steps as well.

Under torchrun each rank builds and reads its own chunks. A resumed run reloads the chunks on disk and carries on
filling the bank, so no teacher sample is lost or recomputed; the bank is not part of the checkpoint (its chunks
are), and chunks written after the last checkpoint are kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from safetensors.torch import load_file, save_file

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import Denoiser, append_dims
from openimagen.diffusion.guidance import guided
from openimagen.diffusion.schedules import Schedule, sampling_sigmas
from openimagen.errors import ConfigError
from openimagen.pipeline.config import SamplingConfig
from openimagen.pipeline.io import atomic_write
from openimagen.samplers.noise import Generators
from openimagen.train.objective import TrainBatch
from openimagen.train.progressive import ddim_step
from openimagen.train.step import _rand


def _generator_list(generator: Generators, b: int) -> list:
    if isinstance(generator, torch.Generator) or generator is None:
        return [generator] * b
    return list(generator)


def landing_target(x: torch.Tensor, x_next: torch.Tensor, sigma, sigma_next) -> torch.Tensor:
    """The x0 that makes one DDIM step (eta = 0) from ``x`` at noise level ``sigma`` land on ``x_next`` at
    ``sigma_next < sigma``: ``(x_next - r x) / (1 - r)``, r = sigma_next / sigma (Salimans & Ho 2022, eq. 8, for a
    jump of any number of teacher steps). ``x``, ``x_next``: (B, C, H, W); ``sigma``, ``sigma_next``: scalars or (B,)
    tensors. Computed in float64, returned float32, shape (B, C, H, W); ``x_next`` itself when ``sigma_next`` is 0."""
    r = append_dims(torch.as_tensor(sigma_next, dtype=torch.float64) / torch.as_tensor(sigma, dtype=torch.float64),
                    x.ndim)
    return ((x_next.double() - r * x.double()) / (1 - r)).float()


def student_rollout(denoiser, start: torch.Tensor, j: torch.Tensor, grid: torch.Tensor, threshold: str, cond: Cond,
                    dtype: torch.dtype, grad: bool = False) -> torch.Tensor:
    """A student's own states: from ``start`` (B, C, H, W), the noise s_0 n at ``grid[0]``, ``j`` (each (B,) long)
    DDIM steps of ``denoiser`` along ``grid`` ((N + 1,) float64 noise levels) at guidance 1, thresholded with
    ``threshold`` as the student samples; (B, C, H, W) float32 on ``cond``'s device. ``grad``: keep the graph, so
    that a loss on the result reaches the network through every step taken (else no gradient). Raises nothing;
    j = 0 gives ``start`` itself."""
    dev = cond.text.device
    x = start.to(dev)
    run = guided(denoiser, 1.0, threshold)
    with torch.set_grad_enabled(grad):
        for step in range(int(j.max()) if len(j) else 0):
            live = (j > step).to(dev)
            rows = live.nonzero().squeeze(1)
            sub = cond.map(lambda t: t[live])
            s, s_next = grid[step], grid[step + 1]
            n = int(live.sum())
            x0 = run(x[live].to(dtype), s.float().to(dev, dtype).expand(n), sub).float()
            x = x.index_put((rows,), ddim_step(x[live], x0, s.expand(n).to(dev), s_next.expand(n).to(dev)).float())
    return x


@dataclass
class TrajectoryBank:
    """Teacher trajectories on the student's grid: ``x`` (K, N + 1, C, H, W) float32, ``text`` (K, L, D) float,
    ``mask`` (K, L) bool. ``x[:, 0]`` is the starting noise s_0 n, ``x[:, N]`` the teacher's sample in [-1, 1]."""

    x: torch.Tensor
    text: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return self.x.shape[0]

    @classmethod
    def empty(cls) -> "TrajectoryBank":
        return cls(torch.empty(0), torch.empty(0), torch.empty(0, dtype=torch.bool))

    @classmethod
    def concat(cls, banks: list["TrajectoryBank"]) -> "TrajectoryBank":
        """One bank of all of ``banks``' trajectories, in order (one copy, however many banks)."""
        banks = [bank for bank in banks if len(bank)]
        if len(banks) <= 1:
            return banks[0] if banks else cls.empty()
        return cls(*(torch.cat([getattr(bank, name) for bank in banks]) for name in ("x", "text", "mask")))

    def save(self, path: Path) -> None:
        tensors = {"x": self.x.contiguous(), "text": self.text.contiguous(), "mask": self.mask.contiguous()}
        atomic_write(Path(path), lambda tmp: save_file(tensors, tmp))

    @classmethod
    def load(cls, path: Path) -> "TrajectoryBank":
        t = load_file(str(path))
        return cls(t["x"], t["text"], t["mask"])


@torch.no_grad()
def sample_trajectories(teacher, sampling: SamplingConfig, student_steps: int, text: torch.Tensor,
                        mask: torch.Tensor, generators: list) -> TrajectoryBank:
    """Sample the ``teacher`` Stage with ``sampling`` (``sampling.steps`` a multiple of ``student_steps``, "time"
    spacing) for the captions ``text`` (B, L, D) / ``mask`` (B, L), one generator per image, and keep its states at
    the student's grid points: a bank of B trajectories (x of shape (B, student_steps + 1, C, H, W), float32)."""
    k = sampling.steps // student_steps
    kept: dict[int, torch.Tensor] = {}

    def record(i, s, x, d):
        if i % k == 0:
            kept[i // k] = x.detach().float().cpu()

    sample = teacher.sample(Cond(text=text, mask=mask), generators, sampling, callback=record,
                            batch_invariant=False)
    kept[student_steps] = sample.float().cpu()
    x = torch.stack([kept[j] for j in range(student_steps + 1)], dim=1)
    return TrajectoryBank(x, text.cpu(), mask.cpu())


class TrajectoryDistillationObjective:
    """``objective(student, batch, generator) -> (B,)``: N student DDIM steps match the frozen ``teacher`` Stage's
    trajectories sampled with ``teacher_sampling`` (module docstring). ``capacity`` is the bank's size per rank,
    ``bank_dir`` where its chunks live (created), ``rank`` this process's rank.

    Raises ConfigError if the teacher's steps are not a multiple of ``student_steps``, its spacing is not "time",
    or the grids do not coincide."""

    def __init__(self, teacher, teacher_sampling: SamplingConfig, schedule: Schedule, student_steps: int,
                 capacity: int, bank_dir: Path, rank: int = 0, student_forcing: float = 0.0,
                 student_threshold: str = "static", student_forcing_steps: Optional[Sequence[int]] = None,
                 student_forcing_backprop: bool = False):
        if student_steps < 1 or teacher_sampling.steps % student_steps:
            raise ConfigError(f"the teacher's steps ({teacher_sampling.steps}) must be a multiple of the student's "
                              f"({student_steps})")
        if teacher_sampling.spacing != "time":
            raise ConfigError(f"trajectory distillation needs the teacher on the \"time\" grid, got "
                              f"{teacher_sampling.spacing!r}")
        self.teacher, self.schedule = teacher.eval().requires_grad_(False), schedule
        self.sampling, self.steps, self.capacity = teacher_sampling, student_steps, int(capacity)
        self.grid = sampling_sigmas(schedule, student_steps, "time")                      # (N + 1,) float64
        teacher_grid = sampling_sigmas(schedule, teacher_sampling.steps, "time")
        if not torch.allclose(teacher_grid[:: teacher_sampling.steps // student_steps], self.grid, rtol=1e-9):
            raise ConfigError("the teacher's and the student's sampling grids do not coincide")
        if not 0.0 <= student_forcing <= 1.0:
            raise ConfigError(f"student_forcing is a probability in [0, 1], got {student_forcing}")
        self.student_forcing, self.student_threshold = float(student_forcing), student_threshold
        self.student_forcing_backprop = bool(student_forcing_backprop)
        self.forcing_steps = torch.tensor(sorted(set(student_forcing_steps if student_forcing_steps is not None
                                                     else range(1, student_steps))), dtype=torch.long)
        if len(self.forcing_steps) and not 1 <= int(self.forcing_steps.min()) <= int(self.forcing_steps.max()) < \
                student_steps:
            raise ConfigError(f"student_forcing_steps must lie in 1..{student_steps - 1}, got "
                              f"{self.forcing_steps.tolist()}")
        self.bank_dir, self.rank = Path(bank_dir), int(rank)
        self.bank_dir.mkdir(parents=True, exist_ok=True)
        self.chunks = sorted(self.bank_dir.glob(f"rank{self.rank}-*.safetensors"))
        self.bank = TrajectoryBank.concat([TrajectoryBank.load(path) for path in self.chunks])

    def grow(self, batch: TrainBatch, generator: Generators) -> None:
        """Sample the teacher for ``batch``'s captions and append them to the bank (one chunk file)."""
        part = sample_trajectories(self.teacher, self.sampling, self.steps, batch.text, batch.mask,
                                   _generator_list(generator, batch.batch_size))
        path = self.bank_dir / f"rank{self.rank}-{len(self.chunks):06d}.safetensors"
        part.save(path)
        self.chunks.append(path)
        self.bank = TrajectoryBank.concat([self.bank, part])

    def targets(self, k: torch.Tensor, j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_j (B, C, H, W) float32, sigma_j (B,) float32, x0~ (B, C, H, W) float32) for trajectories ``k``, steps
        ``j`` (each (B,) long, on the CPU)."""
        x, s = self.bank.x[k, j], self.grid[j]
        return x, s.float(), landing_target(x, self.bank.x[k, j + 1], s, self.grid[j + 1])

    def rollout(self, denoiser, k: torch.Tensor, j: torch.Tensor, cond: Cond, dtype: torch.dtype,
                grad: bool = False) -> torch.Tensor:
        """The student's own states: from trajectory ``k``'s starting noise, ``j`` (each (B,) long) DDIM steps of
        ``denoiser`` on this objective's grid (:func:`student_rollout`)."""
        return student_rollout(denoiser, self.bank.x[k, 0], j, self.grid, self.student_threshold, cond, dtype, grad)

    def __call__(self, denoiser: Denoiser, batch: TrainBatch, generator: Generators) -> torch.Tensor:
        b, dev = batch.batch_size, batch.image.device
        if len(self.bank) < self.capacity:
            self.grow(batch, generator)
        k = (_rand(b, generator, "cpu") * len(self.bank)).long().clamp(max=len(self.bank) - 1)
        j = (_rand(b, generator, "cpu") * self.steps).long().clamp(max=self.steps - 1)
        x, sigma, target = (t.to(dev) for t in self.targets(k, j))
        cond = Cond(text=self.bank.text[k].to(dev, batch.text.dtype), mask=self.bank.mask[k].to(dev))
        if self.student_forcing > 0:
            forced = (_rand(b, generator, "cpu") < self.student_forcing) & torch.isin(j, self.forcing_steps)
            if forced.any():                          # x and target are this call's own copies of the bank's rows
                fk, fj, rows = k[forced], j[forced], forced.to(dev)
                own = self.rollout(denoiser, fk, fj, cond.map(lambda t: t[rows]), batch.image.dtype,
                                   grad=self.student_forcing_backprop)
                x[rows] = own
                target[rows] = landing_target(own.cpu(), self.bank.x[fk, fj + 1], self.grid[fj],
                                              self.grid[fj + 1]).to(dev)
        student = denoiser(x.to(batch.image.dtype), sigma.to(batch.image.dtype), cond)
        err = (student.float() - target).pow(2).flatten(1).mean(1)                         # (B,)
        return err * (sigma.float().pow(-2) + 1)

    def metrics(self) -> dict:
        return {"bank": len(self.bank)}
