"""The fine-tuning concept (issue 14, point 4): a shape whose word the default model's data never holds, drawn in
the training colours only, and the prompts that measure it; plus the prior-preservation class-image builder."""
import json

import pytest

from openimagen.data.concept import HELDOUT_COLORS, TRAIN_COLORS, build_concept, concept_cases
from openimagen.errors import InvalidArgumentError


def test_the_concept_set_shows_crosses_in_training_colours_with_builder_captions(tmp_path):
    result = build_concept(tmp_path / "c", count=12, seed=3)
    rows = [json.loads(line) for line in result.manifest.read_text().splitlines()]
    assert len(rows) == 12 and all((tmp_path / "c" / r["path"]).is_file() for r in rows)
    for r in rows:
        (obj,) = r["labels"]["objects"]
        assert obj["shape"] == "cross" and obj["color"] in TRAIN_COLORS
        assert r["caption"] == f"a {obj['size']} {obj['color']} cross"
    assert {r["labels"]["objects"][0]["color"] for r in rows} == set(TRAIN_COLORS)
    again = build_concept(tmp_path / "d", count=12, seed=3)
    assert again.manifest.read_text() == result.manifest.read_text()


def test_the_default_models_training_vocabulary_never_names_the_concept():
    from openimagen.data.shapes_scene import SHAPES
    from openimagen.eval.prompts import load_split

    assert "cross" not in SHAPES
    assert not any("cross" in c.prompt for s in ("seen", "heldout") for c in load_split(s))


def test_the_measurement_prompts_hold_out_colours_and_counts():
    cases = concept_cases()
    assert [c.prompt for c in cases["heldout_colors"]] == ["a purple cross", "an orange cross"]
    assert all(o.color in HELDOUT_COLORS for c in cases["heldout_colors"] for o in c.objects)
    assert {o.count for c in cases["counting"] for o in c.objects} == {2, 3}
    assert "two red crosses" in [c.prompt for c in cases["counting"]]


@pytest.mark.parametrize("kwargs, message", [({"count": 0}, "count must be"), ({"size": 8}, "size must be"),
                                             ({"shape": "circle"}, "a shape the model never saw")])
def test_bad_concept_arguments_are_one_line(tmp_path, kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        build_concept(tmp_path / "x", **kwargs)


def test_prior_images_are_the_models_own_samples_captioned_with_their_prompt(tmp_path):
    import numpy as np
    from PIL import Image

    from openimagen.data.prior import build_prior
    from tests.pipeline.fixtures import tiny_pipeline

    pipe = tiny_pipeline()
    pipe.watermark = None
    result = build_prior(tmp_path / "p", pipe, ["a red circle", "a blue square"], images_per_prompt=2, seed=4)
    rows = [json.loads(line) for line in result.manifest.read_text().splitlines()]
    assert [r["caption"] for r in rows] == ["a red circle"] * 2 + ["a blue square"] * 2
    direct = pipe("a blue square", seed=7, stop_at_stage=0).images[0]              # image 3 has seed 4 + 3
    written = np.asarray(Image.open(tmp_path / "p" / rows[3]["path"]).convert("RGB")).astype(int)
    assert written.shape == (16, 16, 3)                                            # the base stage's resolution
    assert np.abs(written - np.asarray(direct).astype(int)).max() <= 1             # batched mode: one 8-bit step
    with pytest.raises(InvalidArgumentError, match="at least one non-empty class prompt"):
        build_prior(tmp_path / "q", pipe, [" "])


def test_the_data_commands_build_the_concept_and_prior_folders(tmp_path, capsys):
    from openimagen.cli.main import main
    from tests.pipeline.fixtures import tiny_pipeline

    assert main(["data", "concept", str(tmp_path / "c"), "--count", "3"]) == 0
    assert len((tmp_path / "c" / "manifest.jsonl").read_text().splitlines()) == 3
    model = tiny_pipeline().save_pretrained(tmp_path / "m")
    assert main(["data", "prior", str(tmp_path / "p"), "--model", str(model), "--prompt", "a red circle",
                 "--prompt", "a blue star", "--num-images", "2"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "p" / "manifest.jsonl").read_text().splitlines()]
    assert [r["caption"] for r in rows] == ["a red circle"] * 2 + ["a blue star"] * 2
    assert "prior: wrote 4 images" in capsys.readouterr().out
    assert main(["data", "concept", str(tmp_path / "x"), "--count", "0"]) == 2
