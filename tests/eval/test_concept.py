"""The concept measurement's five-shape classifier: the shapes scorer's model refitted with the new shape, checked
on fresh builder scenes (seeds disjoint from its fit), clean and degraded."""
import random
from collections import Counter

import pytest

from openimagen.eval.concept import CONCEPT_CLASSES, classify_concept, collect, load_params, random_scene
from openimagen.eval.shapes_scorer import check, detect


def test_the_shipped_parameters_cover_the_five_shapes():
    p = load_params()
    assert p["weight"].shape[1] == len(CONCEPT_CLASSES) == 5 and CONCEPT_CLASSES[-1] == "cross"


@pytest.mark.parametrize("shape", CONCEPT_CLASSES)
def test_fresh_scenes_of_every_shape_are_classified_right(shape):
    x, y = collect(6, seed=99, degradations=("clean", "blur", "noise"))
    from openimagen.eval.shape_classifier import FEATURES

    mine = x[y == CONCEPT_CLASSES.index(shape)]
    got = Counter(classify_concept(dict(zip(FEATURES, row))) for row in mine)
    assert len(mine) >= 10 and got[shape] / len(mine) >= 0.85, got


def test_a_rendered_cross_prompt_passes_the_scorer_and_a_circle_does_not():
    from openimagen.data.concept import concept_cases
    from openimagen.data.shapes import layout, render_scene
    from openimagen.data.shapes_scene import ObjectSpec, SceneSpec
    from openimagen.eval.prompts import ObjectTruth, PromptCase

    rng = random.Random(5)
    case = PromptCase("t", "counting", "two red crosses", (ObjectTruth("red", "cross", 2),))
    hits = 0
    for _ in range(8):
        spec = SceneSpec("counting", (ObjectSpec("red", "cross", "big"),) * 2, "beige")
        image, _ = render_scene(spec, layout(rng, spec, 64), 64)
        hits += check(case, detect(image, classify_concept)).correct
    assert hits >= 7
    image, _ = random_scene("circle", random.Random(1))
    assert not any(d.shape == "cross" for d in detect(image, classify_concept))
    assert len(concept_cases()["counting"]) == 6
