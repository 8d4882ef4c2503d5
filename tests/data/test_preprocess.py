"""Preprocessing: captions, alpha on white, resize policies, tensor range."""
import pytest
import torch
from PIL import Image

from openimagen.data.preprocess import (Preprocessor, SkipImage, SkipReport, load_image, normalize_caption, to_pil,
                                        to_square, to_tensor)
from openimagen.errors import InvalidArgumentError, UnknownNameError


def test_normalize_caption_strips_and_collapses_but_keeps_case():
    assert normalize_caption("  Flag:\tSouth \n\n Africa  ") == "Flag: South Africa"


def test_alpha_is_composited_on_white():
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    img.putpixel((0, 0), (255, 0, 0, 255))
    rgb = load_image(img)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == (255, 0, 0) and rgb.getpixel((5, 5)) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_grey_images_of_more_than_8_bits_are_scaled_not_saturated(mode):
    """A 16-bit grey PNG (read as "I;16"), the same values as 32-bit "I", and float "F" in [0, 1] keep their grey
    levels; PIL's plain convert("RGB") turns all three white."""
    import io

    import numpy as np

    levels = (np.arange(256, dtype=np.uint16).reshape(16, 16)) * 257            # 0 .. 65535, every 8-bit level
    arr = {"I;16": levels, "I": levels.astype(np.int32), "F": (levels / 65535).astype(np.float32)}[mode]
    img = Image.fromarray(arr)
    if mode == "I;16":                                                          # as it comes from a file
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        img = buf.getvalue()
    rgb = np.asarray(load_image(img))
    assert rgb.shape == (16, 16, 3) and np.array_equal(rgb[..., 0], levels // 257)
    assert np.array_equal(rgb[..., 0], rgb[..., 2])


def test_palette_transparency_is_white():
    img = Image.new("P", (4, 4), 0)
    img.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    img.info["transparency"] = 0
    assert load_image(img).getpixel((1, 1)) == (255, 255, 255)


def test_resize_policies():
    wide = Image.new("RGB", (40, 20), (0, 0, 255))
    crop = to_square(wide, "center_crop")
    pad = to_square(wide, "pad")
    assert crop.size == (20, 20) and crop.getpixel((0, 0)) == (0, 0, 255)
    assert pad.size == (40, 40) and pad.getpixel((0, 0)) == (255, 255, 255) and pad.getpixel((20, 20)) == (0, 0, 255)
    with pytest.raises(UnknownNameError, match="center_crop, pad"):
        to_square(wide, "stretch")


def test_preprocessor_tensor_shape_and_range():
    img = Image.new("RGB", (100, 60), (255, 0, 128))
    x = Preprocessor(32)(img)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert torch.allclose(x[:, 5, 5], torch.tensor([1.0, -1.0, 128 / 127.5 - 1]), atol=1e-6)
    assert to_pil(x).getpixel((5, 5)) == (255, 0, 128)
    assert torch.equal(to_tensor(to_pil(x)), x)


def test_antialiased_downsampling_mixes_colours():
    img = Image.new("RGB", (64, 64), (0, 0, 0))
    for i in range(0, 64, 2):
        for j in range(64):
            img.putpixel((i, j), (255, 255, 255))
    x = Preprocessor(16)(img)
    assert (x.mean() - 0).abs() < 0.1  # stripes average to grey, not aliased to black or white


def test_bad_images_raise_skip(tmp_path):
    (tmp_path / "fake.png").write_text("not an image")
    with pytest.raises(SkipImage, match="not an image"):
        load_image(tmp_path / "fake.png")
    with pytest.raises(SkipImage, match="not found"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(SkipImage, match="too small"):
        Preprocessor(8, min_size=10)(Image.new("RGB", (9, 30)))


def test_bad_preprocessor_args():
    with pytest.raises(InvalidArgumentError, match="size"):
        Preprocessor(0)
    with pytest.raises(InvalidArgumentError, match="min_size"):
        Preprocessor(8, min_size=-1)


def test_report_round_trip(tmp_path):
    r = SkipReport()
    r.loaded = 3
    r.add("a", "too small: 2x2 < min_size 8")
    path = r.write(tmp_path / "report.json")
    import json
    data = json.loads(path.read_text())
    assert data == {"loaded": 3, "skipped": 1, "by_reason": {"too small": 1},
                    "items": [{"key": "a", "reason": "too small: 2x2 < min_size 8"}]}
