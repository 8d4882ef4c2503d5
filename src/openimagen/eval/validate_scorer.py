"""Validate the shapes scorer against ground truth: ``python -m openimagen.eval.validate_scorer [--n 500]``.

For every prompt category, ``n`` random cases are drawn by the shapes builder at 64 px
(:func:`~openimagen.eval.render.render_case`, seeds ``validate:<seed>:<category>``, disjoint from the seeds the
shape classifier was fitted on) and scored, clean and under each of :data:`~openimagen.eval.render.DEGRADATIONS`,
against their own prompt (*true*: agreement = share judged correct) and against a wrong prompt from
:func:`~openimagen.eval.render.corrupt_case` (*false*: agreement = share judged incorrect). Prints a Markdown
table; ``docs/EVALUATION.md`` shows its output.
"""
from __future__ import annotations

import argparse
import random
import time

import numpy as np

from openimagen.eval.prompts import CATEGORIES
from openimagen.eval.render import DEGRADATIONS, corrupt_case, degrade, random_case, render_case
from openimagen.eval.shapes_scorer import check, detect


def scenes(category: str, n: int, seed: int = 0) -> list:
    """``[(case, wrong case, clean 64 px image)]``, deterministic in (category, n, seed)."""
    rng, wrong_rng = random.Random(f"validate:{seed}:{category}"), random.Random(f"validate-wrong:{seed}:{category}")
    out = []
    for _ in range(n):
        case = random_case(category, rng)
        image, _ = render_case(case, 64, rng)
        out.append((case, corrupt_case(case, wrong_rng), image))
    return out


def agreement(category: str, n: int, degradations=DEGRADATIONS, seed: int = 0) -> dict:
    """``{degradation: {"true": share, "false": share, "n": n}}`` for one category."""
    data = scenes(category, n, seed)
    out = {}
    for j, kind in enumerate(degradations):
        noise = np.random.default_rng([seed, CATEGORIES.index(category), DEGRADATIONS.index(kind)])
        true = false = 0
        for case, wrong, image in data:
            dets = detect(degrade(image, kind, noise))
            true += check(case, dets).correct
            false += not check(wrong, dets).correct
        out[kind] = {"true": true / n, "false": false / n, "n": n}
    return out


def table(results: dict, degradations) -> str:
    head = "| category | " + " | ".join(f"{k} true / false" for k in degradations) + " |"
    lines = [head, "|---|" + "---:|" * len(degradations)]
    for c, r in results.items():
        lines.append(f"| {c} | " + " | ".join(f"{r[k]['true']:.3f} / {r[k]['false']:.3f}" for k in degradations) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Agreement of the shapes scorer with ground truth, per category.")
    p.add_argument("--n", type=int, default=500, help="scenes per category (default 500)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scenes (default 0)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    results = {c: agreement(c, args.n, DEGRADATIONS, args.seed) for c in CATEGORIES}
    print(table(results, DEGRADATIONS))
    images = args.n * len(CATEGORIES) * len(DEGRADATIONS)
    print(f"\n{args.n} scenes per category at 64 px, seed {args.seed}; true = share of images judged to match their "
          f"own prompt, false = share judged not to match a wrong prompt; {images} images scored in "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
