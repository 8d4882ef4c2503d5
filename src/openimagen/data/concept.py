"""A concept the shipped model has never seen, for fine-tuning experiments (issue 14, point 4).

The shapes builder's vocabulary is four shapes in eight colours (:mod:`.shapes_scene`); the default model was
trained on it. This file draws a fifth shape, ``cross`` (a plus sign, :func:`~.shapes.shape_geometry`), whose word
never occurs in that training data, as a small subject set for DreamBooth-style tuning:

* :func:`build_concept` writes ``count`` single-object scenes of the new shape in the *training colours* (every
  colour but :data:`HELDOUT_COLORS`), captioned like the builder's own single objects ("a big red cross", "a red
  cross", "a red cross on a beige background"): the usual shapes-data folder with ``manifest.jsonl``;
* :func:`concept_cases` gives the prompts that measure what was learnt, as the shapes scorer's
  :class:`~openimagen.eval.prompts.PromptCase` s: ``trained`` (single crosses in the training colours),
  ``heldout_colors`` (single crosses in colours never paired with the word) and ``counting`` (two or three
  crosses: counts never shown with the new shape).
"""
from __future__ import annotations

import os
import random
from typing import Union

from openimagen.data.shapes import layout, render_scene
from openimagen.data.shapes_scene import (BACKGROUNDS, COLORS, NUMBERS, SIZES, ObjectSpec, SceneSpec, article,
                                          plural, scene_captions)
from openimagen.data.writer import BuildResult, BuildWriter
from openimagen.errors import InvalidArgumentError, is_int_at_least

NEW_SHAPES = ("cross",)                      # shapes the builder can draw that the default model never saw
HELDOUT_COLORS = ("purple", "orange")        # never captioned with the new shape in the tuning set
TRAIN_COLORS = tuple(c for c in COLORS if c not in HELDOUT_COLORS)


def concept_scene(index: int, seed: int, shape: str = "cross", size: int = 32) -> tuple:
    """Scene ``index``: ``(image, captions, labels)``, one ``shape`` in a training colour; a pure function."""
    rng = random.Random(f"concept:{shape}:{seed}:{index}")
    color = TRAIN_COLORS[index % len(TRAIN_COLORS)]                    # every training colour equally often
    obj = ObjectSpec(color, shape, rng.choice(list(SIZES)))
    background = rng.choice(list(BACKGROUNDS))
    spec = SceneSpec("single_object", (obj,), background, None, scene_captions("single_object", (obj,), background,
                                                                                None))
    image, objects = render_scene(spec, layout(rng, spec, size), size)
    labels = {**spec.to_json(), "objects": objects, "image_size": size, "count": 1, "concept": shape}
    return image, list(spec.captions), labels


def build_concept(out: Union[str, os.PathLike], count: int = 20, seed: int = 0, size: int = 32,
                  shape: str = "cross") -> BuildResult:
    """Write ``count`` (1..1000) scenes of the new ``shape`` to ``out`` (a shapes-data folder)."""
    if shape not in NEW_SHAPES:
        raise InvalidArgumentError(f"shape must be one of {', '.join(NEW_SHAPES)} (a shape the model never saw), "
                                   f"got {shape!r}")
    if not is_int_at_least(count, 1) or count > 1000:
        raise InvalidArgumentError(f"count must be an integer in 1..1000, got {count!r}")
    if not is_int_at_least(size, 16):
        raise InvalidArgumentError(f"size must be an integer >= 16, got {size!r}")
    with BuildWriter(out, builder="concept", args={"count": count, "seed": seed, "size": size, "shape": shape}) as w:
        for i in range(count):
            image, captions, labels = concept_scene(i, seed, shape, size)
            w.add(f"{i:06d}", image, captions, labels)
    return w.result


def concept_cases(shape: str = "cross") -> dict:
    """The measurement's prompt sets: name -> tuple of PromptCase (see the module docstring)."""
    from openimagen.eval.prompts import ObjectTruth, PromptCase

    def single(color):
        return PromptCase(f"{shape}-{color}", "single_object", f"{article(color)} {color} {shape}", (ObjectTruth(color, shape),))

    def count(color, n):
        return PromptCase(f"{shape}-{color}-{n}", "counting", f"{NUMBERS[n - 1]} {color} {plural(shape)}",
                          (ObjectTruth(color, shape, n),))

    return {"trained": tuple(single(c) for c in TRAIN_COLORS),
            "heldout_colors": tuple(single(c) for c in HELDOUT_COLORS),
            "counting": tuple(count(c, n) for c in ("red", "blue", "purple") for n in (2, 3))}
