"""The invisible watermark: embedded on every output, found after PNG, JPEG 75 and halving; absent from unmarked."""
import io

import numpy as np
import pytest
from PIL import Image

from openimagen.data.shapes import make_scene
from openimagen.safety import Watermark

SCENES = [make_scene(i, seed=7, split="train", size=64)[0].convert("RGB") for i in range(12)]
WM = Watermark()


def _jpeg(im: Image.Image, quality: int = 75) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _half_and_back(im: Image.Image) -> Image.Image:
    w, h = im.size
    return im.resize((w // 2, h // 2), Image.BICUBIC).resize((w, h), Image.BICUBIC)


def test_marks_are_small_and_found_after_png_jpeg_and_halving():
    for im in SCENES:
        marked = WM.embed(im)
        diff = np.abs(np.asarray(marked, np.int16) - np.asarray(im, np.int16))
        assert diff.max() <= 3                                  # amplitude 3 grey levels, clipped at 0/255
        png = io.BytesIO()
        marked.save(png, "PNG")
        assert WM.detect(Image.open(png)).present
        assert WM.detect(_jpeg(marked)).present
        assert WM.detect(_half_and_back(marked)).present


def test_unmarked_images_and_other_keys_are_not_detected():
    zs = [WM.detect(im).z for im in SCENES]
    assert max(zs) < WM.threshold, zs
    other = Watermark(key=12345)
    assert not any(other.detect(WM.embed(im)).present for im in SCENES)
    assert not WM.detect(Image.new("RGB", (64, 64), "white")).present       # flat: nothing to correlate


@pytest.mark.parametrize("size", [(8, 8), (32, 32), (64, 48), (256, 256)])
def test_any_size_from_8_pixels(size):
    rng = np.random.default_rng(0)                   # smooth random content, like a generated image's
    im = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
    assert WM.embed(im).size == im.size
    if min(size) >= 32:
        assert WM.detect(WM.embed(im)).present
    assert not WM.detect(im.resize((4, 4))).present                           # too small to carry a mark


def test_pipeline_marks_its_images_and_keeps_raw_stages():
    from openimagen.pipeline import to_pil
    from tests.pipeline.fixtures import tiny_pipeline

    pipe = tiny_pipeline()
    out = pipe(["a red circle"], seed=0, steps=2)
    raw = to_pil(out.stages[-1])[0]
    assert np.array_equal(np.asarray(out.images[0]), np.asarray(WM.embed(raw)))
    pipe.watermark = None
    assert np.array_equal(np.asarray(pipe(["a red circle"], seed=0, steps=2).images[0]), np.asarray(raw))
