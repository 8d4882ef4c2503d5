"""The training objective is pluggable: the default reproduces the old stage loss exactly, and any callable
``(denoiser, batch, generator) -> (B,)`` passed to the Trainer is what gets optimised."""
import pytest
import torch

import openimagen.train.step as step_module
from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import append_dims
from openimagen.diffusion.loss import diffusion_loss
from openimagen.pipeline import Stage
from openimagen.samplers.noise import randn
from openimagen.train.objective import TrainBatch
from openimagen.train.overfit import stage_configs
from openimagen.train.step import DiffusionObjective, _rand, downsample, stage_loss
from openimagen.train.trainer import Trainer
from tests.train.conftest import run_config


def reference_stage_loss(stage, images, text, mask, generator, *, text_drop_prob=0.1, weighting="native",
                         min_snr_gamma=5.0, aug_max=0.5):
    """``stage_loss`` as it was before the objective interface, verbatim: the behaviour to keep."""
    b, dev = images.shape[0], images.device
    drop = _rand(b, generator, dev) < text_drop_prob
    lowres = aug_sigma = None
    if stage.config.is_super_resolution:
        lowres = downsample(images, stage.config.lowres_resolution)
        t_aug = _rand(b, generator, dev) * aug_max
        aug_sigma = stage.schedule.noise_level(t_aug)
        noise = randn(lowres.shape, generator, dev, lowres.dtype)
        lowres = lowres + append_dims(aug_sigma, lowres.ndim) * noise
    cond = Cond(text=text, mask=mask, drop=drop, lowres=lowres, aug_sigma=aug_sigma)
    sigma = noise = None
    if not (generator is None or isinstance(generator, torch.Generator)):
        sigma = stage.schedule.noise_level(_rand(b, generator, dev))
        noise = randn(images.shape, generator, dev, images.dtype)
    return diffusion_loss(stage.denoiser, images, cond, generator, stage.schedule, weighting, min_snr_gamma,
                          sigma=sigma, noise=noise)


@pytest.mark.parametrize("weighting", ["native", "min_snr", "snr+1"])
@pytest.mark.parametrize("per_example", [True, False])
def test_default_objective_equals_the_old_stage_loss(weighting, per_example):
    torch.manual_seed(0)
    settings = dict(text_drop_prob=0.5, weighting=weighting, min_snr_gamma=3.0, aug_max=0.4)
    for cfg in stage_configs():                                       # a base and an SR stage
        stage = Stage(cfg)
        for p in stage.parameters():
            p.data += 0.05 * torch.randn_like(p)
        x = torch.rand(4, 3, cfg.resolution, cfg.resolution) * 2 - 1
        text, mask = torch.randn(4, 8, cfg.unet.text_dim), torch.rand(4, 8) < 0.7

        def gens():
            if per_example:
                return [torch.Generator().manual_seed(100 + i) for i in range(4)]
            return torch.Generator().manual_seed(100)

        want = reference_stage_loss(stage, x, text, mask, gens(), **settings)
        objective = DiffusionObjective(cfg, stage.schedule, **settings)
        got = objective(stage.denoiser, TrainBatch(image=x, text=text, mask=mask), gens())
        assert got.shape == (4,) and torch.equal(got, want)
        assert torch.equal(stage_loss(stage, x, text, mask, gens(), **settings), want)


def test_default_objective_follows_the_run_config(assets, tmp_path):
    cfg = run_config(assets, tmp_path / "sr", sr=True, data={"crop_size": 16},
                     train={"weighting": "min_snr", "min_snr_gamma": 2.0, "aug_max": 0.25})
    trainer = Trainer(cfg)
    objective = trainer.objective
    assert isinstance(objective, DiffusionObjective)
    assert objective == DiffusionObjective.from_run_config(cfg, trainer.stage_config, trainer.stage.schedule)
    assert (objective.stage_config.resolution, objective.stage_config.lowres_resolution) == (16, 8)  # crop 32->16
    assert (objective.text_drop_prob, objective.weighting, objective.min_snr_gamma, objective.aug_max) == (
        0.3, "min_snr", 2.0, 0.25)
    assert trainer.denoiser.net is trainer.model


class ToConstant:
    """A known per-example loss: (k + 1) * mean((D(0; sigma=1, null text) - 0.5)^2) for example k.

    The input is fixed (zeros, the learned null text), so the loss measures the weights alone: it can only
    fall if the trainer optimises this objective.
    """

    def __init__(self):
        self.calls = []                     # (denoiser, batch, generator, per-example loss) of every call

    def __call__(self, denoiser, batch, generator):
        b = batch.batch_size
        cond = Cond(text=batch.text, mask=batch.mask, drop=torch.ones(b, dtype=torch.bool))
        x0_hat = denoiser(torch.zeros_like(batch.image), torch.ones(b), cond)      # (B, 3, R, R)
        loss = (x0_hat - 0.5).pow(2).flatten(1).mean(1) * torch.arange(1, b + 1)   # (B,)
        self.calls.append((denoiser, batch, generator, loss.detach().clone()))
        return loss


def test_a_custom_objective_is_what_the_trainer_optimises(assets, tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the default diffusion loss ran")

    monkeypatch.setattr(step_module, "denoising_terms", never)
    objective = ToConstant()
    trainer = Trainer(run_config(assets, tmp_path / "run", max_steps=6, optimiser={"lr": 1e-2, "warmup_steps": 0}),
                      objective=objective)
    assert trainer.objective is objective
    result = trainer.train()
    assert len(objective.calls) == 6                                   # one micro-batch per step
    for denoiser, batch, generator, loss in objective.calls:
        assert denoiser is trainer.denoiser and isinstance(batch, TrainBatch)
        assert batch.image.shape == (3, 3, 16, 16) and batch.text.shape == (3, 16, 16)
        assert batch.mask.dtype == torch.bool and len(generator) == 3  # one generator per example
        assert torch.allclose(loss, loss[0] * torch.arange(1, 4))
    assert result.losses == [loss.mean().item() for *_, loss in objective.calls]  # what the trainer logged
    assert result.losses[-1] < 0.5 * result.losses[0]                  # and what it minimised


def test_an_objective_must_return_one_loss_per_example(assets, tmp_path):
    def batch_mean(denoiser, batch, generator):
        return ToConstant()(denoiser, batch, generator).mean()

    trainer = Trainer(run_config(assets, tmp_path / "run", max_steps=1), objective=batch_mean)
    with pytest.raises(ValueError, match=r"one loss per example, \(3,\)"):
        trainer.train()
