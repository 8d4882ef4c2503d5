"""Images of known content for validating the scorer: prompt cases drawn by the shapes builder, and degradations.

:func:`render_case` draws what a :class:`~openimagen.eval.prompts.PromptCase` asks for with the data module's
own layout and renderer (:func:`~openimagen.data.shapes.layout`, :func:`~openimagen.data.shapes.render_scene`),
so a scene is exactly a training image of that content. :func:`corrupt_case` makes a *wrong* prompt for an
image: the same case with one thing changed that the category is about (a colour, shape, size, count,
relation, or the colours of two objects swapped).

:data:`DEGRADATIONS` stand in for imperfect generated images (the scorer's validation, ``docs/EVALUATION.md``):

===========  ==================================================================================
``blur``     Gaussian blur, sigma 1 px at the evaluation resolution (64 px)
``noise``    additive Gaussian noise, std 0.05 of the [0, 1] range, per pixel and channel
``resample`` down-sampled to 32 px (box filter) and up again (bilinear): a 32 px image shown at 64
``all``      resample, then blur, then noise
===========  ==================================================================================
"""
from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
from PIL import Image, ImageFilter

from openimagen.data.shapes import layout, render_scene
from openimagen.data.shapes_scene import BACKGROUNDS, COLORS, NUMBERS, RELATIONS, SHAPES, SIZES, ObjectSpec, SceneSpec
from openimagen.errors import check_choice
from openimagen.eval.prompts import PromptCase, all_cases

DEGRADATIONS = ("clean", "blur", "noise", "resample", "all")
_SCENE = {"single_object": "single_object", "colors": "single_object", "counting": "counting",
          "two_objects": "two_object", "color_attr": "two_object", "position": "position"}


def render_case(case: PromptCase, size: int, rng: random.Random) -> tuple:
    """``(image, objects)``: a scene showing exactly what ``case`` asks for (sizes not named in the case are
    random) and the builder's ground truth of each object (colour, shape, size, box, center)."""
    objs = []
    size_of_all = rng.choice(list(SIZES))                       # counting scenes use one size for every object
    for o in case.objects:
        z = o.size or (size_of_all if case.category == "counting" else rng.choice(list(SIZES)))
        objs += [ObjectSpec(o.color, o.shape, z)] * o.count
    spec = SceneSpec(_SCENE[case.category], tuple(objs), rng.choice(list(BACKGROUNDS)), case.relation)
    return render_scene(spec, layout(rng, spec, size), size)


def degrade(image: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    """One of :data:`DEGRADATIONS` applied to ``image`` (noise drawn from ``rng``)."""
    check_choice("degradation", kind, DEGRADATIONS)
    side = image.size[0]
    if kind in ("resample", "all"):
        image = image.resize((32, 32), Image.BOX).resize((side, side), Image.BILINEAR)
    if kind in ("blur", "all"):
        image = image.filter(ImageFilter.GaussianBlur(1.0))
    if kind in ("noise", "all"):
        x = np.asarray(image, dtype=np.float32) / 255 + rng.normal(0, 0.05, (side, side, 3)).astype(np.float32)
        image = Image.fromarray((x.clip(0, 1) * 255).round().astype(np.uint8))
    return image


def _other(rng: random.Random, options, *exclude):
    return rng.choice([o for o in options if o not in exclude])


def corrupt_case(case: PromptCase, rng: random.Random) -> PromptCase:
    """``case`` with one thing its category tests changed, so an image of ``case`` does not show it.

    single_object: colour, shape or size; colors: colour; counting: count; two_objects: one shape (to a shape
    not in the prompt); color_attr: the two colours swapped; position: the relation (to any other one).
    """
    objs, rel = list(case.objects), case.relation
    c = case.category
    if c == "single_object":
        o = objs[0]
        what = rng.choice(("color", "shape", "size"))
        objs[0] = (replace(o, color=_other(rng, COLORS, o.color)) if what == "color" else
                   replace(o, shape=_other(rng, SHAPES, o.shape)) if what == "shape" else
                   replace(o, size=_other(rng, SIZES, o.size)))
    elif c == "colors":
        objs[0] = replace(objs[0], color=_other(rng, COLORS, objs[0].color))
    elif c == "counting":
        objs[0] = replace(objs[0], count=_other(rng, range(1, len(NUMBERS) + 1), objs[0].count))
    elif c == "two_objects":
        k = rng.randrange(2)
        objs[k] = replace(objs[k], shape=_other(rng, SHAPES, *(o.shape for o in objs)))
    elif c == "color_attr":
        a, b = objs
        objs = [replace(a, color=b.color), replace(b, color=a.color)]
    else:
        rel = _other(rng, RELATIONS, rel)
    return PromptCase(case.id + "~wrong", c, case.prompt + " (wrong)", tuple(objs), rel)


def random_case(category: str, rng: random.Random) -> PromptCase:
    """A random valid case of ``category`` (any split), e.g. for scorer validation."""
    case = rng.choice(all_cases(category))
    return replace(case, id=f"val-{category}")

