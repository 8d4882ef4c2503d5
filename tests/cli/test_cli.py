"""The CLI: generate and info on a real model directory, and a one-line error with exit code 2 for bad input."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from openimagen.cli.main import main
from tests.pipeline.fixtures import tiny_pipeline


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_pipeline().save_pretrained(tmp_path_factory.mktemp("cli") / "model")


def pixels(image) -> list:
    return np.asarray(image).tolist()


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_writes_png_with_metadata(model, tmp_path, capsys):
    out = tmp_path / "sub" / "img.png"
    code, stdout, _ = run(capsys, "generate", "a red square", "--model", model, "-o", out, "--steps", 3,
                          "--seed", 42, "--sampler", "ddim", "--guidance", 2.5)
    assert code == 0 and "wrote" in stdout
    im = Image.open(out)
    assert im.size == (32, 32)
    assert im.text["prompt"] == "a red square" and im.text["seed"] == "42" and im.text["model"] == str(model)
    record = json.loads(im.text["openimagen"])
    req = record["request"]
    assert req["sampler"] == ["ddim", "ddim"] and req["steps"] == [3, 3] and req["guidance"] == [2.5, 2.5]
    assert req["threshold"] and req["spacing"] and req["aug_level"] and req["percentile"]   # every setting, resolved
    assert record["model_hash"] == im.text["model_hash"] and len(record["model_hash"]) == 16
    assert record["openimagen_version"] and record["model"] == str(model)


def test_generate_several_images_writes_each_and_a_grid(model, tmp_path, capsys):
    out = tmp_path / "grid.png"
    code, _, _ = run(capsys, "generate", "a red square", "a blue circle", "--num-images", 2, "--model", model,
                     "-o", out, "--steps", 2, "--no-progress")
    assert code == 0
    assert Image.open(out).size == (64, 64)
    singles = sorted(tmp_path.glob("grid-*.png"))
    assert len(singles) == 4
    assert Image.open(singles[3]).text["prompt"] == "a blue circle" and Image.open(singles[3]).text["seed"] == "3"
    assert json.loads(Image.open(out).text["prompts"])[0] == "a red square"


def test_info(model, capsys):
    code, out, _ = run(capsys, "info", model)
    assert code == 0
    assert "base 16px" in out and "super-resolution 16->32px" in out and "parameters" in out
    assert "minilm-l6-v2" in out and "output: 32x32" in out
    assert "edits: upscale runs its SR stages with low-res consistency" in out


@pytest.mark.parametrize("argv, match", [
    (["generate", "a", "--sampler", "plms"], "unknown sampler 'plms'; valid: ddim, ddpm, dpmpp_2m, euler, heun"),
    (["generate", "a", "--steps", "0"], "--steps should be greater than or equal to 1, got 0"),
    (["generate", "a", "--steps", "3,x"], "--steps must be an integer, or one per stage"),
    (["generate", "a", "--guidance", "-2"], "--guidance should be greater than or equal to 0"),
    (["generate", "a", "--guidance", "nan"], "--guidance should be a finite number"),
    (["generate", "a", "--spacing", "cosine"], "unknown spacing 'cosine'; valid: karras, logsnr, time"),
    (["generate", "a", "--percentile", "1.5"], "--percentile should be less than or equal to 1"),
    (["generate", "a", "--aug-level", "0,1"], "--aug-level[1] should be less than 1"),
    (["generate", "a", "--num-images", "0"], "--num-images"),
    (["generate", "a", "--seed", "-1"], "--seed should be greater than or equal to 0"),
    (["generate", "a", "--stop-at-stage", "5"], "--stop-at-stage must be a stage index"),
    (["generate", "a", "--dtype", "int8"], "--dtype must be one of float32, float16, bfloat16"),
    (["generate", "--from-png", "missing.png"], "cannot read missing.png"),
    (["generate"], "give at least one prompt"),
    (["generate", "a", "-o", "x.jpg"], "must end in .png"),
    (["generate", "a", "--device", "cuda"], "--device: device 'cuda' requested but CUDA is not available"),
    (["generate", "a", "--device", "meta"], "--device: device 'meta' cannot run models"),
    (["generate", "a", "--device", "banana"], "--device: invalid device 'banana'"),
    (["generate", "a", "--device", "toaster"], "--device: invalid device 'toaster'"),
])
def test_bad_generate_input_is_one_line_exit_2(model, tmp_path, capsys, argv, match):
    argv = argv + ["--model", str(model)] + ([] if "-o" in argv else ["-o", str(tmp_path / "x.png")])
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and match in err, err


def test_bad_model_dirs_are_one_line_exit_2(model, tmp_path, capsys):
    code, _, err = run(capsys, "info", tmp_path / "missing")
    assert code == 2 and "does not exist" in err and err.count("\n") == 1
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "pipeline.json").write_text(json.dumps({"stages": ["s0"]}))
    code, _, err = run(capsys, "generate", "a", "--model", broken, "-o", tmp_path / "y.png")
    assert code == 2 and "s0/config.json is missing" in err


def test_console_script_entry_point(model, tmp_path):
    exe = Path(sys.executable).with_name("openimagen")
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    r = subprocess.run([str(exe), "generate", "--model", str(model), "--steps", "0", "a"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == "error: --steps should be greater than or equal to 1, got 0"
    r = subprocess.run([str(exe), "info", str(model)], capture_output=True, text=True)
    assert r.returncode == 0 and "stage 1" in r.stdout


def test_per_stage_values_parse_and_name_the_flag():
    from openimagen.cli.values import per_stage, per_stage_float
    from openimagen.errors import InvalidArgumentError

    assert per_stage("32,16", "--steps", int) == (32, 16) and per_stage("ddim", "--sampler") == "ddim"
    with pytest.raises(InvalidArgumentError, match="--steps must be an integer"):
        per_stage("3.5", "--steps", int)
    assert per_stage_float("4", "--guidance") == 4.0 and per_stage_float("4,1", "--guidance") == (4.0, 1.0)
    assert per_stage_float(None, "--guidance") is None and per_stage_float((4.0, 1.0), "--guidance") == (4.0, 1.0)
    for bad, match in (("x", "one per stage"), ("4,-1", ">= 0"), ("1.0", r"in \[0, 1\)")):
        with pytest.raises(InvalidArgumentError, match=match):
            per_stage_float(bad, "--aug-level" if bad == "1.0" else "--guidance", 0.0, 1.0 if bad == "1.0" else float("inf"))


def test_generate_takes_one_guidance_per_stage(model, tmp_path, capsys):
    code, out, err = run(capsys, "generate", "a red circle", "--model", model, "-o", tmp_path / "g.png",
                         "--guidance", "3,1", "--steps", "2")
    assert code == 0, err
    code, _, err = run(capsys, "generate", "a", "--model", model, "-o", tmp_path / "h.png", "--guidance", "3,1,1")
    assert code == 2 and "3 values but the cascade has 2 stages" in err


def test_png_round_trip_through_from_png_gives_the_same_image(model, tmp_path, capsys):
    """The record in a PNG re-creates it: same pixels, from the PNG alone (prompt, negative prompt, seed, every
    per-stage setting, model). A PNG with no record gets one line."""
    first = tmp_path / "first.png"
    code, _, err = run(capsys, "generate", "a red square", "--model", model, "-o", first, "--steps", "3,2",
                       "--seed", 9, "--negative-prompt", "blue", "--sampler", "ddim,euler", "--no-progress")
    assert code == 0, err
    again = tmp_path / "again.png"
    code, _, err = run(capsys, "generate", "--from-png", first, "-o", again, "--no-progress")
    assert code == 0 and "warning" not in err, err
    a, b = Image.open(first), Image.open(again)
    assert pixels(a) == pixels(b)
    assert json.loads(a.text["openimagen"])["request"] == json.loads(b.text["openimagen"])["request"]
    other = tmp_path / "other.png"
    run(capsys, "generate", "a red square", "--model", model, "-o", other, "--steps", "3,2", "--seed", 10,
        "--sampler", "ddim,euler", "--no-progress")
    assert pixels(Image.open(other)) != pixels(a)          # the comparison can fail
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    code, _, err = run(capsys, "generate", "--from-png", plain, "-o", tmp_path / "z.png")
    assert code == 2 and "has no openimagen generation record" in err and err.count("\n") == 1
    code, _, err = run(capsys, "generate", "a", "--from-png", first, "-o", tmp_path / "z.png")
    assert code == 2 and "--from-png takes its prompt and settings from the PNG" in err


def test_from_png_of_one_image_of_a_batch(model, tmp_path, capsys):
    """Image k of a batch carries its own request (its prompt and seed alone); in bit-exact mode re-creating it
    alone gives the same pixels."""
    grid = tmp_path / "grid.png"
    code, _, err = run(capsys, "generate", "a red square", "a blue circle", "--num-images", 2, "--model", model,
                       "-o", grid, "--steps", 2, "--batch-invariant", "--no-progress")
    assert code == 0, err
    third = tmp_path / "grid-002.png"
    req = json.loads(Image.open(third).text["openimagen"])["request"]
    assert req["prompts"] == ["a blue circle"] and req["seed"] == 2 and req["batch_invariant"] is True
    code, _, err = run(capsys, "generate", "--from-png", third, "-o", tmp_path / "again.png", "--no-progress")
    assert code == 0, err
    assert pixels(Image.open(third)) == pixels(Image.open(tmp_path / "again.png"))


@pytest.mark.parametrize("argv, words", [
    (["eval", "--suite", "shapes", "--score-folder", "{dir}", "--out", "{file}/x"], "--out {file}/x: {file} is a file"),
    (["eval", "--suite", "shapes", "--score-folder", "{dir}", "--out", "{file}"], "--out {file} is a file"),
    (["bench", "--out", "{file}/b.json"], "--out {file}/b.json: {file} is a file"),
    (["bench", "--out", "{dir}"], "--out {dir} is a directory"),
    (["data", "check", "{dir}", "--report", "{dir}"], "--report {dir} is a directory"),
    (["data", "check", "{dir}", "--report", "{file}/r.json"], "--report {file}/r.json: {file} is a file"),
])
def test_output_locations_that_cannot_be_written_are_one_line_before_any_work(tmp_path, capsys, argv, words):
    """Issue 10, kind 5: eval --out, bench --out and data check --report are checked first (exit 2, no traceback)."""
    (tmp_path / "f").write_text("keep me")
    (tmp_path / "d").mkdir()
    fill = {"file": str(tmp_path / "f"), "dir": str(tmp_path / "d")}
    code, _, err = run(capsys, *[a.format(**fill) for a in argv])
    assert code == 2 and err.startswith("error: ") and words.format(**fill) in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "f").read_text() == "keep me"


def test_variant_flag_generates_with_the_variant_and_from_png_re_creates_it(tmp_path, capsys):
    """``--variant`` loads the model's named alternative cascade; its PNG records it, so ``--from-png`` alone
    re-creates the same pixels; ``info`` lists the variants; an unknown one is one line naming those there are."""
    root = tiny_pipeline().save_pretrained(tmp_path / "m")
    tiny_pipeline(seed=1).stages[0].save(root / "stage0_student")
    cfg = json.loads((root / "pipeline.json").read_text())
    cfg["variants"] = {"fast": ["stage0_student", "stage1_sr"]}
    (root / "pipeline.json").write_text(json.dumps(cfg))
    args = ("a red square", "--model", root, "--steps", 2, "--seed", 4, "--no-progress")
    code, _, err = run(capsys, "generate", *args, "--variant", "fast", "-o", tmp_path / "fast.png")
    assert code == 0, err
    run(capsys, "generate", *args, "-o", tmp_path / "plain.png")
    fast, plain = Image.open(tmp_path / "fast.png"), Image.open(tmp_path / "plain.png")
    assert json.loads(fast.text["openimagen"])["variant"] == "fast"
    assert pixels(fast) != pixels(plain)
    code, _, err = run(capsys, "generate", "--from-png", tmp_path / "fast.png", "-o", tmp_path / "again.png",
                       "--no-progress")
    assert code == 0 and "warning" not in err, err
    assert pixels(Image.open(tmp_path / "again.png")) == pixels(fast)
    code, _, err = run(capsys, "generate", "--from-png", tmp_path / "fast.png", "--model", root, "-o",
                       tmp_path / "again2.png", "--no-progress")       # naming the model keeps the recorded variant
    assert code == 0 and pixels(Image.open(tmp_path / "again2.png")) == pixels(fast), err
    code, _, err = run(capsys, "generate", "--from-png", tmp_path / "fast.png", "--variant", "nope", "-o",
                       tmp_path / "z.png")
    assert code == 2 and "unknown model variant 'nope'" in err and "pass --model" not in err
    code, out, _ = run(capsys, "info", root)
    assert code == 0 and "variant 'fast' (--variant fast): stages stage0_student, stage1_sr" in out
    code, _, err = run(capsys, "generate", *args, "--variant", "turbo", "-o", tmp_path / "x.png")
    assert code == 2 and "unknown model variant 'turbo'" in err and "fast" in err and err.count("\n") == 1
    code, _, err = run(capsys, "eval", "--score-folder", tmp_path, "--variant", "fast", "--out", tmp_path / "ev")
    assert code == 2 and "--variant" in err and err.count("\n") == 1      # scoring a folder cannot use it
    cfg["variants"]["broken"] = ["stage0_gone", "stage1_sr"]
    (root / "pipeline.json").write_text(json.dumps(cfg))
    code, out, _ = run(capsys, "info", root)
    assert code == 0 and "variant 'broken' (--variant broken): stages stage0_gone, stage1_sr (missing: stage0_gone" in out
