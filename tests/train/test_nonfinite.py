"""Issue 10, kind 2: training stops at the first non-finite loss or gradient, with a message naming the step,
before the weights change, and the last good checkpoint is kept."""
import pytest
import torch
from safetensors.torch import load_file

from openimagen.errors import TrainingError
from openimagen.pipeline import Stage
from openimagen.train.checkpoint import checkpoint_dirs
from openimagen.train.step import DiffusionObjective
from openimagen.train.trainer import Trainer
from tests.train.conftest import run_config


class BreaksAt:
    """The default objective, but from optimiser step ``bad_step`` on its loss is ``value`` (NaN or inf) or its
    gradient is (``where="grad"``: a finite loss whose backward pass gives NaN gradients)."""

    def __init__(self, cfg, bad_step: int, value: float, where: str = "loss"):
        stage = Stage(cfg.stage_config())
        self.inner = DiffusionObjective.from_run_config(cfg, stage.config, stage.schedule)
        self.bad_step, self.value, self.where, self.calls = bad_step, value, where, 0

    def __call__(self, denoiser, batch, generators):
        self.calls += 1
        losses = self.inner(denoiser, batch, generators)
        if self.calls < self.bad_step:
            return losses
        if self.where == "loss":
            return losses * self.value
        return NanGradient.apply(losses)


class NanGradient(torch.autograd.Function):
    """Identity forward (a finite loss); NaN backward (a non-finite gradient)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("nan"))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(assets, tmp_path, value):
    cfg = run_config(assets, tmp_path / "run", max_steps=6, log={"checkpoint_every": 2})
    trainer = Trainer(cfg, objective=BreaksAt(cfg, bad_step=4, value=value))
    with pytest.raises(TrainingError, match=r"training stopped at step 4: the loss is (nan|inf); the weights were not "
                                            r"updated and the last good checkpoint, .*step_0*2, is kept"):
        trainer.train()
    kept = checkpoint_dirs(tmp_path / "run")
    assert [p.name for p in kept][-1].endswith("2")
    for name in ("model.safetensors", "ema.safetensors"):
        assert all(torch.isfinite(t).all() for t in load_file(kept[-1] / name).values())
    weights = list(trainer.model.parameters())
    assert all(torch.isfinite(w).all() for w in weights)                 # step 4's update never happened


def test_a_non_finite_gradient_stops_training(assets, tmp_path):
    cfg = run_config(assets, tmp_path / "run", max_steps=4)
    with pytest.raises(TrainingError, match=r"step 2: the gradient norm is nan.*no checkpoint was written yet"):
        Trainer(cfg, objective=BreaksAt(cfg, bad_step=2, value=0.0, where="grad")).train()
