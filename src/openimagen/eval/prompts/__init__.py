"""Prompt sets of the ``shapes`` suite: GenEval's six categories (Ghosh et al. 2023) on the shapes vocabulary.

Every prompt carries its ground truth, so a scorer can check it exactly:

================  ==================================  ==============================================
category          example prompt                      ground truth
================  ==================================  ==============================================
``single_object`` "a big red circle"                  1 object: colour, shape and size
``two_objects``   "a red circle and a red square"     2 different shapes of one colour
``counting``      "three green stars"                 1-4 objects of one colour and shape
``colors``        "a blue triangle"                   1 object: colour and shape
``position``      "a red circle above a blue square"  2 objects, objects[0] REL objects[1]
``color_attr``    "a red circle and a blue square"    2 different shapes in 2 different colours
================  ==================================  ==============================================

Every training caption of the shapes builder names a colour, so every prompt here does too; the categories
differ in what varies and what a wrong image gets wrong (``single_object`` also names a size; ``color_attr``
binds two colours to two shapes, so swapping them is an error). Prompts are the builder's own caption forms
(:func:`~openimagen.data.shapes_scene.scene_captions`).

Splits: ``"seen"`` prompts use only colour-shape pairs and relations that the training split contains;
``"heldout"`` prompts contain at least one held-out combination of :data:`~openimagen.data.DEFAULT_HOLDOUT`
(the data module's definition of ``split="heldout"``). A category keeps at most ``n_per_category`` distinct
prompts, drawn without replacement from every distinct prompt the split allows, so small categories of the
held-out split (4 held-out colour-shape pairs) have fewer.

File format (one JSON object; see ``docs/EVALUATION.md``)::

    {"name": "shapes_seen_v1", "suite": "shapes", "version": 1, "split": "seen",
     "generator": {"split": "seen", "n_per_category": 40, "seed": 0},
     "cases": [{"id": "seen-position-003", "category": "position",
                "prompt": "a red circle above a blue square",
                "objects": [{"color": "red", "shape": "circle", "count": 1},
                            {"color": "blue", "shape": "square", "count": 1}],
                "relation": "above"}, ...]}

``python -m openimagen.eval.prompts`` rewrites the shipped files from :func:`make_prompt_set`.
"""
from __future__ import annotations

import functools
import itertools
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from openimagen.data.shapes_scene import (COLORS, DEFAULT_HOLDOUT, NUMBERS, RELATIONS, SHAPES, SIZES, Holdout,
                                          ObjectSpec, SceneSpec, noun_phrase, scene_captions)
from openimagen.errors import InvalidArgumentError, check_choice, is_int_at_least

CATEGORIES = ("single_object", "two_objects", "counting", "colors", "position", "color_attr")
SPLITS = ("seen", "heldout")
PROMPTS_DIR = Path(__file__).resolve().parent
SHIPPED = {"seen": "shapes_seen_v1", "heldout": "shapes_heldout_v1"}   # split -> shipped set name
SHIPPED_ARGS = {"n_per_category": 40, "seed": 0}                     # the arguments that made the shipped files
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ObjectTruth:
    color: str
    shape: str
    count: int = 1
    size: Optional[str] = None          # "small" | "big" | None (not named in the prompt, not checked)

    def to_json(self) -> dict:
        d = {"color": self.color, "shape": self.shape, "count": self.count}
        return d if self.size is None else {**d, "size": self.size}


