"""Issue 13 acceptance: every sampler works on a truncated schedule (t_max < 1, image-to-image) for every
spacing: strictly decreasing noise levels ending in 0, no NaN, and an image closer to the input as t_max falls."""
import pytest
import torch

from openimagen.diffusion.schedules import SPACINGS, sampling_sigmas
from openimagen.samplers import SAMPLERS
from tests.edit.test_edit import scene
from tests.pipeline.fixtures import tiny_pipeline

PIPE = tiny_pipeline()


@pytest.mark.parametrize("spacing", sorted(SPACINGS))
@pytest.mark.parametrize("t_max", [1e-4, 0.05, 0.3, 0.7, 0.999])
@pytest.mark.parametrize("steps", [1, 2, 7])
def test_truncated_grids_are_strictly_decreasing(spacing, t_max, steps):
    for stage in PIPE.stages:
        s = sampling_sigmas(stage.schedule, steps, spacing, t_max=t_max)
        assert s.shape == (steps + 1,) and s[-1] == 0 and torch.isfinite(s).all()
        assert (s[1:] < s[:-1]).all(), s


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@pytest.mark.parametrize("spacing", sorted(SPACINGS))
def test_every_sampler_and_spacing_edits_finitely_and_stays_closer_at_lower_strength(sampler, spacing):
    image = scene(32)
    x_in = torch.from_numpy(__import__("numpy").asarray(image, dtype="float32") / 127.5 - 1).permute(2, 0, 1)
    dist = []
    for strength in (0.05, 0.6):
        out = PIPE.img2img(image, "a red circle", strength=strength, sampler=sampler, spacing=spacing, steps=4, seed=0)
        assert all(torch.isfinite(x).all() for x in out.stages)
        dist.append(float((out.stages[-1][0] - x_in).abs().mean()))
    assert dist[0] < dist[1], dist
