"""The shapes scorer's shape classifier: multinomial logistic regression on eight region descriptors.

Inputs are :func:`~openimagen.eval.shapes_scorer.shape_features` (``FEATURES``), standardised, plus all their
pairwise products (a quadratic decision surface: 8 + 36 terms, each standardised). Classes are the builder's four shapes. The
parameters (``shape_classifier.json``, 180 weights) are fitted on scenes drawn by the shapes builder, clean
and degraded, by :mod:`openimagen.eval.fit_shape_classifier`; rerun that module to reproduce them.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from openimagen.errors import ModelLoadError

FEATURES = ("fill", "top", "m3", "m4", "m5", "skew", "compact", "extent")
CLASSES = ("circle", "square", "triangle", "star")
PARAMS_PATH = Path(__file__).resolve().parent / "shape_classifier.json"
_I, _J = np.triu_indices(len(FEATURES))


def expand(x: np.ndarray) -> np.ndarray:
    """(N, 8) raw features -> (N, 44): the features and their pairwise products (standardised afterwards)."""
    return np.concatenate([x, x[:, _I] * x[:, _J]], axis=1)


def read_params(path: Path, classes: tuple, module: str) -> dict:
    """Fitted parameters (mean, std, weight, bias as float64 arrays) of a classifier over ``classes`` from
    ``path``; ModelLoadError naming ``python -m <module>`` (which refits them) when missing or mismatched."""
    try:
        p = json.loads(Path(path).read_text())
        params = {k: np.asarray(p[k], np.float64) for k in ("mean", "std", "weight", "bias")}
    except (OSError, KeyError, ValueError) as e:
        raise ModelLoadError(f"shape classifier parameters {path} are missing or broken ({e}); "
                             f"rebuild them with python -m {module}") from None
    if tuple(p.get("features", ())) != FEATURES or tuple(p.get("classes", ())) != tuple(classes):
        raise ModelLoadError(f"{path} was fitted for other features or classes; refit it with python -m {module}")
    return params


@functools.lru_cache(maxsize=1)
def load_params(path: Path = PARAMS_PATH) -> dict:
    return read_params(path, CLASSES, "openimagen.eval.fit_shape_classifier")


def probabilities(params: dict, features: dict) -> np.ndarray:
    """(K,) class probabilities of one region's features under fitted ``params`` (K classes)."""
    x = np.array([[features[f] for f in FEATURES]])
    logits = ((expand(x) - params["mean"]) / params["std"]) @ params["weight"] + params["bias"]   # (1, K)
    e = np.exp(logits - logits.max())
    return (e / e.sum())[0]


def shape_probs(features: dict) -> np.ndarray:
    """(4,) probabilities of :data:`CLASSES` for one region's features."""
    return probabilities(load_params(), features)


def classify_shape(features: dict) -> str:
    return CLASSES[int(shape_probs(features).argmax())]
