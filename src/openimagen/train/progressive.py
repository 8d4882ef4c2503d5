"""Progressive distillation (Salimans & Ho 2022, "Progressive Distillation for Fast Sampling of Diffusion Models",
Algorithm 2): a student that does in ONE deterministic DDIM step what its teacher does in two, so each round halves
the sampling steps (32 -> 16 -> 8 -> 4 ...: one training run per round, the next round's teacher being this one's
exported student).

In the VE form x = x0 + s n of this project, DDIM's step from s to s' with the estimate D = x0_hat is
``x' = D + (s'/s)(x - D)`` (openimagen.samplers.ddim, eta = 0). The student's N steps run on the grid
``sampling_sigmas(schedule, N, "time")``, which is every other point of the teacher's 2N-step grid (both are
s(t) at t = linspace(1, 0, .)). Per example, in this draw order (per-example generators, as every objective):
the SR stage's augmentation, the student's step index i ~ U{0..N-1}, the noise n; then with
s = grid_2N[2i], s_mid = grid_2N[2i + 1], s' = grid_2N[2i + 2], x = x0 + s n:

    x_mid = D_T(x, s) + (s_mid / s)(x - D_T(x, s))               teacher's first DDIM step
    x'    = D_T(x_mid, s_mid) + (s' / s_mid)(x_mid - D_T(x_mid, s_mid))   and its second
    x0~   = (x' - r x) / (1 - r),   r = s' / s                  the x0 one student step must predict to land on x'

(Algorithm 2's target, eq. 8, in VE form; r < 1 always, and x0~ = x' on the last step, where s' = 0). D_T is the
teacher's estimate as it samples: classifier-free guided at ``guidance`` (1 for a teacher that is itself a
distilled student) and thresholded as the stage samples. The loss is the student's x0 error with the project's
``snr+1`` weighting, (s^-2 + 1) |D_S(x, s) - x0~|^2 ("SNR+1" truncation, Salimans & Ho Sec. 4). No text dropout:
the student learns the guided trajectory and samples at guidance 1 (one pass per step).
"""
from __future__ import annotations

import torch

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import Denoiser, DenoiserFn, append_dims
from openimagen.diffusion.guidance import guided
from openimagen.diffusion.schedules import sampling_sigmas
from openimagen.samplers.noise import Generators, randn
from openimagen.train.objective import TrainBatch
from openimagen.train.step import DiffusionObjective, _rand


def ddim_step(x: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM from ``sigma`` to ``sigma_next`` (each (B,), float64), x and x0 (B, C, H, W)."""
    r = append_dims(sigma_next / sigma, x.ndim)
    return x0.double() + r * (x.double() - x0.double())


class ProgressiveDistillationObjective:
    """``objective(student, batch, generator) -> (B,)``: one student DDIM step matches two of the frozen ``teacher``
    (module docstring). ``student_steps`` N >= 1 is the student's number of sampling steps (the teacher's is 2N);
    ``guidance`` and ``threshold`` are how the teacher samples."""

    def __init__(self, teacher: DenoiserFn, diffusion: DiffusionObjective, student_steps: int,
                 guidance: float = 1.0, threshold: str = "static"):
        if not isinstance(student_steps, int) or student_steps < 1:
            raise ValueError(f"student_steps must be an integer >= 1, got {student_steps!r}")
        if isinstance(teacher, torch.nn.Module):                # frozen (a plain function serves the closed-form tests)
            teacher.eval().requires_grad_(False)
        self.teacher = teacher
        self.teacher_fn = guided(self.teacher, guidance, threshold)
        self.diffusion, self.steps = diffusion, student_steps
        self.grid = sampling_sigmas(diffusion.schedule, 2 * student_steps, "time")     # (2N + 1,) float64

    def targets(self, x: torch.Tensor, i: torch.Tensor, cond: Cond) -> tuple[torch.Tensor, torch.Tensor]:
        """(sigma (B,) float32, x0~ (B, C, H, W)) for noisy images ``x`` at the student's step indices ``i``."""
        grid = self.grid.to(x.device)
        s, s_mid, s_next = grid[2 * i], grid[2 * i + 1], grid[2 * i + 2]
        with torch.no_grad():
            d = self.teacher_fn(x, s.float(), cond)
            x_mid = ddim_step(x, d, s, s_mid).to(x.dtype)
            d_mid = self.teacher_fn(x_mid, s_mid.float(), cond)
            x_next = ddim_step(x_mid, d_mid, s_mid, s_next)
            r = append_dims(s_next / s, x.ndim)
            target = (x_next - r * x.double()) / (1 - r)
        return s.float(), target.to(x.dtype)

    def __call__(self, denoiser: Denoiser, batch: TrainBatch, generator: Generators) -> torch.Tensor:
        x0, b, dev = batch.image, batch.batch_size, batch.image.device
        lowres, aug_sigma = self.diffusion._augmented_lowres(x0, generator)
        cond = Cond(text=batch.text, mask=batch.mask, lowres=lowres, aug_sigma=aug_sigma)
        i = (_rand(b, generator, dev) * self.steps).long().clamp(max=self.steps - 1)      # (B,) in 0..N-1
        sigma = self.grid.to(dev)[2 * i].to(x0.dtype)
        x = x0 + append_dims(sigma, x0.ndim) * randn(x0.shape, generator, dev, x0.dtype)
        sigma, target = self.targets(x, i, cond)
        student = denoiser(x, sigma, cond)
        err = (student.float() - target.float()).pow(2).flatten(1).mean(1)               # (B,)
        return err * (sigma.float().pow(-2) + 1)
