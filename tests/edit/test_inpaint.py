"""Inpainting and outpainting: outside the mask the result is the input exactly; inside, new content; a full
mask is text-to-image bit for bit; an empty one returns the input; masks from PNGs, tensors and rectangles."""
import numpy as np
import pytest
import torch
from PIL import Image

from openimagen.edit.inpaint import KnownRegion, to_mask
from openimagen.errors import InvalidArgumentError
from openimagen.pipeline import to_pil
from tests.edit.test_edit import pixels, scene
from tests.pipeline.fixtures import tiny_pipeline


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


def test_outside_the_mask_is_the_input_exactly_and_inside_is_new(pipe):
    image = scene(32)
    out = pipe.inpaint(image, (8, 8, 24, 20), "a red circle", steps=3, seed=2)
    got, want = pixels(out.stages[-1]), pixels(image)
    inside = np.zeros((32, 32), bool)
    inside[8:20, 8:24] = True
    assert np.array_equal(got[~inside], want[~inside])
    assert np.abs(got[inside] - want[inside]).mean() > 5
    assert out.edit == {"mode": "inpaint", "masked_fraction": round(16 * 12 / 1024, 4)}


def test_full_mask_is_text_to_image_and_empty_mask_is_the_input(pipe):
    image = scene(32)
    t2i = pipe(["a blue square"], seed=7, steps=3)
    full = pipe.inpaint(image, torch.ones(32, 32), "a blue square", seed=7, steps=3)
    assert torch.equal(full.stages[-1], t2i.stages[-1])
    empty = pipe.inpaint(image, torch.zeros(32, 32), "a blue square", seed=7, steps=3)
    assert np.array_equal(pixels(empty.stages[-1]), pixels(image))


def test_masks_from_png_tensor_and_rectangle_agree(tmp_path):
    png = Image.new("L", (32, 32), 0)
    png.paste(255, (4, 6, 20, 30))
    png.save(tmp_path / "mask.png")
    a = to_mask(Image.open(tmp_path / "mask.png"), 32, 32)
    b = to_mask((4, 6, 20, 30), 32, 32)
    t = torch.zeros(32, 32)
    t[6:30, 4:20] = 1
    assert torch.equal(a, b) and torch.equal(b, to_mask(t, 32, 32))


@pytest.mark.parametrize("mask, words", [
    ((0, 0, 40, 10), "must lie inside the 32x32 image"),
    ((10, 0, 5, 10), "left < right"),
    (torch.full((32, 32), 2.0), "in \\[0, 1\\]"),
    ("everything", "mask must be a PIL image"),
])
def test_bad_masks_are_one_line(pipe, mask, words):
    with pytest.raises(InvalidArgumentError, match=words):
        pipe.inpaint(scene(32), mask, "a")


def test_the_wrapper_imposes_known_pixels_on_the_estimate():
    known, keep = torch.full((1, 3, 4, 4), 0.5), torch.zeros(1, 1, 4, 4)
    keep[..., :2] = 1
    wrapped = KnownRegion(lambda x, s, c: torch.full_like(x, -1.0), known, keep)
    x0 = wrapped(torch.zeros(1, 3, 4, 4), 1.0, None)
    assert (x0[..., :2] == 0.5).all() and (x0[..., 2:] == -1.0).all()


def test_outpaint_keeps_the_shrunk_centre_and_paints_the_border(pipe):
    image = scene(32)
    out = pipe.outpaint(image, "a red circle", border=4, steps=3, seed=1)
    centre = to_pil(torch.nn.functional.interpolate(
        torch.from_numpy(np.asarray(image, np.float32) / 127.5 - 1).permute(2, 0, 1)[None], size=(24, 24),
        mode="bilinear", antialias=True, align_corners=False))[0]
    assert np.array_equal(pixels(out.stages[-1])[4:28, 4:28], pixels(centre))
    assert out.edit == {"mode": "outpaint", "border": 4} and out.images[0].size == (32, 32)
    with pytest.raises(InvalidArgumentError, match="border must be an int in 1..15"):
        pipe.outpaint(image, "a", border=16)
