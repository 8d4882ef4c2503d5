"""How far a trajectory-distilled student is from its teacher's trajectories, step by step, on a bank it did not
train on: ``python -m openimagen.eval.trajectory_error STAGE_DIR BANK_DIR``.

A trajectory student (:mod:`openimagen.train.trajectory`) learns, for each of its N DDIM steps, the x0 that makes the
step land on the teacher's next kept state. On a held-out bank (chunk files the run never trained on: a run's
``RUN/trajectories`` chunks moved aside before it trains, or another run's bank of the same teacher, grid and
resolution) the per-step mean squared x0 error against that target says whether the student overfits its bank
(held-out error well above the training chunks', as for the shipped `fast` student: docs/EVALUATION.md) and which
checkpoint to score with the slower image suites, in about a minute on one CPU thread for 500 trajectories.
The error is unweighted (the training loss multiplies it by s_j^-2 + 1), so step 0, from pure noise, dominates.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import Denoiser
from openimagen.diffusion.schedules import sampling_sigmas
from openimagen.errors import InvalidArgumentError, ModelLoadError
from openimagen.train.trajectory import TrajectoryBank, landing_target


@torch.no_grad()
def trajectory_errors(denoiser: Denoiser, bank: TrajectoryBank, grid: torch.Tensor,
                      batch_size: int = 64) -> torch.Tensor:
    """Per-step mean squared x0 error, shape (N,) float64: entry j is the mean over the bank's trajectories and pixels
    of ``(D(x_j, s_j) - x0~_j)^2``, x0~_j the x0 whose DDIM step from s_j lands on the bank's x_{j+1}
    (:func:`~openimagen.train.trajectory.landing_target`). ``grid`` (N + 1,): the student's noise levels s_0 > ... >
    s_N = 0 (``sampling_sigmas(schedule, N, "time")``). The denoiser runs unguided, as the student samples.

    Raises InvalidArgumentError if the bank is empty or its N does not match the grid's."""
    n = len(grid) - 1
    if len(bank) == 0:
        raise InvalidArgumentError("the trajectory bank is empty")
    if bank.x.shape[1] != n + 1:
        raise InvalidArgumentError(f"the bank's trajectories have {bank.x.shape[1] - 1} steps, the student {n}")
    dev, dtype = denoiser.device, denoiser.dtype
    total = torch.zeros(n, dtype=torch.float64)
    for i in range(0, len(bank), batch_size):
        x = bank.x[i:i + batch_size]
        cond = Cond(text=bank.text[i:i + batch_size].to(dev, dtype), mask=bank.mask[i:i + batch_size].to(dev))
        for j in range(n):
            target = landing_target(x[:, j], x[:, j + 1], grid[j], grid[j + 1])
            sigma = torch.full((x.shape[0],), float(grid[j]), device=dev, dtype=dtype)
            d = denoiser(x[:, j].to(dev, dtype), sigma, cond).float().cpu()
            total[j] += (d - target).double().pow(2).flatten(1).mean(1).sum()
    return total / len(bank)


def load_bank(folder: Path) -> TrajectoryBank:
    """Every ``*.safetensors`` chunk in ``folder``, in name order, as one bank; ModelLoadError if there is none."""
    chunks = sorted(Path(folder).glob("*.safetensors"))
    if not chunks:
        raise ModelLoadError(f"no trajectory chunks (*.safetensors) in {folder}")
    return TrajectoryBank.concat([TrajectoryBank.load(path) for path in chunks])


def _score(args) -> int:
    from openimagen.pipeline.stage import Stage

    if args.batch_size < 1:
        raise InvalidArgumentError(f"--batch-size must be >= 1, got {args.batch_size}")
    stage = Stage.load(args.stage).eval()
    for folder in args.bank:
        bank = load_bank(folder)
        grid = sampling_sigmas(stage.schedule, bank.x.shape[1] - 1, "time")
        errors = trajectory_errors(stage.denoiser, bank, grid, args.batch_size)
        steps = " ".join(f"{float(e):.3g}" for e in errors)
        print(f"{folder}: {len(bank)} trajectories, x0 error per step {steps}, mean {float(errors.mean()):.3g}")
    return 0


def main(argv=None) -> int:
    """The command: one line per bank folder; a user error is one line ``error: ...`` and exit code 2."""
    from openimagen.cli.values import run_command

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stage", type=Path, help="a student's stage folder, e.g. MODEL/stage0_base_student4")
    p.add_argument("bank", type=Path, nargs="+", help="folders of trajectory chunks (RUN/trajectories or held out)")
    p.add_argument("--batch-size", type=int, default=64, help="trajectories per network call (default 64)")
    return run_command(_score, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
