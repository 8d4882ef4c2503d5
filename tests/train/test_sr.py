"""A super-resolution stage trains on real low-res inputs: the antialiased downsample of its real targets."""
import pytest
import torch

import openimagen.train.step as step_module
from openimagen.train.data import open_training_dataset
from openimagen.train.step import downsample
from openimagen.train.trainer import train
from tests.train.conftest import run_config


def spy_on_loss(monkeypatch) -> list:
    seen, real = [], step_module.denoising_terms

    def spy(denoiser, x0, cond, *args, **kwargs):
        seen.append((x0.detach().clone(), cond.lowres.detach().clone(), cond.aug_sigma.detach().clone()))
        return real(denoiser, x0, cond, *args, **kwargs)

    monkeypatch.setattr(step_module, "denoising_terms", spy)
    return seen


@pytest.mark.parametrize("crop", [None, 16])
def test_sr_lowres_is_the_downsampled_target(assets, tmp_path, monkeypatch, crop):
    seen = spy_on_loss(monkeypatch)
    cfg = run_config(assets, tmp_path / "sr", sr=True, max_steps=2, data={"crop_size": crop},
                     train={"aug_max": 0.0, "batch_size": 2})
    train(cfg)
    dataset = torch.stack([item["image"] for item in open_training_dataset(cfg)])  # (N, 3, 32, 32)
    assert len(seen) == 2
    for x0, lowres, aug_sigma in seen:
        side = crop or 32
        assert x0.shape[-1] == side and lowres.shape[-1] == side // 2
        # t_aug = 0 is the schedule's clean end: sigma_aug = exp(-logsnr_max / 2) ~ 5e-5, a negligible noise
        assert aug_sigma.max() < 1e-4
        assert torch.allclose(lowres, downsample(x0, side // 2), atol=1e-3)
        for img in x0:                                  # each target is a real image of the data set, or a crop
            windows = dataset.unfold(2, side, 1).unfold(3, side, 1)             # (N, 3, n, n, side, side)
            match = (windows - img[:, None, None]).abs().amax(dim=(1, 4, 5)) == 0
            assert match.any()


def test_a_residual_sr_stage_trains_exports_and_starts_from_the_upsampled_lowres(assets, tmp_path):
    """``param.residual``: the run trains (finite loss), the checkpoint and the exported stage keep the setting,
    and the stage's estimate at a very high noise level is the bicubic-upsampled low-res input (a zero network
    output: the untrained net's; x0_hat = u + c_skip (x - u) with c_skip ~ 1/s^2)."""
    from openimagen.diffusion.cond import Cond
    from openimagen.pipeline.stage import Stage
    from openimagen.train.export import read_source

    cfg = run_config(assets, tmp_path / "sr", sr=True, max_steps=3, stage={"param": {"name": "v", "residual": True}})
    result = train(cfg)
    assert len(result.losses) == 3 and torch.isfinite(torch.tensor(result.losses)).all()
    stage_cfg = read_source(tmp_path / "sr").stage_config()
    assert stage_cfg.param.residual is True and stage_cfg.to_dict()["param"]["residual"] is True
    fresh = Stage(stage_cfg).eval()
    g = torch.Generator().manual_seed(0)
    low = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    cond = Cond(text=torch.zeros(2, 4, stage_cfg.unet.text_dim), mask=torch.ones(2, 4, dtype=torch.bool),
                lowres=low, aug_sigma=torch.zeros(2))
    x = 1e3 * torch.randn(2, 3, 32, 32, generator=g)
    u = torch.nn.functional.interpolate(low, size=(32, 32), mode="bicubic", align_corners=False)
    with torch.no_grad():
        assert (fresh.denoiser(x, torch.full((2,), 1e3), cond) - u).abs().max() < 1e-2
