"""The shapes scorer agrees with ground truth on builder renders, clean and degraded, and rejects wrong prompts;
its building blocks (components, holes, growth) match brute force."""
import random
from collections import deque

import numpy as np
import pytest
from PIL import Image

from openimagen.eval.prompts import CATEGORIES, ObjectTruth, PromptCase
from openimagen.eval.render import degrade, render_case
from openimagen.eval.segment import fill_holes, grow, label
from openimagen.eval.shapes_scorer import Detection, check, detect, relation_holds, score
from openimagen.eval.validate_scorer import scenes

N = 200                                    # scenes per category, each scored clean and once degraded
DEGRADED = ("blur", "noise", "resample")   # scene i gets DEGRADED[i % 3]


@pytest.fixture(scope="module", params=CATEGORIES)
def agreement(request):
    category = request.param
    noise = np.random.default_rng(CATEGORIES.index(category))
    counts = {"clean": [0, 0], "degraded": [0, 0]}
    for i, (case, wrong, image) in enumerate(scenes(category, N, seed=1)):
        for kind, img in (("clean", image), ("degraded", degrade(image, DEGRADED[i % 3], noise))):
            dets = detect(img)
            counts[kind][0] += check(case, dets).correct
            counts[kind][1] += not check(wrong, dets).correct
    return category, {k: (t / N, f / N) for k, (t, f) in counts.items()}


def test_agreement_with_ground_truth(agreement):
    category, acc = agreement
    (clean_true, clean_false), (deg_true, deg_false) = acc["clean"], acc["degraded"]
    assert clean_true >= 0.99 and clean_false >= 0.99, (category, acc)
    assert deg_true >= 0.95 and deg_false >= 0.95, (category, acc)


def test_any_input_size_and_array_input():
    rng = random.Random(5)
    case = PromptCase("x", "position", "a red circle left of a blue square",
                      (ObjectTruth("red", "circle"), ObjectTruth("blue", "square")), "left of")
    image, _ = render_case(case, 64, rng)
    assert score(image, case).correct
    assert score(np.asarray(image), case).correct                                   # uint8 array
    assert score(np.asarray(image) / 255.0, case).correct                           # float array in [0, 1]
    assert score(image.resize((128, 128), Image.BICUBIC), case).correct
    small, _ = render_case(case, 32, random.Random(5))                              # a 32 px render
    assert score(small, case).correct


def test_blank_image_has_no_objects_and_reasons_are_readable():
    blank = Image.new("RGB", (64, 64), (212, 212, 212))
    assert detect(blank) == []
    case = PromptCase("x", "counting", "two red stars", (ObjectTruth("red", "star", 2),))
    verdict = score(blank, case)
    assert not verdict.correct and verdict.reasons == ["expected 2 red star, found 0"]


def test_check_counts_extras_and_relations():
    def det(color, shape, x, y, size="small"):
        return Detection(color, shape, size, (x, y, x + 8, y + 8), 50.0)

    a, b = det("red", "circle", 5, 30), det("blue", "square", 40, 32)
    rel = PromptCase("x", "position", "", (ObjectTruth("red", "circle"), ObjectTruth("blue", "square")), "left of")
    assert check(rel, [a, b]).correct
    assert not check(PromptCase("x", "position", "", rel.objects, "right of"), [a, b]).correct
    assert not check(PromptCase("x", "position", "", rel.objects, "above"), [a, b]).correct
    assert check(rel, [a, b, det("red", "star", 20, 5)]).reasons == ["unexpected small red star"]
    assert relation_holds(b, "right of", a) and not relation_holds(a, "below", b)
    sized = PromptCase("x", "single_object", "", (ObjectTruth("red", "circle", 1, "big"),))
    assert not check(sized, [a]).correct and check(sized, [det("red", "circle", 5, 5, "big")]).correct


def _bfs_components(classes):
    h, w = classes.shape
    out, n = -np.ones((h, w), int), 0
    for y in range(h):
        for x in range(w):
            if classes[y, x] > 0 and out[y, x] < 0:
                out[y, x] = n
                queue = deque([(y, x)])
                while queue:
                    cy, cx = queue.popleft()
                    for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                        if 0 <= ny < h and 0 <= nx < w and out[ny, nx] < 0 and classes[ny, nx] == classes[cy, cx]:
                            out[ny, nx] = n
                            queue.append((ny, nx))
                n += 1
    return out, n


@pytest.mark.parametrize("seed", range(5))
def test_label_matches_breadth_first_search(seed):
    rng = np.random.default_rng(seed)
    classes = (rng.random((40, 50)) < rng.uniform(0.3, 0.7)) * rng.integers(1, 4, (40, 50))
    assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
               for a, b in zip(label(classes), _bfs_components(classes)))


def test_fill_holes_and_grow():
    ring = np.zeros((9, 9), bool)
    ring[2:7, 2:7] = True
    ring[3:6, 3:6] = False
    filled = fill_holes(ring)
    assert filled[4, 4] and filled[2:7, 2:7].all() and not filled[0].any()
    open_ring = ring.copy()
    open_ring[2, 4] = False                                    # a gap to the outside: not a hole
    assert not fill_holes(open_ring)[4, 4]
    seeds = -np.ones((1, 7), int)
    seeds[0, 0], seeds[0, 6] = 0, 1
    assert grow(seeds, np.ones((1, 7), bool)).tolist() == [[0, 0, 0, 1, 1, 1, 1]]   # ties go to the larger label
    blocked = np.ones((1, 7), bool)
    blocked[0, 2] = False
    assert grow(seeds, blocked).tolist() == [[0, 0, -1, 1, 1, 1, 1]]
