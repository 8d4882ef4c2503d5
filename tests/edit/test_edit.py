"""Image-to-image (SDEdit) and upscaling of user images: the closed cases (strength 0 and 1), which stage the
cascade starts at, distance to the input growing with strength, and clear errors."""
import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from openimagen.errors import InvalidArgumentError
from openimagen.pipeline import Pipeline, to_pil
from openimagen.data.shapes import make_scene
from tests.pipeline.fixtures import tiny_pipeline


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


def scene(side: int, index: int = 0) -> Image.Image:
    return make_scene(index, seed=5, split="train", size=side)[0].convert("RGB")


def pixels(x) -> np.ndarray:
    return np.asarray(x if isinstance(x, Image.Image) else to_pil(x)[0], dtype=np.int16)


def test_strength_zero_returns_the_input_at_the_last_stage(pipe):
    image = scene(32)                                             # 32 px: the tiny cascade's last stage
    out = pipe.img2img(image, "a red circle", strength=0.0, steps=3)
    assert out.edit == {"mode": "img2img", "strength": 0.0, "start_stage": 1}
    assert np.array_equal(pixels(out.stages[-1]), pixels(image))   # exact up to the uint8 round trip
    assert out.images[0].size == (32, 32)


def test_strength_one_is_text_to_image_with_the_same_seed(pipe):
    t2i = pipe(["a blue square"], seed=9, steps=3)
    edit = pipe.img2img(scene(16), "a blue square", strength=1.0, seed=9, steps=3)   # 16 px: starts at the base
    assert edit.edit["start_stage"] == 0
    for a, b in zip(t2i.stages, edit.stages):
        assert torch.equal(a, b)


def test_start_stage_follows_the_input_size(pipe):
    assert pipe.img2img(scene(16), "a", strength=0.5, steps=2).edit["start_stage"] == 0
    assert pipe.img2img(scene(32), "a", strength=0.5, steps=2).edit["start_stage"] == 1
    out = pipe.img2img(scene(48), "a", strength=0.5, steps=2)       # no stage makes 48 px: resized to the base
    assert out.edit["start_stage"] == 0 and len(out.stages) == 2 and out.images[0].size == (32, 32)


def test_one_image_per_prompt_and_seeds(pipe):
    out = pipe.img2img([scene(32, 0), scene(32, 1)], ["a", "b"], strength=0.3, num_images_per_prompt=2, steps=2,
                       seed=4)
    assert len(out.images) == 4 and out.seeds == [4, 5, 6, 7]
    with pytest.raises(InvalidArgumentError, match="one image, or one per prompt"):
        pipe.img2img([scene(32, 0), scene(32, 1)], ["a", "b", "c"], strength=0.3)


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan"), "0.5", True])
def test_bad_strength_is_one_line(pipe, strength):
    with pytest.raises(InvalidArgumentError, match=r"strength must be a number in \[0, 1\]"):
        pipe.img2img(scene(32), "a", strength=strength)


def test_bad_images_are_one_line(pipe):
    with pytest.raises(InvalidArgumentError, match="one size"):
        pipe.img2img([scene(32), scene(16)], ["a", "b"])
    with pytest.raises(InvalidArgumentError, match="PIL images or a"):
        pipe.img2img("not an image", "a")
    with pytest.raises(InvalidArgumentError, match="in \\[-1, 1\\]"):
        pipe.img2img(torch.full((1, 3, 32, 32), 3.0), "a")


def test_distance_to_the_input_grows_with_strength_on_the_default_model():
    default = Pipeline.from_pretrained()
    image = scene(64, 2)
    dist = []
    for strength in (0.2, 0.5, 0.9):
        out = default.img2img(image, "a red circle above a blue square", strength=strength, seed=0)
        dist.append(float(np.abs(pixels(out.stages[-1]) - pixels(image)).mean()))
    assert dist[0] < dist[1] < dist[2], dist
    assert dist[0] < 12                                          # a light edit stays close (0..255 scale)


def test_upscale_a_user_image_with_the_sr_stage(pipe):
    image = scene(64)                                            # any size: resized to the SR stage's 16 px input
    out = pipe.upscale(image, aug_level=0.0, steps=2, seed=1)
    assert out.edit == {"mode": "upscale", "start_stage": 1} and out.images[0].size == (32, 32)
    base, sr = out.settings                                      # what ran: consistency from pure noise at the SR
    assert sr.lowres_consistency and sr.sr_strength == 1.0       # stage; the base did not run: its own defaults
    assert base == dataclasses.replace(pipe.stages[0].config.sampling, steps=2, aug_level=0.0)
    again = pipe.upscale(image, aug_level=0.0, steps=2, seed=1)
    assert torch.equal(out.stages[-1], again.stages[-1])
    other = pipe.upscale(image, aug_level=0.5, steps=2, seed=1)
    assert not torch.equal(out.stages[-1], other.stages[-1])     # the augmentation level reaches the stage
    with pytest.raises(InvalidArgumentError, match="super-resolution stage index in 1..1"):
        pipe.upscale(image, stage=0)


