"""``openimagen eval`` end to end on a tiny random cascade (its images are noise: only structure and ranges are
checked), scoring a folder of builder renders (every one correct), and one-line errors for bad input."""
import argparse
import json
import random

import pytest
from PIL import Image

from openimagen.cli.eval import add_eval_parser
from openimagen.eval.prompts import CATEGORIES, load_split
from openimagen.eval.render import render_case
from tests.eval.conftest import run_cli








@pytest.fixture(scope="module")
def evaluated(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "--model", str(model), "--suite", "shapes", "--split", "both", "--limit", "1",
                              "--images-per-prompt", "2", "--steps", "2", "--seed", "7", "--out", str(out),
                              "--no-progress"])
    assert args.func(args) == 0
    return out


def test_eval_writes_json_markdown_and_grid(evaluated):
    res = json.loads((evaluated / "results.json").read_text())
    assert set(res["sets"]) == {"seen", "heldout"}
    for summary in list(res["sets"].values()) + [res["overall"]]:
        assert 0.0 <= summary["overall"] <= 1.0
        assert set(summary["categories"]) == set(CATEGORIES)
        for v in summary["categories"].values():
            assert 0.0 <= v["accuracy"] <= 1.0 and v["images"] == 2 * v["prompts"]
        assert summary["overall"] == pytest.approx(
            sum(v["accuracy"] for v in summary["categories"].values()) / len(CATEGORIES))
    assert res["overall"]["images"] == 2 * 2 * len(CATEGORIES) == len(res["samples"])
    assert res["settings"]["images_per_prompt"] == 2 and res["settings"]["eval_resolution"] == 64
    assert res["speed"]["images"] == 24 and res["speed"]["seconds_per_image"] > 0
    assert set(res["speed"]["stage_seconds_per_image"]) >= {"stage0", "stage1"}
    s = res["samples"][1]
    assert s["k"] == 1 and s["seed"] == 7 + 1 and isinstance(s["correct"], bool)
    assert Image.open(evaluated / s["image"]).size == (32, 32)
    md = (evaluated / "report.md").read_text()
    assert "overall" in md and "color_attr" in md and "| seen | heldout | all |" in md.replace("category | ", "")
    grid = Image.open(evaluated / "grid.png")
    assert grid.size[0] > 128 and grid.size[1] > 128


def test_same_seed_same_images(evaluated, model, tmp_path):
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "again"
    args = parser.parse_args(["eval", "--model", str(model), "--split", "seen", "--limit", "1", "--images-per-prompt",
                              "2", "--steps", "2", "--seed", "7", "--batch-size", "1", "--out", str(out),
                              "--no-progress"])
    assert args.func(args) == 0
    first = json.loads((evaluated / "results.json").read_text())["samples"][0]
    again = json.loads((out / "results.json").read_text())["samples"][0]
    assert first["image"] == again["image"]
    assert Image.open(evaluated / first["image"]).tobytes() == Image.open(out / again["image"]).tobytes()


def test_score_folder_of_renders_is_all_correct(tmp_path, capsys):
    folder = tmp_path / "renders"
    folder.mkdir()
    rng = random.Random(0)
    cases = [c for c in load_split("heldout")][::4]
    for c in cases:
        render_case(c, 64, rng)[0].save(folder / f"{c.id}_0.png")
    (folder / "unrelated.png").write_bytes(b"")                       # not a prompt id: ignored
    code, out, _ = run_cli(capsys, "eval", "--suite", "shapes", "--split", "heldout", "--score-folder", folder,
                       "--out", tmp_path / "scored", "--no-progress")
    assert code == 0 and "overall 1.000" in out
    res = json.loads((tmp_path / "scored" / "results.json").read_text())
    assert res["overall"]["images"] == len(cases) and res["overall"]["overall"] == 1.0
    assert res["settings"]["missing_prompts"] == len(load_split("heldout")) - len(cases)


@pytest.mark.parametrize("argv, match", [
    (["--suite", "drawbench", "--model", "m"], "unknown suite 'drawbench'; valid: emoji, folder, shapes"),
    (["--split", "train", "--model", "m"], "unknown split 'train'; valid: both, heldout, seen"),
    (["--images-per-prompt", "0", "--model", "m"], "--images-per-prompt must be >= 1"),
    (["--limit", "0", "--model", "m"], "--limit must be >= 1"),
    (["--steps", "0", "--model", "m"], "--steps must be >= 1"),
    (["--sampler", "plms", "--model", "m"], "unknown sampler 'plms'"),
    (["--guidance", "4,-1", "--model", "m"], "--guidance must be >= 0"),
    (["--aug-level", "1.5", "--model", "m"], "--aug-level must be in [0, 1)"),
    ([], "give --model DIR"),
    (["--prompts", "/nonexistent/p.json", "--model", "m"], "does not exist"),
])
def test_bad_arguments(capsys, argv, match):
    code, _, err = run_cli(capsys, "eval", *argv)
    assert code == 2 and match in err and err.startswith("error: ") and err.count("\n") == 1


def test_not_a_model_directory(capsys, tmp_path):
    code, _, err = run_cli(capsys, "eval", "--model", tmp_path, "--limit", "1", "--out", tmp_path / "o", "--no-progress")
    assert code == 2 and err.startswith("error: ")


def test_empty_score_folder(capsys, tmp_path):
    code, _, err = run_cli(capsys, "eval", "--score-folder", tmp_path, "--out", tmp_path / "o", "--no-progress")
    assert code == 2 and "no images in" in err


def test_registered_in_main_cli():
    from openimagen.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    if "eval" not in sub.choices:
        pytest.skip("openimagen.cli.main does not register `eval` yet (add_eval_parser(sub))")
    assert sub.choices["eval"].get_default("func").__name__ == "run_eval"


def test_per_stage_guidance_and_aug_level_change_the_images(model, tmp_path, capsys):
    runs = {}
    for name, extra in (("a", ()), ("b", ("--guidance", "0,3", "--aug-level", "0.5"))):
        code, _, err = run_cli(capsys, "eval", "--model", model, "--limit", "1", "--images-per-prompt", "1",
                               "--steps", "2", "--no-progress", "--out", tmp_path / name, *extra)
        assert code == 0, err
        runs[name] = json.loads((tmp_path / name / "results.json").read_text())
    assert runs["b"]["settings"]["guidance"] == [0.0, 3.0] and runs["b"]["settings"]["aug_level"] == 0.5
    a = sorted((tmp_path / "a").rglob("*.png"))
    b = sorted((tmp_path / "b").rglob("*.png"))
    assert any(x.read_bytes() != y.read_bytes() for x, y in zip(a, b) if x.name != "grid.png")
