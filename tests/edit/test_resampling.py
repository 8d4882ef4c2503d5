"""Issue 13, point 2: RePaint's resampling jumps (Lugmayr et al. 2022) as an option of inpainting, around any
sampler: jumps = 1 is the plain sampler bit for bit; with jumps the unmasked pixels still come back exactly, the
network runs jumps times as often, and a point-mass denoiser still lands on its point (closed form)."""
import pytest
import torch

from openimagen.diffusion.cond import Cond
from openimagen.errors import InvalidArgumentError
from openimagen.samplers import SAMPLERS, get_sampler
from openimagen.samplers.noise import generators_from_seeds
from openimagen.samplers.resampling import resampling_segments, with_resampling
from tests.pipeline.fixtures import tiny_pipeline


def test_segments_cover_the_grid_once():
    assert resampling_segments(25, 10) == [(0, 10), (10, 20), (20, 25)]
    assert resampling_segments(3, 10) == [(0, 3)]


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_a_point_mass_denoiser_lands_on_its_point_with_any_jumps(name):
    target = torch.full((2, 3, 4, 4), 0.25)
    den = lambda x, s, cond: target.expand_as(x)
    sigmas = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.5, 0.2, 0.0], dtype=torch.float64)
    cond = Cond(text=torch.zeros(2, 1, 1), mask=torch.ones(2, 1, dtype=torch.bool))
    x = torch.randn(2, 3, 4, 4) * 8
    out = with_resampling(get_sampler(name), 2, 3)(den, x, sigmas, cond=cond, generator=generators_from_seeds([0, 1]))
    torch.testing.assert_close(out, target, atol=1e-5, rtol=0)


def test_jumps_must_be_positive_integers():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidArgumentError, match="jumps"):
            with_resampling(get_sampler("ddim"), 10, bad)


def test_inpainting_with_jumps_keeps_known_pixels_and_costs_jumps_times():
    pipe = tiny_pipeline()
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    rect = (8, 8, 24, 24)
    calls = []
    for st in pipe.stages:
        st.denoiser.net.register_forward_hook(lambda *a: calls.append(1))
    plain = pipe.inpaint(image, rect, "a red circle", steps=4, seed=1)
    n_plain, calls[:] = len(calls), []
    again = pipe.inpaint(image, rect, "a red circle", steps=4, seed=1, resample_jumps=1)
    assert torch.equal(plain.stages[-1], again.stages[-1])                     # off is exactly the plain sampler
    calls[:] = []
    jumped = pipe.inpaint(image, rect, "a red circle", steps=4, seed=1, resample_jumps=3, jump_length=2)
    assert len(calls) == 3 * n_plain
    keep = torch.ones(1, 1, 32, 32, dtype=torch.bool)
    keep[..., 8:24, 8:24] = False
    x = jumped.stages[-1]
    assert torch.equal(torch.where(keep, x, 0), torch.where(keep, image, 0))  # unmasked pixels: the input, exactly
    assert not torch.equal(x, plain.stages[-1])
    assert jumped.edit["resample_jumps"] == 3 and jumped.edit["jump_length"] == 2
