"""Issue 13, point 6: any input size and aspect ratio works, by a documented rule (edit/inputs.py): img2img and
upscale centre-crop or pad; inpainting pads, then maps the result back so every unmasked pixel of the user's
original comes back unchanged; a mask is resized with its image, and a mask of another aspect ratio is refused."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from openimagen.edit.inputs import square, to_tensor, unsquare
from openimagen.errors import InvalidArgumentError
from tests.pipeline.fixtures import tiny_pipeline

FAST = {"steps": 2, "seed": 3}


@pytest.fixture(scope="module")
def pipe():
    p = tiny_pipeline()
    p.watermark = None
    return p


def photo(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_square_and_unsquare_are_the_documented_rule():
    x = to_tensor(photo(6, 4))
    crop, box = square(x, "center_crop")
    assert tuple(crop.shape[-2:]) == (4, 4) and box == (0, 0, 4, 4)
    assert np.array_equal(crop.numpy(), x[..., :, 1:5].numpy())
    pad, box = square(x, "pad")
    assert tuple(pad.shape[-2:]) == (6, 6) and box == (0, 1, 6, 4)
    assert (pad[..., 0, :] == 1).all() and (pad[..., 5, :] == 1).all()        # white above and below
    assert np.array_equal(unsquare(pad, box, 6).numpy(), x.numpy())
    with pytest.raises(InvalidArgumentError, match="fit must be one of center_crop, pad"):
        square(x, "stretch")


@pytest.mark.parametrize("fit", ["center_crop", "pad"])
def test_img2img_at_strength_0_returns_the_squared_input(pipe, fit):
    """48x32: center_crop keeps the central 32x32 (the SR stage's side: editing starts there); pad makes it 48x48
    with white above and below (resized to the base stage's 16 px)."""
    from openimagen.edit.inputs import resize

    image = photo(48, 32)
    out = pipe.img2img(image, "a red circle", strength=0.0, fit=fit, **FAST)
    sq, _ = square(to_tensor(image), fit)
    first = out.stages[0]
    assert out.edit["start_stage"] == (1 if fit == "center_crop" else 0) and out.images[0].size == (32, 32)
    assert (first - resize(sq, first.shape[-1])).abs().max() < 1e-5


def test_upscale_of_a_wide_odd_sized_image(pipe):
    out = pipe.upscale(photo(45, 30), "", **FAST)
    assert out.images[0].size == (32, 32) and np.isfinite(out.stages[-1].numpy()).all()


@settings(max_examples=8, deadline=None)
@given(w=st.integers(5, 70), h=st.integers(5, 70), data=st.data())
def test_inpainting_any_size_keeps_every_unmasked_pixel(pipe, w, h, data):
    left = data.draw(st.integers(0, w - 1))
    top = data.draw(st.integers(0, h - 1))
    right = data.draw(st.integers(left + 1, w))
    bottom = data.draw(st.integers(top + 1, h))
    image = photo(w, h, seed=w * 100 + h)
    out = pipe.inpaint(image, (left, top, right, bottom), "a red circle", **FAST)
    got, orig = np.asarray(out.images[0]), np.asarray(image)
    assert got.shape == orig.shape
    keep = np.ones((h, w), bool)
    keep[top:bottom, left:right] = False
    assert np.array_equal(got[keep], orig[keep])


def test_outpainting_a_non_square_image_keeps_its_aspect(pipe):
    out = pipe.outpaint(photo(40, 20), "a red circle", border=4, **FAST)
    assert out.images[0].size == (32, 32)


def test_a_mask_of_another_aspect_ratio_is_one_line(pipe):
    with pytest.raises(InvalidArgumentError, match="the mask is 10x10 but the image is 40x20"):
        pipe.inpaint(photo(40, 20), Image.new("L", (10, 10), 255), "x", **FAST)
    out = pipe.inpaint(photo(40, 20), Image.new("L", (20, 10), 0), "x", **FAST)   # same aspect: resized
    assert np.array_equal(np.asarray(out.images[0]), np.asarray(photo(40, 20)))    # all kept