def test_upscale_stays_close_to_the_input_on_the_default_model():
    default = Pipeline.from_pretrained()
    image = scene(64, 3)
    up = pixels(default.upscale(image.resize((32, 32), Image.BILINEAR), aug_level=0.1, seed=0).stages[-1])
    unrelated = pixels(default.upscale(scene(64, 7).resize((32, 32), Image.BILINEAR), aug_level=0.1,
                                       seed=0).stages[-1])
    own, other = np.abs(up - pixels(image)).mean(), np.abs(unrelated - pixels(image)).mean()
    assert own < 0.5 * other, (own, other)


def test_an_edited_image_records_how_it_was_made(pipe):
    out = pipe.img2img(scene(32), "a", strength=0.4, steps=2)
    assert out.record(0)["edit"] == {"mode": "img2img", "strength": 0.4, "start_stage": 1}


def test_cli_generate_with_an_init_image(tmp_path, capsys):
    from openimagen.cli.main import main
    from openimagen.pipeline.provenance import read_record

    model = tiny_pipeline().save_pretrained(tmp_path / "model")
    scene(32).save(tmp_path / "in.png")
    code = main(["generate", "a red circle", "--model", str(model), "--image", str(tmp_path / "in.png"),
                 "--strength", "0.5", "--steps", "2", "-o", str(tmp_path / "out.png"), "--no-progress"])
    assert code == 0
    record = read_record(tmp_path / "out.png")
    assert record["edit"] == {"mode": "img2img", "strength": 0.5, "start_stage": 1}
    capsys.readouterr()
    code = main(["generate", "--from-png", str(tmp_path / "out.png"), "-o", str(tmp_path / "again.png")])
    assert code == 2 and "cannot be re-created" in capsys.readouterr().err
    for argv, words in ([["--strength", "2"], "--strength must be a number in [0, 1]"],
                        [["--image", str(tmp_path / "missing.png")], "--image: cannot read"]):
        code = main(["generate", "a", "--model", str(model), "--image", str(tmp_path / "in.png"), *argv,
                     "-o", str(tmp_path / "x.png")])
        err = capsys.readouterr().err
        assert code == 2 and words in err and err.count("\n") == 1, err


def test_upscale_beats_bicubic_on_the_feature_distance_on_held_out_images():
    """Issue 13's acceptance: real 32 px images (held-out shapes scenes and emoji, fixed) upscaled by the shipped
    model are nearer the real 64 px images in the project's feature space (the emoji classifier's features) than
    bicubic upsampling is. Measured (benchmarks/upscale_vs_bicubic.py, 8 + 8 images): 0.002 vs 0.28 and 0.07 vs
    0.55; the margin asked here is 2x."""
    import torch.nn.functional as F

    from openimagen.data.emojis import NOTO_EMOJI_FONT, _init_font, read_emoji_test, render_emoji
    from openimagen.edit.inputs import resize, to_tensor
    from openimagen.eval.emoji_classifier import load_classifier

    _init_font(str(NOTO_EMOJI_FONT))
    emoji = [render_emoji(e.chars, 64).convert("RGB") for e in read_emoji_test()[5::37][:4]]
    sets = {"shapes": [make_scene(i, seed=3, split="heldout", size=64)[0].convert("RGB") for i in range(4)],
            "emoji": emoji}
    default, clf = Pipeline.from_pretrained(watermark=None), load_classifier().eval()
    for name, images in sets.items():
        real = to_tensor(images)
        low = resize(real, 32)
        bicubic = F.interpolate(low, size=(64, 64), mode="bicubic", align_corners=False).clamp(-1, 1)
        ours = torch.cat([default.upscale(low[k:k + 1], "", seed=k).stages[-1] for k in range(len(low))])
        with torch.no_grad():
            f_real = clf.features(real)
            dist = {k: (clf.features(x) - f_real).norm(dim=1).mean().item() for k, x in
                    (("ours", ours), ("bicubic", bicubic))}
        assert dist["ours"] < 0.5 * dist["bicubic"], (name, dist)
