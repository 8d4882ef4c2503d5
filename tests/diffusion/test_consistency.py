"""Low-res consistency (range-null space projection, DDNM): closed forms of the resize matrix and the projection,
property-based over sizes, and the wrapper in an SR stage's sampling."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from openimagen.diffusion.consistency import LowresConsistency, project_to_lowres, resize_matrix
from openimagen.errors import InvalidArgumentError


def down(x: torch.Tensor, side: int) -> torch.Tensor:
    return F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)


sizes = st.integers(4, 40).flatmap(lambda big: st.tuples(st.just(big), st.integers(2, big - 1)))


@settings(max_examples=25, deadline=None)
@given(sizes, st.integers(0, 2**31 - 1))
def test_the_matrix_is_the_training_downsampler(size, seed):
    big, small = size
    x = torch.randn(2, 3, big, big, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    d = resize_matrix(big, small)
    assert d.shape == (small, big)
    assert torch.allclose(d @ x @ d.T, down(x, small), atol=1e-12)
    assert torch.allclose(d.sum(1), torch.ones(small, dtype=torch.float64))     # weights sum to one (constants kept)


@settings(max_examples=25, deadline=None)
@given(sizes, st.integers(0, 2**31 - 1))
def test_the_projection_meets_the_low_res_image_and_keeps_the_null_space(size, seed):
    big, small = size
    g = torch.Generator().manual_seed(seed)
    x0, y = torch.randn(2, 3, big, big, generator=g), torch.rand(2, 3, small, small, generator=g) * 2 - 1
    p = project_to_lowres(x0, y)
    assert p.shape == x0.shape and p.dtype == x0.dtype
    assert (down(p, small) - y).abs().max() < 1e-4                               # A(p) = y (float32)
    assert (project_to_lowres(p, y) - p).abs().max() < 1e-4                       # idempotent
    # the detail above the low-res image's band is x0's: moving x0 along the null space moves p the same way
    n = torch.randn(2, 3, big, big, generator=g)
    null = project_to_lowres(n, torch.zeros_like(y))                              # n - A^+ A n: A(null) = 0
    assert down(null, small).abs().max() < 1e-4
    assert (project_to_lowres(x0 + null, y) - (p + null)).abs().max() < 1e-4


def test_a_consistent_image_is_unchanged_and_a_colour_shift_is_taken_out():
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    y = down(x, 16)
    assert (project_to_lowres(x, y) - x).abs().max() < 1e-5
    shifted = project_to_lowres(x + 0.25, y)                     # a stage that whitens: the low band comes back
    assert (shifted - x).abs().mean() < 0.05 * 0.25 and (down(shifted, 16) - y).abs().max() < 1e-5


def test_the_result_of_an_image_does_not_depend_on_its_batch():
    g = torch.Generator().manual_seed(0)
    x0, y = torch.randn(5, 3, 64, 64, generator=g), torch.randn(5, 3, 32, 32, generator=g)
    assert torch.equal(project_to_lowres(x0, y)[2:3], project_to_lowres(x0[2:3], y[2:3]))


@pytest.mark.parametrize("x0, y", [((1, 3, 32, 32), (1, 3, 32, 32)), ((1, 3, 32, 32), (2, 3, 16, 16)),
                                   ((1, 3, 32, 16), (1, 3, 8, 8)), ((3, 32, 32), (3, 16, 16))])
def test_mismatched_shapes_are_one_line(x0, y):
    with pytest.raises(InvalidArgumentError, match="low-res consistency needs"):
        project_to_lowres(torch.zeros(x0), torch.zeros(y))


def test_the_wrapper_projects_the_wrapped_estimate():
    y = torch.rand(2, 3, 8, 8) * 2 - 1
    den = LowresConsistency(lambda x, sigma, cond: 2 * x, y)
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(den(x, torch.ones(2), None), project_to_lowres(2 * x, y))


def test_an_sr_stage_with_consistency_makes_images_whose_downsample_is_its_input(monkeypatch):
    """The wiring: a stand-in SR network that whitens (estimate = upsampled low-res + 0.3, the shipped stages'
    bias on pale colours); with consistency every image's downsample is its input again, without it is 0.3 off."""
    from openimagen.diffusion.denoiser import Denoiser
    from tests.pipeline.fixtures import tiny_pipeline

    pipe = tiny_pipeline()
    monkeypatch.setattr(Denoiser, "forward", lambda self, x, sigma, cond: torch.zeros_like(x) if cond.lowres is None
                        else F.interpolate(cond.lowres, size=x.shape[-2:], mode="bilinear", align_corners=False) + 0.3)
    coarse = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)) - 0.5
    low = F.interpolate(coarse, size=(16, 16), mode="bilinear", align_corners=False)   # smooth, in [-0.5, 0.5]
    outs = {on: pipe.upscale(low, ["a red circle", "a blue square"], steps=3, seed=1, aug_level=0.0,
                             lowres_consistency=on).stages[-1] for on in (True, False)}
    err = {on: (down(x, 16) - low).abs().max().item() for on, x in outs.items()}
    assert err[True] < 1e-4 and err[False] > 0.25, err      # the final clamp is idle: no pixel reaches 1
    settings = pipe.upscale(low[:1], "", steps=2).settings[1]
    assert settings.lowres_consistency is True and settings.sr_strength == 1.0         # upscale's defaults
    assert pipe.upscale(low[:1], "", steps=2, sr_strength=0.4).settings[1].sr_strength == 0.4
    assert pipe(["a"], steps=2).settings[1].lowres_consistency is False                  # text-to-image's default


