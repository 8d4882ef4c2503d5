"""The CLI: generate and info on a real model directory, and a one-line error with exit code 2 for bad input."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from openimagen.cli.main import main
from tests.pipeline.fixtures import tiny_pipeline


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_pipeline().save_pretrained(tmp_path_factory.mktemp("cli") / "model")


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
    assert im.text["prompt"] == "a red square" and im.text["seed"] == "42"
    assert im.text["sampler"] == "ddim" and im.text["steps"] == "3" and im.text["guidance"] == "2.5"
    assert im.text["model"] == str(model)


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


@pytest.mark.parametrize("argv, match", [
    (["generate", "a", "--sampler", "plms"], "unknown sampler 'plms'; valid: ddim, ddpm, dpmpp_2m, euler, heun"),
    (["generate", "a", "--steps", "0"], "--steps must be >= 1"),
    (["generate", "a", "--guidance", "-2"], "--guidance must be >= 0"),
    (["generate", "a", "--num-images", "0"], "--num-images"),
    (["generate", "a", "--stop-at-stage", "5"], "stop_at_stage"),
    (["generate", "a", "-o", "x.jpg"], "must end in .png"),
    (["generate", "a", "--device", "cuda"], "no CUDA GPU"),
    (["generate", "a", "--device", "toaster"], "unknown device"),
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
    assert r.returncode == 2 and r.stderr.strip() == "error: --steps must be >= 1, got 0"
    r = subprocess.run([str(exe), "info", str(model)], capture_output=True, text=True)
    assert r.returncode == 0 and "stage 1" in r.stdout


def test_per_stage_values_parse_and_name_the_flag():
    from openimagen.cli.values import per_stage_float
    from openimagen.errors import InvalidArgumentError

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
