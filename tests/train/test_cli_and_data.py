"""The train CLI (flags, errors, resume with the run's own config) and a messy data folder."""
import argparse
import json
import subprocess
import sys

import yaml
from PIL import Image

from openimagen.cli.train import add_export_parser, add_train_parser, main
from openimagen.train.checkpoint import Checkpoint
from openimagen.train.trainer import train
from tests.train.conftest import run_config


def test_parsers_plug_into_a_main_cli():
    parser = argparse.ArgumentParser(prog="openimagen")
    sub = parser.add_subparsers(dest="command")
    add_train_parser(sub)
    add_export_parser(sub)
    args = parser.parse_args(["train", "c.yaml", "--resume", "runs/x", "--max-steps", "5", "--out", "o"])
    assert (str(args.config), args.resume, args.max_steps, str(args.out)) == ("c.yaml", "runs/x", 5, "o")
    args = parser.parse_args(["export", "a", "b", "-o", "m", "--fp16"])
    assert args.runs == ["a", "b"] and args.fp16 and callable(args.func)
    for name in ("train", "export"):
        for action in sub.choices[name]._actions:
            assert action.help, (name, action.dest)


def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {path: x}\nstage: {unet: {preset: tiny}}\noptimiser: {lrr: 1}\n")
    assert main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "unknown field 'optimiser.lrr' (valid: " in err and err.count("\n") == 1
    assert main([]) == 2 and "give a run CONFIG file" in capsys.readouterr().err
    assert main([str(bad).replace("bad", "missing")]) == 2 and "does not exist" in capsys.readouterr().err


def test_train_then_resume_with_the_runs_own_config(assets, tmp_path, capsys):
    cfg = run_config(assets, tmp_path / "run", max_steps=1)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert main([str(path)]) == 0
    assert "trained to step 1" in capsys.readouterr().out
    assert main(["--resume", str(tmp_path / "run"), "--max-steps", "2"]) == 0
    assert Checkpoint.read(tmp_path / "run").step == 2


def test_python_m_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "openimagen.train", str(tmp_path / "none.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "error: config file" in proc.stderr


def test_corrupt_images_and_missing_captions_are_skipped_and_reported(assets, tmp_path):
    folder = tmp_path / "messy"
    folder.mkdir()
    for i, colour in enumerate(["red", "green", "blue", "white"]):
        Image.new("RGB", (20, 24), colour).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text(f"a {colour} square")
    Image.new("RGB", (20, 20), "red").save(folder / "no_caption.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "broken.txt").write_text("a broken image")
    result = train(run_config(assets, tmp_path / "run", max_steps=2, data={"path": str(folder)},
                              train={"batch_size": 3}))
    assert result.step == 2 and len(result.losses) == 2
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["loaded"] == 4 and report["skipped"] == 2