def test_edits_turn_consistency_off_where_the_low_res_input_is_the_users_image_and_say_so():
    """img2img and restore at an SR stage whose default is consistency on (the gan-sr variant's): off at that stage
    unless asked for, and the returned settings say what ran; upscale keeps it on."""
    from dataclasses import replace

    from tests.pipeline.fixtures import tiny_pipeline

    pipe = tiny_pipeline()
    sr = pipe.stages[1]
    sr.config = replace(sr.config, sampling=replace(sr.config.sampling, lowres_consistency=True))
    image = torch.rand(1, 3, 32, 32) * 2 - 1                      # 32 px: the tiny cascade's SR stage makes it
    edit = pipe.img2img(image, "a", strength=0.5, steps=2)
    assert edit.edit["start_stage"] == 1 and edit.settings[1].lowres_consistency is False
    asked = pipe.img2img(image, "a", strength=0.5, steps=2, lowres_consistency=True)
    assert asked.settings[1].lowres_consistency is True
    assert not torch.equal(edit.stages[-1], asked.stages[-1])
    restored = pipe.restore(image, "deblur", steps=2)
    assert restored.edit["start_stage"] == 1 and restored.settings[1].lowres_consistency is False
    assert pipe.upscale(image, "", steps=2).settings[1].lowres_consistency is True


def test_asking_for_consistency_is_the_same_as_upscales_default():
    from tests.pipeline.fixtures import tiny_pipeline

    pipe, low = tiny_pipeline(), torch.rand(1, 3, 16, 16) * 2 - 1
    default, asked = pipe.upscale(low, "", steps=2), pipe.upscale(low, "", steps=2, lowres_consistency=True)
    assert default.settings[1] == asked.settings[1] and torch.equal(default.stages[-1], asked.stages[-1])
    assert pipe.upscale(low, "", steps=2, lowres_consistency=False).settings[1].sr_strength == 1.0   # the model's


@pytest.mark.parametrize("x0, y", [(torch.zeros(1, 3, 8, 8, dtype=torch.int64), torch.zeros(1, 3, 4, 4)),
                                   ([[0.0]], torch.zeros(1, 3, 4, 4)), (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 0, 0))])
def test_inputs_that_are_not_float_images_are_one_line(x0, y):
    with pytest.raises(InvalidArgumentError, match="low-res consistency needs"):
        project_to_lowres(x0, y)
