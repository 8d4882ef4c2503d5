"""Vocabulary, held-out split and scene descriptions of the procedural shapes data set.

The scenes mirror GenEval's categories (Ghosh et al. 2023) so text alignment can be
measured exactly:

==================  ==========================================  =======================
scene type          example primary caption                     objects
==================  ==========================================  =======================
``single_object``   "a big yellow triangle"                     1
``two_object``      "a red circle and a blue square"            2, different
``counting``        "two green stars"                           1-4, one colour/shape/size
``position``        "a red circle above a blue square"          2, relation holds on boxes
==================  ==========================================  =======================

Colours are fixed RGB values (:data:`COLORS`), so a scorer can classify a region's mean
colour by nearest neighbour. Backgrounds (:data:`BACKGROUNDS`) are light tints, never
white, and every shape has a darker outline (:func:`outline_color`), so white objects
stay visible.

Held-out split (:data:`DEFAULT_HOLDOUT`): the colour-shape pairs purple star, orange
circle, green triangle and yellow square, and the shape-level relations "circle above
square" and "triangle left of star" (in either phrasing: "square below circle" is the
same configuration) never occur in ``split="train"``; every ``split="heldout"`` scene
contains at least one of them. :func:`sample_spec` with ``split=`` gives prompts of seen
or unseen combinations for evaluation without rendering anything.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Optional

from openimagen.errors import InvalidArgumentError, check_choice

COLORS = {                       # name -> RGB fill, fixed
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 200, 30),
    "purple": (140, 60, 180),
    "orange": (245, 130, 30),
    "white": (255, 255, 255),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle", "star")
SIZES = {"small": (0.15, 0.19), "big": (0.27, 0.31)}   # extent as a fraction of the image side
NUMBERS = ("one", "two", "three", "four")
RELATIONS = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}  # -> inverse
BACKGROUNDS = {                  # light tints, clearly not white
    "light grey": (212, 212, 212),
    "beige": (226, 216, 194),
    "light blue": (204, 214, 228),
    "light green": (208, 224, 204),
}
SCENE_TYPES = ("single_object", "two_object", "counting", "position")
SPLITS = ("train", "heldout", "all")


def outline_color(color: str) -> tuple:
    """The outline drawn around a shape of ``color``: half its brightness (mid grey for white)."""
    return tuple(int(c * 0.5) for c in COLORS[color])


@dataclass(frozen=True)
class Holdout:
    """Combinations kept out of the training split."""

    pairs: frozenset = frozenset({("purple", "star"), ("orange", "circle"),
                                  ("green", "triangle"), ("yellow", "square")})   # (colour, shape)
    relations: frozenset = frozenset({("circle", "above", "square"),
                                      ("triangle", "left of", "star")})          # (shape, relation, shape)

    def pair(self, color: str, shape: str) -> bool:
        return (color, shape) in self.pairs

    def relation(self, a: str, rel: str, b: str) -> bool:
        """Held out in either phrasing: (a, rel, b) or (b, inverse(rel), a)."""
        return (a, rel, b) in self.relations or (b, RELATIONS[rel], a) in self.relations

    def spec(self, spec: "SceneSpec") -> bool:
        """True when the scene contains any held-out pair or relation."""
        if any(self.pair(o.color, o.shape) for o in spec.objects):
            return True
        return spec.relation is not None and self.relation(spec.objects[0].shape, spec.relation,
                                                            spec.objects[1].shape)

    def seen_pairs(self) -> list:
        return [(c, s) for c in COLORS for s in SHAPES if (c, s) not in self.pairs]

    def unseen_pairs(self) -> list:
        return sorted(self.pairs)


DEFAULT_HOLDOUT = Holdout()


@dataclass(frozen=True)
class ObjectSpec:
    color: str
    shape: str
    size: str           # "small" | "big"


@dataclass(frozen=True)
class SceneSpec:
    """What a scene shows, before layout. ``relation`` reads objects[0] REL objects[1]."""

    kind: str
    objects: tuple
    background: str
    relation: Optional[str] = None
    captions: tuple = field(default=())

    def to_json(self) -> dict:
        return {"scene": self.kind, "background": self.background, "relation": self.relation,
                "objects": [asdict(o) for o in self.objects]}


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def plural(noun: str) -> str:
    """English plural of a shape noun: circles, stars; crosses (the fine-tuning concept)."""
    return noun + ("es" if noun.endswith(("s", "x", "sh", "ch")) else "s")


def noun_phrase(o: ObjectSpec, with_size: bool = True) -> str:
    words = ([o.size] if with_size else []) + [o.color, o.shape]
    return f"{article(words[0])} {' '.join(words)}"


def scene_captions(kind: str, objs: tuple, background: str, relation: Optional[str]) -> tuple:
    """Primary caption first, then paraphrases (see the module docstring)."""
    if kind == "single_object":
        o = objs[0]
        return (noun_phrase(o), noun_phrase(o, False), f"{noun_phrase(o)} on a {background} background")
    if kind == "two_object":
        a, b = objs
        return (f"{noun_phrase(a, False)} and {noun_phrase(b, False)}",
                f"{noun_phrase(b, False)} and {noun_phrase(a, False)}", f"{noun_phrase(a)} and {noun_phrase(b)}")
    if kind == "counting":
        o, n = objs[0], len(objs)
        noun = plural(o.shape) if n > 1 else o.shape
        return (f"{NUMBERS[n - 1]} {o.color} {noun}", f"{n} {o.color} {noun}",
                f"exactly {NUMBERS[n - 1]} {o.size} {o.color} {noun}")
    a, b = objs
    return (f"{noun_phrase(a, False)} {relation} {noun_phrase(b, False)}",
            f"{noun_phrase(b, False)} {RELATIONS[relation]} {noun_phrase(a, False)}",
            f"{noun_phrase(a)} {relation} {noun_phrase(b)}")


def _random_spec(rng: random.Random, kind: str) -> SceneSpec:
    def obj(size=None):
        return ObjectSpec(rng.choice(list(COLORS)), rng.choice(SHAPES), size or rng.choice(list(SIZES)))

    background = rng.choice(list(BACKGROUNDS))
    relation = None
    if kind == "single_object":
        objs = (obj(),)
    elif kind == "counting":
        o = obj()
        objs = (o,) * rng.randint(1, len(NUMBERS))
    else:
        a = obj()
        b = obj()
        while (b.color, b.shape) == (a.color, a.shape):
            b = obj()
        objs = (a, b)
        relation = rng.choice(list(RELATIONS)) if kind == "position" else None
    return SceneSpec(kind, objs, background, relation, scene_captions(kind, objs, background, relation))


def sample_spec(rng: random.Random, kind: str, split: str = "all",
                holdout: Holdout = DEFAULT_HOLDOUT) -> SceneSpec:
    """A random scene description of ``kind`` belonging to ``split``.

    ``"train"`` excludes every held-out combination, ``"heldout"`` requires one,
    ``"all"`` has no constraint. Rejection sampling keeps the within-split distribution
    the conditional of the ``"all"`` one.
    """
    check_choice("scene type", kind, SCENE_TYPES)
    check_choice("split", split, SPLITS)
    for _ in range(100_000):
        spec = _random_spec(rng, kind)
        if split == "all" or holdout.spec(spec) == (split == "heldout"):
            return spec
    raise InvalidArgumentError(f"no {kind} scene fits split {split!r} under this holdout definition")
