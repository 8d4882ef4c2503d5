"""`openimagen data ...`: builders and check through the CLI, one-line errors with exit code 2."""
import argparse
import json
import subprocess
import sys

import pytest

from openimagen.cli.data import add_data_parser, main


def test_parser_plugs_into_a_main_cli():
    parser = argparse.ArgumentParser(prog="openimagen")
    add_data_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "shapes", "out", "--count", "3", "--split", "heldout"])
    assert (args.count, args.split, args.seed, args.size) == (3, "heldout", 0, 64) and callable(args.func)
    for action in parser._subparsers._group_actions[0].choices["data"]._subparsers._group_actions[0].choices.values():
        for a in action._actions:
            assert a.help, (action.prog, a.dest)


def test_shapes_then_check(tmp_path, capsys):
    assert main(["shapes", str(tmp_path / "s"), "--count", "8", "--seed", "1", "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "wrote 8 images to" in out and str(tmp_path / "s") in out
    assert main(["check", str(tmp_path / "s"), "--report", str(tmp_path / "report.json")]) == 0
    out = capsys.readouterr().out
    assert "folder data set, 8 loaded, 0 skipped" in out
    assert json.loads((tmp_path / "report.json").read_text())["loaded"] == 8


def test_check_lists_skipped(messy_folder, capsys):
    assert main(["check", str(messy_folder), "--min-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "3 loaded, 5 skipped" in out and "skipped truncated: corrupt or truncated" in out


def test_emoji_and_openclipart_with_limit(tmp_path, capsys):
    assert main(["emoji", str(tmp_path / "e"), "--size", "32", "--limit", "5"]) == 0
    assert main(["openclipart", str(tmp_path / "o"), "--size", "32", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert "wrote 5 images" in out


@pytest.mark.parametrize("argv, message", [
    (["check", "/no/such/dataset"], "error: dataset path does not exist: /no/such/dataset"),
    (["shapes", "OUT", "--count", "0"], "error: count must be a positive integer, got 0"),
    (["shapes", "OUT", "--count", "2", "--split", "test"], "error: unknown split 'test'; valid: all, heldout, train"),
    (["emoji", "OUT", "--size", "-4"], "error: size must be a positive integer, got -4"),
    (["check", "EMPTY", "--resize", "stretch"], "error: unknown resize policy 'stretch'; valid: center_crop, pad"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "EMPTY").mkdir()
    argv = [a.replace("OUT", str(tmp_path / "out")).replace("EMPTY", str(tmp_path / "EMPTY")) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == message and err.count("\n") == 1


def test_module_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "openimagen.cli.data", "check", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: no usable images in") and proc.stderr.count("\n") == 1
