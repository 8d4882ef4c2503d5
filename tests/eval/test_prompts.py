"""Prompt sets: shipped files equal the generator, splits respect the data module's holdout, ground truth matches
the prompt text, and broken files fail with one-line errors."""
import json

import pytest

from openimagen.data import DEFAULT_HOLDOUT, NUMBERS
from openimagen.errors import InvalidArgumentError, UnknownNameError
from openimagen.eval.prompts import (CATEGORIES, SPLITS, _spec, dumps, load_prompt_set, load_split, make_prompt_set,
                                     shipped_path)


@pytest.mark.parametrize("split", SPLITS)
def test_shipped_files_equal_the_generator(split):
    text = shipped_path(split).read_text()
    assert text == dumps(make_prompt_set(split))
    assert json.loads(text) == make_prompt_set(split)


@pytest.mark.parametrize("split", SPLITS)
def test_splits_follow_the_data_holdout(split):
    cases = load_split(split)
    assert {c.category for c in cases} == set(CATEGORIES)
    for c in cases:
        assert DEFAULT_HOLDOUT.spec(_spec(c)) == (split == "heldout"), c
    assert len({c.id for c in cases}) == len(cases)
    for cat in CATEGORIES:                                   # distinct prompts within a category
        prompts = [c.prompt for c in cases if c.category == cat]
        assert len(set(prompts)) == len(prompts)


def test_seen_and_heldout_do_not_overlap():
    seen = {(c.category, c.prompt) for c in load_split("seen")}
    held = {(c.category, c.prompt) for c in load_split("heldout")}
    assert not seen & held
    assert len(load_split("both")) == len(seen) + len(held)


def test_ground_truth_matches_the_prompt_text():
    for c in load_split("both"):
        words = c.prompt.split()
        for o in c.objects:
            assert o.color in words and (o.shape in words or o.shape + "s" in words), c
        if c.category == "counting":
            assert words[0] == NUMBERS[c.objects[0].count - 1]
        if c.category == "single_object":
            assert c.objects[0].size in words
        if c.category in ("position",):
            assert c.relation in c.prompt and len(c.objects) == 2
        else:
            assert c.relation is None
        if c.category == "two_objects":
            a, b = c.objects
            assert a.color == b.color and a.shape != b.shape
        if c.category == "color_attr":
            a, b = c.objects
            assert a.color != b.color and a.shape != b.shape


def test_generator_is_deterministic_and_respects_n():
    a, b = make_prompt_set("seen", 5, seed=3), make_prompt_set("seen", 5, seed=3)
    assert a == b and a["name"] == "shapes_seen_custom"
    assert all(sum(c["category"] == cat for c in a["cases"]) == 5 for cat in CATEGORIES)
    assert make_prompt_set("seen", 5, seed=4)["cases"] != a["cases"]


def _write(tmp_path, data):
    path = tmp_path / "p.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


GOOD = {"id": "a", "category": "colors", "prompt": "a red circle",
        "objects": [{"color": "red", "shape": "circle", "count": 1}], "relation": None}


def test_custom_file_and_bare_list(tmp_path):
    cases = load_prompt_set(_write(tmp_path, [GOOD]))
    assert cases[0].objects[0].color == "red" and cases[0].objects[0].count == 1


@pytest.mark.parametrize("data, match", [
    ("{not json", "not readable JSON"),
    ({"cases": []}, "has no cases"),
    ([{**GOOD, "category": "textures"}], "unknown category 'textures'"),
    ([{**GOOD, "objects": [{"color": "teal", "shape": "circle"}]}], "unknown colour 'teal'"),
    ([{**GOOD, "objects": [{"color": "red", "shape": "hexagon"}]}], "unknown shape 'hexagon'"),
    ([{**GOOD, "objects": [{"color": "red", "shape": "circle", "count": 9}]}], "count must be an integer in 1..4"),
    ([{**GOOD, "relation": "near"}], "unknown relation 'near'"),
    ([{**GOOD, "relation": "above"}], "a relation needs exactly two objects"),
    ([{**GOOD, "relation": "above", "objects": [{"color": "red", "shape": "circle", "count": 2},
                                                {"color": "blue", "shape": "square"}]}], "two objects of count 1"),
    ([GOOD, GOOD], "duplicate ids a"),
    ([{**GOOD, "id": "a/b"}], "not usable as a file name"),
    ([{"prompt": "x"}], "needs id, category, prompt and objects"),
])
def test_bad_prompt_files(tmp_path, data, match):
    with pytest.raises(InvalidArgumentError, match=match):
        load_prompt_set(_write(tmp_path, data))


def test_missing_file_and_unknown_split(tmp_path):
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        load_prompt_set(tmp_path / "nope.json")
    with pytest.raises(UnknownNameError, match="unknown split 'train'; valid: both, heldout, seen"):
        load_split("train")
