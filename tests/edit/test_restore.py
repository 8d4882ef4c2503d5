"""Issue 13, point 4: restoration built from the other edits. Noise, blur and JPEG go through an SR stage with its
low-res input noise-augmented (exactly upscale at aug 0.3 by default); scratches are found against a 3x3 median and
inpainted, every other pixel coming back exactly."""
import pytest
import torch

from openimagen.edit.restore import DEFAULT_AUG_LEVEL, median3, scratch_mask
from openimagen.errors import InvalidArgumentError
from openimagen.pipeline import Pipeline
from openimagen.pipeline.request import GenerationRequest
from tests.pipeline.fixtures import tiny_pipeline


def smooth(seed=0, side=32):
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4, generator=g) * 2 - 1, size=side, mode="bilinear")
    return x.clamp(-1, 1)


def test_median3_and_the_scratch_detector():
    x = smooth()
    assert torch.allclose(median3(torch.full((1, 3, 5, 5), 0.3)), torch.full((1, 3, 5, 5), 0.3))
    assert scratch_mask(x).sum() == 0                                        # nothing on a smooth image
    y = x.clone()
    y[..., 12, 4:28] = 1.0                                                   # a one-pixel white stroke
    m = scratch_mask(y)
    assert m[..., 12, 6:26].min() == 1 and m[..., 11, 6:26].min() == 1       # found, grown by a pixel
    assert m[..., :8, :].sum() == 0 and m[..., 20:, :].sum() == 0            # and nowhere else


def test_denoise_is_upscale_with_the_default_augmentation():
    pipe = tiny_pipeline()
    x = smooth(1)
    out = pipe.restore(x, "denoise", steps=3, seed=4)
    ref = pipe.upscale(x, "", steps=3, seed=4, aug_level=DEFAULT_AUG_LEVEL)
    assert torch.equal(out.stages[-1], ref.stages[-1]) and out.edit["kind"] == "denoise"
    own = pipe.restore(x, "jpeg", GenerationRequest(prompts="", steps=3, seed=4, aug_level=0.1))
    assert torch.equal(own.stages[-1], pipe.upscale(x, "", steps=3, seed=4, aug_level=0.1).stages[-1])


def test_scratches_are_repainted_and_every_other_pixel_is_exact():
    pipe = tiny_pipeline()
    y = smooth(2)
    y[..., 12, 4:28] = 1.0
    out = pipe.restore(y, "scratches", steps=3, seed=0)
    keep = scratch_mask(y) == 0
    x = out.stages[-1]
    assert torch.equal(torch.where(keep, x, 0), torch.where(keep, y, 0))
    assert not torch.equal(x[..., 12, 6:26], y[..., 12, 6:26])


def test_bad_kind_and_a_model_without_sr_are_one_line_errors():
    pipe = tiny_pipeline()
    with pytest.raises(InvalidArgumentError, match="denoise, deblur, jpeg, scratches"):
        pipe.restore(smooth(), "sharpen")
    base_only = Pipeline(pipe.text_encoder, pipe.stages[:1], pipe.config.__class__(stages=("stage0_base",),
                                                                                  max_length=8))
    with pytest.raises(InvalidArgumentError, match="super-resolution stage"):
        base_only.restore(smooth(side=16), "denoise")
