"""`openimagen data mix`: several built data sets into one manifest with per-source repeats."""
import json

import pytest

from openimagen.cli.data import main
from openimagen.data import open_dataset
from openimagen.data.mix import MixSource, mix_datasets
from openimagen.errors import InvalidArgumentError


@pytest.fixture
def two_builds(tmp_path):
    assert main(["shapes", str(tmp_path / "shapes"), "--count", "6", "--size", "16"]) == 0
    assert main(["shapes", str(tmp_path / "more"), "--count", "3", "--seed", "5", "--size", "16"]) == 0
    return tmp_path


def test_mix_repeats_rewrites_paths_and_opens(two_builds, capsys):
    out = two_builds / "nested" / "mix"
    assert main(["mix", str(out), str(two_builds / "shapes"), str(two_builds / "more") + ":3"]) == 0
    assert "15 rows (shapes: 6 x 1, more: 3 x 3)" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 15 and len({r["key"] for r in rows}) == 15
    assert [r["labels"]["source"] for r in rows].count("more") == 9
    assert rows[0]["path"].startswith("../../shapes/images/")
    ds = open_dataset(out / "manifest.jsonl", size=16)
    assert len(ds) == 15
    again = (out / "manifest.jsonl").read_bytes()
    mix_datasets(out, [str(two_builds / "shapes"), str(two_builds / "more") + ":3"])
    assert (out / "manifest.jsonl").read_bytes() == again


@pytest.mark.parametrize("spec, message", [("missing", "not a built data set"), ("{}:0", "at least 1"),
                                           ("{}:x", "PATH:REPEAT")])
def test_bad_sources_are_named(two_builds, spec, message):
    with pytest.raises(InvalidArgumentError, match=message):
        MixSource.parse(spec.format(two_builds / "shapes") if "{}" in spec else str(two_builds / spec))


def test_same_folder_name_twice_is_refused(two_builds):
    with pytest.raises(InvalidArgumentError, match="different names"):
        mix_datasets(two_builds / "m", [str(two_builds / "shapes"), str(two_builds / "shapes")])
