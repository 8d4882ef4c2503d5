"""``openimagen edit``: each mode writes a PNG with its edit record; bad inputs are one line with exit code 2."""

import numpy as np
import pytest
from PIL import Image

from openimagen.pipeline.provenance import read_record
from tests.cli.test_cli import run
from tests.edit.test_edit import scene
from tests.pipeline.fixtures import tiny_pipeline


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_pipeline().save_pretrained(tmp_path_factory.mktemp("edit_cli") / "model")


@pytest.fixture
def image(tmp_path):
    rgba = scene(32).convert("RGBA")
    rgba.putpixel((0, 0), (10, 20, 30, 0))                     # one transparent pixel: composited on white
    rgba.save(tmp_path / "in.png")
    return tmp_path / "in.png"


@pytest.mark.parametrize("mode, extra, edit", [
    ("img2img", ["--strength", "0.4"], {"mode": "img2img", "strength": 0.4, "start_stage": 1}),
    ("inpaint", ["--rect", "4,4,20,20"], {"mode": "inpaint", "masked_fraction": 0.25}),
    ("outpaint", ["--border", "4"], {"mode": "outpaint", "border": 4}),
    ("upscale", ["--aug-level", "0.1"], {"mode": "upscale", "start_stage": 1}),
    ("restore", ["--kind", "denoise", "--noise-level", "0.2"],
     {"mode": "restore", "kind": "denoise", "start_stage": 1, "noise_level": 0.2, "debias_clipping": True}),
    ("restore", ["--kind", "denoise", "--noise-level", "0.2", "--no-debias-clipping"],
     {"mode": "restore", "kind": "denoise", "start_stage": 1, "noise_level": 0.2, "debias_clipping": False}),
])
def test_each_mode_writes_a_png_with_its_record(model, image, tmp_path, capsys, mode, extra, edit):
    out = tmp_path / f"{mode}.png"
    code, stdout, err = run(capsys, "edit", mode, image, "--prompt", "a red circle", "--model", model, "-o", out,
                            "--steps", 2, "--no-progress", *extra)
    assert code == 0, err
    assert Image.open(out).size == (32, 32) and read_record(out)["edit"] == edit


def test_inpaint_with_a_mask_png_keeps_the_unmasked_pixels(model, image, tmp_path, capsys):
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    mask.save(tmp_path / "mask.png")
    out = tmp_path / "out.png"
    code, _, _ = run(capsys, "edit", "inpaint", image, "--mask", tmp_path / "mask.png", "--model", model, "-o", out,
                     "--steps", 2, "--no-progress", "--no-watermark")
    assert code == 0
    got = np.asarray(Image.open(out).convert("RGB"), np.int16)
    want = np.asarray(Image.open(image).convert("RGBA"))
    keep = np.ones((32, 32), bool)
    keep[8:24, 8:24] = False
    keep[0, 0] = False                                          # the transparent pixel became white
    assert np.array_equal(got[keep], want[..., :3].astype(np.int16)[keep])
    assert tuple(got[0, 0]) == (255, 255, 255)


@pytest.mark.parametrize("argv, words", [
    (["img2img", "missing.png"], "cannot read missing.png as an image"),
    (["img2img", "IMG", "--strength", "1.5"], "--strength must be a number in [0, 1]"),
    (["inpaint", "IMG"], "exactly one of --mask PNG or --rect"),
    (["inpaint", "IMG", "--rect", "1,2,3"], "--rect must be four integers"),
    (["inpaint", "IMG", "--rect", "0,0,99,10"], "--rect: the mask rectangle"),
    (["inpaint", "IMG", "--mask", "SMALLMASK"], "--mask is 8x8 but the image is 32x32"),
    (["outpaint", "IMG", "--border", "40"], "--border: border must be an int"),
    (["upscale", "IMG", "--stage", "0"], "--stage: stage must be a super-resolution stage"),
    (["restore", "IMG", "--kind", "denoise", "--mask", "SMALLMASK"], "--mask: mask is only used by kind scratches"),
    (["restore", "IMG", "--kind", "jpeg", "--scratch-threshold", "0.2"],
     "--scratch-threshold: scratch_threshold is only used by kind scratches"),
])
def test_bad_edit_input_is_one_line_exit_2(model, image, tmp_path, capsys, argv, words):
    Image.new("L", (8, 8)).save(tmp_path / "small_mask.png")
    argv = [str(image) if a == "IMG" else str(tmp_path / "small_mask.png") if a == "SMALLMASK" else a for a in argv]
    code, _, err = run(capsys, "edit", *argv, "--model", model, "-o", tmp_path / "x.png", "--steps", 2)
    assert code == 2 and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("mode, extra, size", [("inpaint", ["--rect", "2,2,10,6"], (45, 27)),
                                               ("img2img", ["--fit", "pad", "--strength", "0.3"], (32, 32)),
                                               ("upscale", ["--fit", "center_crop"], (32, 32))])
def test_a_non_square_image_of_odd_size_works(model, tmp_path, capsys, mode, extra, size):
    src = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (27, 45, 3), dtype=np.uint8)).save(src)
    out = tmp_path / "out.png"
    code, _, err = run(capsys, "edit", mode, src, "--prompt", "a red circle", "--model", model, "-o", out,
                       "--steps", 2, "--no-progress", "--no-watermark", *extra)
    assert code == 0, err
    assert Image.open(out).size == size
    if mode == "inpaint":                                     # outside the rectangle: the original, exactly
        got, orig = np.asarray(Image.open(out).convert("RGB")), np.asarray(Image.open(src))
        keep = np.ones((27, 45), bool)
        keep[2:6, 2:10] = False
        assert np.array_equal(got[keep], orig[keep])
