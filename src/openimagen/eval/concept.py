"""Score images of a new concept: the shapes scorer with a shape classifier that also knows the new shape.

The shapes suite's classifier (:mod:`.shape_classifier`) knows the builder's four shapes; the fine-tuning
measurement (issue 14, point 4) teaches the model a fifth, ``cross`` (:mod:`openimagen.data.concept`). This file
fits the same model (multinomial logistic regression on the eight region descriptors and their pairwise products,
:func:`~.fit_shape_classifier.fit`) over the five shapes, on scenes drawn by the builder, clean and under every
one of :data:`~.render.DEGRADATIONS`, and stores it in ``concept_classifier.json``:

    python -m openimagen.eval.concept            # refits and rewrites concept_classifier.json (about a minute)

:func:`classify_concept` is the classifier to hand to ``evaluate_pipeline(..., classify=...)``; detection,
colours, counting and the checks are the shapes scorer's own.
"""
from __future__ import annotations

import argparse
import functools
import random
from pathlib import Path

import numpy as np

from openimagen.data.concept import NEW_SHAPES
from openimagen.data.shapes import layout, render_scene
from openimagen.data.shapes_scene import BACKGROUNDS, COLORS, SHAPES, SIZES, ObjectSpec, SceneSpec
from openimagen.eval.render import DEGRADATIONS, degrade
from openimagen.eval.segment import segment
from openimagen.eval.shape_classifier import FEATURES, probabilities, read_params

CONCEPT_CLASSES = SHAPES + NEW_SHAPES
PARAMS_PATH = Path(__file__).resolve().parent / "concept_classifier.json"


def random_scene(shape: str, rng: random.Random, size: int = 64) -> tuple:
    """One builder scene of ``shape``: a single object or two to four of it; ``(image, objects)``."""
    n = rng.choice((1, 1, 2, 3, 4))
    z = rng.choice(list(SIZES))
    objs = tuple(ObjectSpec(rng.choice(list(COLORS)), shape, z if n > 1 else rng.choice(list(SIZES)))
                 for _ in range(n))
    spec = SceneSpec("single_object" if n == 1 else "counting", objs, rng.choice(list(BACKGROUNDS)))
    return render_scene(spec, layout(rng, spec, size), size)


def collect(n: int, seed: int = 0, degradations=DEGRADATIONS) -> tuple:
    """``(X (N, 8), y (N,))``: region features and true shape indices from ``n`` scenes per shape and degradation."""
    from openimagen.eval.shapes_scorer import measure, regions

    xs, ys = [], []
    for label, shape in enumerate(CONCEPT_CLASSES):
        rng = random.Random(f"concept-fit:{seed}:{shape}")
        noise = np.random.default_rng([seed, label])
        for _ in range(n):
            image, objects = random_scene(shape, rng)
            for kind in degradations:
                seg = segment(degrade(image, kind, noise))
                for mask, k in regions(seg):
                    f = measure(seg, mask, k)
                    cx, cy = (f["box"][0] + f["box"][2]) / 2, (f["box"][1] + f["box"][3]) / 2
                    if any(o["box"][0] - 1 <= cx <= o["box"][2] + 1 and o["box"][1] - 1 <= cy <= o["box"][3] + 1
                           for o in objects):
                        xs.append([f[name] for name in FEATURES])
                        ys.append(label)
    return np.array(xs), np.array(ys)


@functools.lru_cache(maxsize=1)
def load_params(path: Path = PARAMS_PATH) -> dict:
    return read_params(path, CONCEPT_CLASSES, "openimagen.eval.concept")


def classify_concept(features: dict) -> str:
    """The shape (one of :data:`CONCEPT_CLASSES`) of one region's features."""
    return CONCEPT_CLASSES[int(probabilities(load_params(), features).argmax())]


def main(argv=None) -> None:
    from openimagen.eval.fit_shape_classifier import fit
    from openimagen.pipeline.io import write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=120, help="scenes per shape, each under every degradation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=PARAMS_PATH)
    args = p.parse_args(argv)
    params = fit(*collect(args.n, args.seed), classes=CONCEPT_CLASSES)
    params["fitted_with"] = {"n": args.n, "seed": args.seed}
    write_json(args.out, params)
    print(f"wrote {args.out}: {params['examples']} regions, training accuracy {params['train_accuracy']:.4f}")


if __name__ == "__main__":
    main()
