"""Shapes builder: counts, ground truth, colours, captions, held-out split, determinism."""
import json
import random

import pytest
from PIL import Image

from openimagen.data import (COLORS, DEFAULT_HOLDOUT, NUMBERS, SCENE_TYPES, build_shapes, open_dataset,
                             sample_spec)
from openimagen.data.shapes_scene import BACKGROUNDS
from openimagen.errors import InvalidArgumentError, UnknownNameError


def _manifest(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes") / "train"
    return build_shapes(out, 240, seed=3, size=64, split="train"), out


def test_count_and_scene_types(train):
    result, out = train
    rows = _manifest(out)
    assert result.count == 240 == len(rows) == len(list((out / "images").glob("*.png")))
    assert {r["labels"]["scene"] for r in rows} == set(SCENE_TYPES)
    ds = open_dataset(out, size=64)
    assert len(ds) == 240 and ds[0]["caption"] == rows[0]["caption"]


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_ground_truth_boxes_and_colours(train):
    _, out = train
    for row in _manifest(out):
        labels = row["labels"]
        img = Image.open(out / row["path"]).convert("RGB")
        assert img.size == (64, 64)
        objs = labels["objects"]
        for o in objs:
            x0, y0, x1, y1 = o["box"]
            assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
            if o["shape"] != "star":
                px = img.getpixel((int(o["center"][0]), int(o["center"][1])))
                assert max(abs(p - c) for p, c in zip(px, COLORS[o["color"]])) <= 2, (row["key"], o, px)
        for i in range(len(objs)):
            for j in range(i + 1, len(objs)):
                assert not _overlap(objs[i]["box"], objs[j]["box"]), row["key"]
        most_common = max(img.getcolors(64 * 64))[1]
        assert most_common == BACKGROUNDS[labels["background"]] != (255, 255, 255)


def test_relations_hold_on_boxes(train):
    _, out = train
    n = 0
    for row in _manifest(out):
        labels = row["labels"]
        if labels["scene"] != "position":
            continue
        n += 1
        a, b = (o["box"] for o in labels["objects"])
        rel = labels["relation"]
        ok = {"left of": a[2] <= b[0], "right of": b[2] <= a[0], "above": a[3] <= b[1], "below": b[3] <= a[1]}[rel]
        assert ok, row
    assert n == 60


def test_captions_mention_ground_truth(train):
    _, out = train
    for row in _manifest(out):
        labels, caption = row["labels"], row["caption"]
        assert row["captions"][0] == caption and len(row["captions"]) >= 2
        for o in labels["objects"]:
            assert o["color"] in caption and o["shape"] in caption
        if labels["scene"] == "counting":
            assert caption.startswith(NUMBERS[len(labels["objects"]) - 1] + " ")
        if labels["scene"] == "position":
            assert labels["relation"] in caption
        if labels["scene"] == "single_object":
            assert labels["objects"][0]["size"] in caption
        assert (out / "images" / f"{row['key']}.txt").read_text().strip() == caption


def _has_heldout(labels):
    objs = labels["objects"]
    if any(DEFAULT_HOLDOUT.pair(o["color"], o["shape"]) for o in objs):
        return True
    return labels["relation"] is not None and DEFAULT_HOLDOUT.relation(objs[0]["shape"], labels["relation"],
                                                                        objs[1]["shape"])


def test_heldout_combos_never_in_train_and_always_in_heldout(train, tmp_path):
    _, out = train
    assert not any(_has_heldout(r["labels"]) or r["labels"]["heldout"] for r in _manifest(out))
    build_shapes(tmp_path / "heldout", 80, seed=3, split="heldout")
    rows = _manifest(tmp_path / "heldout")
    assert all(_has_heldout(r["labels"]) and r["labels"]["heldout"] for r in rows)
    seen = {(o["color"], o["shape"]) for r in rows for o in r["labels"]["objects"]}
    assert seen & DEFAULT_HOLDOUT.pairs  # held-out pairs do appear
    rels = [r for r in rows if r["labels"]["scene"] == "position"
            and not any(DEFAULT_HOLDOUT.pair(o["color"], o["shape"]) for o in r["labels"]["objects"])]
    assert rels  # some held-out scenes are held out only by their relation


def test_holdout_definition_for_evaluation():
    assert len(DEFAULT_HOLDOUT.unseen_pairs()) == 4
    assert len(DEFAULT_HOLDOUT.seen_pairs()) == len(COLORS) * 4 - 4
    assert DEFAULT_HOLDOUT.relation("square", "below", "circle")  # same configuration as circle above square
    rng = random.Random(0)
    specs = [sample_spec(rng, "position", "heldout") for _ in range(50)]
    assert all(DEFAULT_HOLDOUT.spec(s) for s in specs)
    assert all(s.captions[0] for s in specs)


def test_deterministic_and_prefix_stable(tmp_path):
    a = build_shapes(tmp_path / "a", 30, seed=7, size=32, workers=1)
    b = build_shapes(tmp_path / "b", 30, seed=7, size=32, workers=2)
    c = build_shapes(tmp_path / "c", 10, seed=7, size=32, workers=1)
    files = sorted(p.relative_to(a.out) for p in a.out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b.out) for p in b.out.rglob("*") if p.is_file())
    for f in files:
        assert (a.out / f).read_bytes() == (b.out / f).read_bytes(), f
    assert (c.out / "images" / "000009.png").read_bytes() == (a.out / "images" / "000009.png").read_bytes()
    d = build_shapes(tmp_path / "d", 10, seed=8, size=32)
    assert (d.out / "manifest.jsonl").read_bytes() != (c.out / "manifest.jsonl").read_bytes()


def test_bad_arguments(tmp_path):
    with pytest.raises(InvalidArgumentError, match="count"):
        build_shapes(tmp_path / "x", 0)
    with pytest.raises(UnknownNameError, match="heldout"):
        build_shapes(tmp_path / "x", 5, split="test")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "precious.txt").write_text("keep me")
    with pytest.raises(InvalidArgumentError, match="not empty"):
        build_shapes(tmp_path / "full", 5)
    assert (tmp_path / "full" / "precious.txt").exists()
