"""Fit the shapes scorer's shape classifier and write ``shape_classifier.json``.

    python -m openimagen.eval.fit_shape_classifier            # about 3 minutes on 2 CPU cores

Training data: for every prompt category, ``n`` random cases are drawn by the shapes builder
(:func:`~openimagen.eval.render.render_case`, seeds ``fit:<seed>:<category>``, disjoint from the validation
seeds of :mod:`openimagen.eval.validate_scorer`) and scored under every one of
:data:`~openimagen.eval.render.DEGRADATIONS`; every detected region whose centre lies in exactly one ground-truth
box becomes one example labelled with that object's shape. Multinomial logistic regression (float64, L-BFGS,
L2 weight 1e-3) on :func:`~openimagen.eval.shape_classifier.expand`-ed features; deterministic.
"""
from __future__ import annotations

import argparse
import json
import random

import numpy as np

from openimagen.eval.prompts import CATEGORIES
from openimagen.eval.render import DEGRADATIONS, degrade, random_case, render_case
from openimagen.eval.segment import segment
from openimagen.eval.shape_classifier import CLASSES, FEATURES, PARAMS_PATH, expand


def collect(n: int, seed: int = 0) -> tuple:
    """``(X (N, 8), y (N,))`` region features and true shapes from ``n`` scenes per category and degradation."""
    from openimagen.eval.shapes_scorer import measure, regions

    xs, ys = [], []
    for category in CATEGORIES:
        rng = random.Random(f"fit:{seed}:{category}")
        noise = np.random.default_rng([seed, CATEGORIES.index(category)])
        for _ in range(n):
            image, objects = render_case(random_case(category, rng), 64, rng)
            for kind in DEGRADATIONS:
                seg = segment(degrade(image, kind, noise))
                for mask, k in regions(seg):
                    f = measure(seg, mask, k)
                    cx, cy = (f["box"][0] + f["box"][2]) / 2, (f["box"][1] + f["box"][3]) / 2
                    hits = [o for o in objects if o["box"][0] - 1 <= cx <= o["box"][2] + 1
                            and o["box"][1] - 1 <= cy <= o["box"][3] + 1]
                    if len(hits) == 1:
                        xs.append([f[name] for name in FEATURES])
                        ys.append(CLASSES.index(hits[0]["shape"]))
    return np.array(xs), np.array(ys)


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, classes: tuple = CLASSES) -> dict:
    """Multinomial logistic regression of labels ``y`` (indices into ``classes``) on expanded features ``x``."""
    import torch

    e = expand(x)
    mean, std = e.mean(0), e.std(0) + 1e-9
    a = torch.tensor((e - mean) / std, dtype=torch.float64)
    target = torch.tensor(y)
    weight = torch.zeros(a.shape[1], len(classes), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=1000, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(a @ weight + bias, target) + l2 * (weight ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    accuracy = float(((a @ weight + bias).argmax(1) == target).double().mean())
    return {"features": list(FEATURES), "classes": list(classes), "mean": mean.tolist(), "std": std.tolist(),
            "weight": weight.detach().numpy().tolist(), "bias": bias.detach().numpy().tolist(),
            "train_accuracy": accuracy, "examples": int(len(y))}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200, help="scenes per category, each under every degradation (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the training scenes (default 0)")
    p.add_argument("--out", default=str(PARAMS_PATH), help="where to write the parameters")
    args = p.parse_args(argv)
    x, y = collect(args.n, args.seed)
    params = fit(x, y)
    params["fitted_with"] = {"n": args.n, "seed": args.seed}
    with open(args.out, "w") as f:
        json.dump(params, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}: {params['examples']} regions, training accuracy {params['train_accuracy']:.4f}")


if __name__ == "__main__":
    main()
