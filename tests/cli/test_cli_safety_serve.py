"""CLI: prompt policy and watermark flags of generate, `watermark detect`, and serve's flag checks (one line,
exit code 2, before any model loads)."""
import json

import numpy as np
import pytest
from PIL import Image

from openimagen.data.shapes import make_scene
from tests.cli.test_cli import run
from tests.pipeline.fixtures import tiny_pipeline


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_pipeline().save_pretrained(tmp_path_factory.mktemp("cli_safety") / "model")


def test_generate_refuses_a_denied_prompt_in_one_line(model, tmp_path, capsys):
    deny = tmp_path / "deny.txt"
    deny.write_text("purple elephant\n")
    code, _, err = run(capsys, "generate", "A Purple-Elephant", "--model", model, "-o", tmp_path / "x.png",
                       "--policy", deny)
    assert code == 2 and err.startswith("error: prompt refused by the prompt policy") and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()
    code, _, err = run(capsys, "generate", "child porn", "--model", model, "-o", tmp_path / "y.png")
    assert code == 2 and "denied term" in err                   # the built-in list is on by default


def test_turning_safeguards_off_is_loud(model, tmp_path, capsys):
    out = tmp_path / "off.png"
    code, _, err = run(capsys, "generate", "purple elephant", "--model", model, "-o", out, "--steps", 2,
                       "--no-policy", "--no-watermark", "--no-progress")
    assert code == 0
    assert "WARNING: the prompt policy is OFF" in err and "WARNING: the invisible watermark is OFF" in err
    code, _, err = run(capsys, "generate", "a", "--model", model, "-o", out, "--no-policy", "--policy", out)
    assert code == 2 and "contradict" in err


def test_watermark_detect_reports_marked_and_unmarked(tmp_path, capsys):
    from openimagen.safety import Watermark

    scene = make_scene(0, seed=3, split="train", size=64)[0].convert("RGB")
    Watermark().embed(scene).save(tmp_path / "marked.png")
    scene.save(tmp_path / "plain.png")
    code, out, _ = run(capsys, "watermark", "detect", tmp_path / "marked.png", tmp_path / "plain.png")
    lines = out.splitlines()
    assert code == 0 and ": marked (z = " in lines[0] and ": not marked (z = " in lines[1]
    code, out, _ = run(capsys, "watermark", "detect", "--json", tmp_path / "marked.png")
    assert json.loads(out)["marked"] is True
    (tmp_path / "junk.png").write_bytes(b"not an image")
    code, out, err = run(capsys, "watermark", "detect", tmp_path / "marked.png", tmp_path / "junk.png")
    assert code == 2 and out == "" and err.startswith("error: cannot read") and err.count("\n") == 1


def test_generated_pngs_carry_the_mark_of_the_default_model(capsys, tmp_path):
    out = tmp_path / "demo.png"
    code, _, _ = run(capsys, "generate", "a red circle above a blue square", "-o", out, "--no-progress")
    assert code == 0
    code, text, _ = run(capsys, "watermark", "detect", out)
    assert ": marked" in text
    assert np.asarray(Image.open(out)).shape == (64, 64, 3)


@pytest.mark.parametrize("argv,match", [
    (["--max-queue", "0"], "--max-queue should be greater than or equal to 1"),
    (["--timeout", "-1"], "--timeout should be greater than 0"),
    (["--port", "0"], "--port must be in 1..65535"),
    (["--replicas", "0"], "--replicas must be at least 1"),
    (["--dtype", "int8"], "--dtype must be one of"),
    (["--api-keys", "/no/such/keys.txt"], "--api-keys /no/such/keys.txt: cannot read it"),
    (["--device", "cuda:0"], "CUDA is not available"),
    (["--device", "meta"], "cannot run models"),
    (["--policy", "/no/such/deny.txt"], "prompt policy /no/such/deny.txt: cannot read it"),
    (["--variant", "turbo"], "unknown model variant 'turbo'"),
])
def test_bad_serve_flags_are_one_line_exit_2(capsys, argv, match):
    code, _, err = run(capsys, "serve", *argv)
    assert code == 2 and match in err and err.count("\n") == 1, err


def test_serve_refuses_max_steps_below_the_models_defaults(model, capsys):
    code, _, err = run(capsys, "serve", "--model", model, "--max-steps", "3")
    assert code == 2 and "--max-steps 3 is below stage 0's default of 12 steps" in err