@dataclass(frozen=True)
class PromptCase:
    """One prompt and what an image of it must show: exactly ``count`` objects of each (colour, shape), nothing
    else, and ``objects[0] relation objects[1]`` when ``relation`` is set."""

    id: str
    category: str
    prompt: str
    objects: tuple = field(default=())            # of ObjectTruth
    relation: Optional[str] = None

    def to_json(self) -> dict:
        return {"id": self.id, "category": self.category, "prompt": self.prompt,
                "objects": [o.to_json() for o in self.objects], "relation": self.relation}

    @classmethod
    def from_json(cls, d: dict, where: str = "prompt case") -> "PromptCase":
        try:
            objects = tuple(_object_from_json(o, where) for o in d["objects"])
            case = cls(str(d["id"]), str(d["category"]), str(d["prompt"]), objects, d.get("relation"))
        except (KeyError, TypeError, AttributeError) as e:
            raise InvalidArgumentError(f"{where}: needs id, category, prompt and objects ({e})") from None
        return case.validate(where)

    def validate(self, where: str = "prompt case") -> "PromptCase":
        if self.category not in CATEGORIES:
            raise InvalidArgumentError(f"{where}: unknown category {self.category!r}; valid: {', '.join(CATEGORIES)}")
        if not self.objects:
            raise InvalidArgumentError(f"{where}: needs at least one object")
        if self.relation is not None:
            if self.relation not in RELATIONS:
                raise InvalidArgumentError(f"{where}: unknown relation {self.relation!r}; valid: "
                                           f"{', '.join(sorted(RELATIONS))}")
            if len(self.objects) != 2 or any(o.count != 1 for o in self.objects):
                raise InvalidArgumentError(f"{where}: a relation needs exactly two objects of count 1")
        if len({(o.color, o.shape) for o in self.objects}) != len(self.objects):
            raise InvalidArgumentError(f"{where}: the same colour and shape is listed twice; use count")
        return self


def _object_from_json(o: dict, where: str) -> ObjectTruth:
    obj = ObjectTruth(o["color"], o["shape"], o.get("count", 1), o.get("size"))
    if obj.color not in COLORS:
        raise InvalidArgumentError(f"{where}: unknown colour {obj.color!r}; valid: {', '.join(sorted(COLORS))}")
    if obj.shape not in SHAPES:
        raise InvalidArgumentError(f"{where}: unknown shape {obj.shape!r}; valid: {', '.join(sorted(SHAPES))}")
    if not (is_int_at_least(obj.count, 1) and obj.count <= len(NUMBERS)):
        raise InvalidArgumentError(f"{where}: count must be an integer in 1..{len(NUMBERS)}, got {obj.count!r}")
    if obj.size is not None and obj.size not in SIZES:
        raise InvalidArgumentError(f"{where}: unknown size {obj.size!r}; valid: {', '.join(sorted(SIZES))}")
    return obj


# --- every distinct prompt of a category ---------------------------------------------------------------------
def _case(category: str, objs: tuple, relation: Optional[str] = None, count: int = 1) -> PromptCase:
    """Build the case with the data module's caption for that scene type."""
    if category in ("single_object", "colors"):
        o = objs[0]
        prompt = noun_phrase(o, with_size=category == "single_object")
        truth = (ObjectTruth(o.color, o.shape, 1, o.size if category == "single_object" else None),)
    elif category == "counting":
        prompt = scene_captions("counting", (objs[0],) * count, "", None)[0]
        truth = (ObjectTruth(objs[0].color, objs[0].shape, count),)
    else:
        kind = "position" if category == "position" else "two_object"
        prompt = scene_captions(kind, objs, "", relation)[0]
        truth = tuple(ObjectTruth(o.color, o.shape) for o in objs)
    return PromptCase("", category, prompt, truth, relation)


def _spec(case: PromptCase) -> SceneSpec:
    """A scene description with the case's combinations (size is irrelevant to the holdout)."""
    objs = tuple(ObjectSpec(o.color, o.shape, "small") for o in case.objects)
    return SceneSpec(case.category, objs, "", case.relation)


def all_cases(category: str) -> tuple:
    """Every distinct case of ``category`` (both splits), in a fixed order."""
    return _all_cases(check_choice("category", category, CATEGORIES))


@functools.lru_cache(maxsize=None)
def _all_cases(category: str) -> tuple:
    pairs = [(c, s) for c in COLORS for s in SHAPES]
    if category == "single_object":
        return tuple(_case(category, (ObjectSpec(c, s, z),)) for c, s in pairs for z in SIZES)
    if category == "colors":
        return tuple(_case(category, (ObjectSpec(c, s, "small"),)) for c, s in pairs)
    if category == "counting":
        return tuple(_case(category, (ObjectSpec(c, s, "small"),), count=n) for c, s in pairs
                     for n in range(1, len(NUMBERS) + 1))
    two = [(ObjectSpec(ca, sa, "small"), ObjectSpec(cb, sb, "small"))
           for (ca, sa), (cb, sb) in itertools.permutations(pairs, 2)]
    if category == "two_objects":
        return tuple(_case(category, ab) for ab in two if ab[0].color == ab[1].color)
    if category == "color_attr":
        return tuple(_case(category, ab) for ab in two if ab[0].color != ab[1].color and ab[0].shape != ab[1].shape)
    return tuple(_case(category, ab, rel) for ab in two for rel in RELATIONS)


