"""Issue 10's CLI fault-injection suite: every entry point on a table of bad inputs answers with exit code 2, one
`error:` line and no traceback, before doing any work (nothing written where the user's files are)."""
import json

import pytest

from openimagen.cli.main import main
from tests.pipeline.fixtures import tiny_pipeline


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    tiny_pipeline().save_pretrained(root / "model")
    (root / "notes").mkdir()
    (root / "notes" / "mine.txt").write_text("keep")
    (root / "image.png").write_bytes(b"not a png at all")
    from PIL import Image
    Image.new("RGB", (32, 32), "red").save(root / "good.png")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    (root / "nan.yaml").write_text("data: {path: x}\noptimiser: {lr: .nan}\n")
    (root / "unknown.yaml").write_text("data: {path: x}\noptimiser: {lrr: 1}\n")
    (root / "badtype.yaml").write_text("data: {path: x}\ntrain: {batch_size: '32'}\n")
    (root / "bad.json").write_text(json.dumps({"prompts": 5}))
    return root


def cases():
    M, N = "{root}/model", "{root}/nowhere"
    return [
        # generate
        ("generate", "a", "--model", M, "--steps", "0"),
        ("generate", "a", "--model", M, "--guidance", "-1"),
        ("generate", "a", "--model", M, "--sampler", "nope"),
        ("generate", "a", "--model", N),
        ("generate", "a", "--model", "{root}/notes"),
        ("generate", "a", "--model", M, "-o", "{root}/out.jpg"),
        ("generate", "a", "--model", M, "--num-images", "0"),
        ("generate", "a", "--model", M, "--device", "banana"),
        ("generate", "a", "--model", M, "--device", "meta"),
        ("generate", "a", "--model", M, "--dtype", "int8"),
        ("generate", "a", "--model", M, "--lora", N),
        ("generate", "a", "--model", M, "--onnx", N),
        ("generate", "a", "--model", M, "--from-png", "{root}/image.png"),
        ("generate", "a", "--model", M, "--steps", "abc"),
        # edit
        ("edit", "img2img", N + ".png", "--model", M, "-o", "{root}/e.png"),
        ("edit", "img2img", "{root}/image.png", "--model", M, "-o", "{root}/e.png"),
        ("edit", "inpaint", "{root}/image.png", "--model", M, "-o", "{root}/e.png"),
        ("edit", "img2img", "{root}/image.png", "--model", M, "--strength", "2", "-o", "{root}/e.png"),
        ("edit", "inpaint", "{root}/good.png", "--rect", "1,1,9,9", "--resample-jumps", "0", "--model", M,
         "-o", "{root}/e.png"),
        ("edit", "inpaint", "{root}/good.png", "--rect", "1,1,9,9", "--jump-length", "-2", "--model", M,
         "-o", "{root}/e.png"),
        ("edit", "restore", "{root}/good.png", "--kind", "sharpen", "--model", M, "-o", "{root}/e.png"),
        ("edit", "restore", "{root}/good.png", "--kind", "scratches", "--mask", "{root}/image.png", "--model", M,
         "-o", "{root}/e.png"),
        ("edit", "restore", "{root}/good.png", "--kind", "denoise", "--noise-level", "-1", "--model", M,
         "-o", "{root}/e.png"),
        ("edit", "restore", "{root}/good.png", "--kind", "scratches", "--scratch-threshold", "nan", "--model", M,
         "-o", "{root}/e.png"),
        # info, watermark
        ("info", "--model", N),
        ("info", "--model", "{root}/notes"),
        ("watermark", "detect", N + ".png"),
        # data
        ("data", "shapes", "{root}/d1", "--count", "0"),
        ("data", "shapes", "{root}/d2", "--size", "100000"),
        ("data", "check", N),
        ("data", "mix", "{root}/d3", N),
        ("data", "concept", "{root}/d4", "--count", "-3"),
        ("data", "nope"),
        # train, export
        ("train", N + ".yaml"),
        ("train", "{root}/list.yaml"),
        ("train", "{root}/nan.yaml"),
        ("train", "{root}/unknown.yaml"),
        ("train", "{root}/badtype.yaml"),
        ("train", "--resume", N),
        ("export", N, "-o", "{root}/x"),
        ("export", M, "-o", "{root}/notes", "--overwrite"),
        ("export-onnx", N, "-o", "{root}/o"),
        ("export-onnx", M, "-o", "{root}/notes", "--overwrite"),
        # eval, bench
        ("eval", "--suite", "nope", "--model", M),
        ("eval", "--model", N),
        ("eval", "--model", M, "--split", "nope"),
        ("eval", "--model", M, "--images-per-prompt", "0"),
        ("eval", "--model", M, "--prompts", "{root}/bad.json"),
        ("bench", "--model", N),
        ("bench", "--model", M, "--steps", "0"),
        ("bench", "--model", M, "--batch-sizes", "x"),
        ("bench", "--model", M, "--onnx", N, "--compile"),
        ("bench", "--model", M, "--onnx", N),
        ("serve", "--model", N),
        ("serve", "--model", M, "--compile", "--lora", N),
        ("serve", "--model", M, "--cuda-graphs"),
        ("serve", "--model", M, "--compile", "--cuda-graphs"),
        ("bench", "--model", M, "--cuda-graphs"),
        ("bench", "--model", M, "--compile", "--cuda-graphs", "--device", "cpu"),
        ("bench", "--model", M, "--dtype", "float64"),
        ("bench", "--model", M, "--fast", "--dtype", "bfloat16"),
    ]


@pytest.mark.parametrize("argv", cases(), ids=lambda a: " ".join(a)[:60])
def test_bad_input_is_exit_2_one_error_line_no_traceback(env, capsys, argv):
    argv = [a.format(root=env) for a in argv]
    try:
        code = main(argv)
    except SystemExit as e:                       # argparse's own errors: usage line, then one error line
        code = e.code
    _, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err[-1500:]
    assert len(errors) == 1 and "Traceback" not in err, err[-1500:]
    assert (env / "notes" / "mine.txt").read_text() == "keep"


def test_a_closed_pipe_ends_quietly():
    """`openimagen info | head -1`: when the reader has closed the pipe, the command ends with 141 (as a tool killed
    by SIGPIPE), no traceback (the interpreter's last flush included)."""
    import subprocess
    import sys

    code = ("import sys\nfrom openimagen.cli.values import run_command\n"
            "def command(args):\n    print('x' * 10)\n    raise BrokenPipeError(32, 'Broken pipe')\n"
            "sys.exit(run_command(command, None))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 141 and proc.stderr == "", proc.stderr
