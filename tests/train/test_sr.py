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