def make_prompt_set(split: str, n_per_category: int = SHIPPED_ARGS["n_per_category"],
                    seed: int = SHIPPED_ARGS["seed"], holdout: Holdout = DEFAULT_HOLDOUT) -> dict:
    """The prompt set of ``split`` ("seen" | "heldout") as the JSON-ready dict that the shipped files hold.

    Deterministic: per category, a fixed-seed shuffle of every distinct case the split allows, first
    ``n_per_category`` kept. ``holdout`` decides the split exactly as in the data module.
    """
    check_choice("split", split, SPLITS)
    if not is_int_at_least(n_per_category, 1):
        raise InvalidArgumentError(f"n_per_category must be a positive integer, got {n_per_category!r}")
    cases = []
    for category in CATEGORIES:
        pool = [c for c in all_cases(category) if holdout.spec(_spec(c)) == (split == "heldout")]
        random.Random(f"openimagen-eval:{split}:{seed}:{category}").shuffle(pool)
        for i, c in enumerate(pool[:n_per_category]):
            cases.append({**c.to_json(), "id": f"{split}-{category}-{i:03d}"})
    name = SHIPPED[split] if (n_per_category, seed) == tuple(SHIPPED_ARGS.values()) else f"shapes_{split}_custom"
    return {"name": name, "suite": "shapes", "version": FORMAT_VERSION, "split": split,
            "generator": {"function": "openimagen.eval.prompts.make_prompt_set", "split": split,
                          "n_per_category": n_per_category, "seed": seed},
            "holdout": {"pairs": sorted(map(list, holdout.pairs)), "relations": sorted(map(list, holdout.relations))},
            "cases": cases}


# --- files -------------------------------------------------------------------------------------------------------
def dumps(prompt_set: dict) -> str:
    """The canonical text of a prompt-set file (one case per line, so diffs stay readable)."""
    head = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in prompt_set.items() if k != "cases"]
    cases = ",\n".join("    " + json.dumps(c) for c in prompt_set["cases"])
    return "{\n" + "\n".join(head) + '\n  "cases": [\n' + cases + "\n  ]\n}\n"


def shipped_path(split: str) -> Path:
    return PROMPTS_DIR / f"{SHIPPED[check_choice('split', split, SPLITS)]}.json"


def load_prompt_set(path: Union[str, Path]) -> list:
    """Cases of a prompt-set file (the format above; ``cases`` may also be the whole file, a bare list)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidArgumentError(f"prompt file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidArgumentError(f"prompt file {path} is not readable JSON: {e}") from None
    raw = data.get("cases") if isinstance(data, dict) else data
    if not isinstance(raw, list) or not raw:
        raise InvalidArgumentError(f"prompt file {path} has no cases (expected a list under \"cases\")")
    cases = [PromptCase.from_json(c if isinstance(c, dict) else {}, f"{path.name} case {i}")
             for i, c in enumerate(raw)]
    ids = [c.id for c in cases]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise InvalidArgumentError(f"prompt file {path}: duplicate ids {', '.join(dup[:5])}")
    bad = [i for i in ids if not i or any(ch in i for ch in '/\\:*?"<>| ')]
    if bad:
        raise InvalidArgumentError(f"prompt file {path}: id {bad[0]!r} is empty or not usable as a file name")
    return cases


def load_split(split: str) -> list:
    """Cases of the shipped set of ``split`` ("seen" | "heldout" | "both")."""
    check_choice("split", split, SPLITS + ("both",))
    return [c for s in (SPLITS if split == "both" else (split,)) for c in load_prompt_set(shipped_path(s))]
