"""The shapes scorer: does an image show what a prompt asks for? (GenEval-style, Ghosh et al. 2023.)

GenEval finds objects with a pretrained detector, then checks counts, colours and positions by rules. Shapes
scenes are flat-coloured upright shapes on a light background, so here detection is image analysis
(:func:`detect`), validated against the builder's ground truth (``python -m openimagen.eval.validate_scorer``):

1. Segmentation (:mod:`.segment`) at 64 px: background and noise from the border, *silhouettes* (pixels that
   differ from the background) and *cores* (pixels close to one of the eight palette colours).
2. Objects (:func:`regions`): a silhouette holding several thick cores that are not joined by pixels of
   their colour (objects that touch) is divided among them by geodesic growth.
3. Colour: the core's palette colour.
4. Shape: a coverage map of the object (each pixel's sRGB colour projected onto the background-to-colour
   line) gives eight scale-free descriptors (:func:`shape_features`: fill of the box, mass above the middle,
   3-, 4- and 5-fold angular harmonics, vertical skew, compactness, extent) and a small fitted classifier
   (:mod:`.shape_classifier`) names the shape.
5. Size: the silhouette's longer box side over the image side, split per shape between the builder's small
   (0.15-0.19 of the side) and big (0.27-0.31) objects (:data:`SIZE_SPLIT`).

:func:`check` compares the detections with a :class:`~openimagen.eval.prompts.PromptCase`: exactly ``count``
objects of each named colour and shape (and size, if named), no other object, and for a relation
``objects[0] REL objects[1]`` on box centres with the relation's axis dominating (|dx| > |dy| for left/right).
GenEval accepts a relation when the centre offset, less a dead zone of 0.1 of the summed box sizes, points
within 60 degrees of its axis, so a diagonal offset satisfies two relations; here exactly one holds (within 45
degrees), which the builder's position layouts always satisfy and which rejects perpendicular wrong relations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np

from openimagen.eval.prompts import PromptCase
from openimagen.eval.segment import PALETTE, PALETTE_LAB, WORK, Segmentation, erode, grow, label, segment, shifts
from openimagen.eval.shape_classifier import classify_shape

MIN_AREA = 16            # silhouette pixels (of 64 x 64) below which a region is speckle, not an object
#                          (the smallest object the builder draws covers about 45 even when degraded)
MIN_CORE = 3             # core pixels needed to seed an object of its own
SIZE_SPLIT = {"circle": 0.273, "square": 0.266, "triangle": 0.266, "star": 0.227}  # silhouette box side / image
#             side between the builder's small (0.15-0.19) and big (0.27-0.31) objects, blur and resampling included


@dataclass
class Detection:
    color: str
    shape: str
    size: str                                     # "small" | "big"
    box: tuple                                    # (x0, y0, x1, y1) in 64 px units, exclusive end
    area: float                                   # coverage-weighted pixels
    features: dict = field(default_factory=dict)

    @property
    def center(self) -> tuple:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    def to_json(self) -> dict:
        return {"color": self.color, "shape": self.shape, "size": self.size, "box": list(self.box),
                "area": round(self.area, 1), "features": {k: round(v, 3) for k, v in self.features.items()}}


@dataclass
class Verdict:
    correct: bool
    reasons: list                                 # why not, one line each; empty when correct
    detections: list

    def to_json(self) -> dict:
        return {"correct": self.correct, "reasons": self.reasons, "detections": [d.to_json() for d in self.detections]}


# --- detection ------------------------------------------------------------------------------------------------
def regions(seg: Segmentation) -> list:
    """``[(region mask, palette index)]``: each silhouette, split among the objects its cores show.

    Seeds are the *thick* cores (some pixel keeps all four neighbours in the core, :func:`erode`; thin rims of
    another palette colour along antialiased edges are not) of at least ``MIN_CORE`` pixels. Seeds of one
    colour joined by pixels within ``LOOSE_DELTA_E`` of that colour are one object (a star's centre and an arm
    cut off by noise); seeds of one colour separated by a dark outline or background, or of different colours,
    are different objects, and the silhouette is divided among them by geodesic growth. A silhouette without
    seeds is one object of its largest core's colour, or without any core, of the palette colour nearest its
    median colour."""
    sil, n_sil = label(seg.fg.astype(np.int64))
    cores, n_core = label(seg.classes)
    loose, _ = label(seg.loose)
    area = np.bincount(cores[cores >= 0], minlength=n_core)
    thick = np.zeros(n_core + 1, bool)
    thick[cores[erode(seg.classes)]] = True
    core_class, core_group = np.zeros(n_core, np.int64), np.zeros(n_core, np.int64)
    core_class[cores[cores >= 0]] = seg.classes[cores >= 0]
    core_group[cores[cores >= 0]] = loose[cores >= 0]                       # cores lie inside loose regions
    out = []
    for s in range(n_sil):
        mask = sil == s
        if mask.sum() < MIN_AREA:
            continue
        inside = np.unique(cores[mask & (cores >= 0)])
        seeds = inside[thick[inside] & (area[inside] >= MIN_CORE)]
        groups = np.unique(core_group[seeds])
        if len(groups) <= 1:
            if len(inside):
                k = core_class[seeds[0] if len(seeds) else inside[area[inside].argmax()]] - 1
            else:
                k = int(np.linalg.norm(PALETTE_LAB - np.median(seg.lab[mask], axis=0), axis=-1).argmin())
            out.append((mask, int(k)))
            continue
        seed_map = np.where(np.isin(cores, seeds), core_group[np.maximum(cores, 0)], -1)
        owner = grow(seed_map, mask)
        for g in groups:
            part = owner == g
            if part.sum() >= MIN_AREA:
                out.append((part, int(core_class[seeds[core_group[seeds] == g][0]]) - 1))
    return out


def shape_features(alpha: np.ndarray) -> dict:
    """Scale-free descriptors of a coverage map in [0, 1] (a crop around one object).

    ``fill``: mass over the area of the box of alpha >= 1/2 (square 1, circle pi/4, triangle 1/2, star ~0.36);
    ``top``: share of the mass above the box's middle (triangle 1/4, the others ~1/2); ``m3, m4, m5``:
    magnitude of the k-fold angular harmonic of the r-weighted mass about its centroid (triangle, square and
    star have 3-, 4- and 5-fold symmetry, a circle none); ``skew``: vertical skewness (triangle < 0);
    ``compact``: second moment over squared mass (circle 1/(2 pi), higher for stars); ``extent``: longer box
    side over the image side."""
    h, w = alpha.shape
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    alpha = alpha + 1e-6                                                   # never all zero
    m = alpha.sum()
    by, bx = np.nonzero(alpha >= 0.5)
    if len(bx) == 0:
        by, bx = np.nonzero(alpha >= alpha.max() / 2)
    x0, x1, y0, y1 = bx.min(), bx.max() + 1, by.min(), by.max() + 1
    dx, dy = xs - (alpha * xs).sum() / m, ys - (alpha * ys).sum() / m
    r, theta = np.hypot(dx, dy), np.arctan2(dx, -dy)
    wr = alpha * r
    harm = {f"m{k}": float(abs((wr * np.exp(1j * k * theta)).sum()) / max(wr.sum(), 1e-9)) for k in (3, 4, 5)}
    vx, vy = (alpha * dx ** 2).sum() / m, (alpha * dy ** 2).sum() / m
    return {"fill": float(m / ((x1 - x0) * (y1 - y0))), "top": float((alpha * (ys < (y0 + y1) / 2)).sum() / m),
            **harm, "skew": float((alpha * dy ** 3).sum() / m / max(vy, 1e-9) ** 1.5),
            "compact": float((vx + vy) / m), "extent": float(max(x1 - x0, y1 - y0) / WORK),
            "box": (int(x0), int(y0), int(x1), int(y1))}


def measure(seg: Segmentation, mask: np.ndarray, k: int) -> dict:
    """:func:`shape_features` of one region of colour k, with its ``box`` in image pixels and ``area``."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = max(ys.min() - 1, 0), ys.max() + 2, max(xs.min() - 1, 0), xs.max() + 2
    crop = mask[y0:y1, x0:x1]
    free = crop | ~seg.fg[y0:y1, x0:x1]                                  # not another object's pixels
    near = np.logical_or.reduce(shifts(crop, False)) & free                # the region and a one-pixel rim
    alpha = np.where(near, seg.alpha(k)[y0:y1, x0:x1], 0.0)
    alpha = np.clip(alpha / max(np.percentile(alpha[crop], 95), 0.05), 0.0, 1.0)   # relative to its full reading
    f = shape_features(alpha)
    bx0, by0, bx1, by1 = f["box"]
    side = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
    return {**f, "box": (int(bx0 + x0), int(by0 + y0), int(bx1 + x0), int(by1 + y0)), "area": float(alpha.sum()),
            "side": float(side / WORK)}


def describe(seg: Segmentation, mask: np.ndarray, k: int, classify=classify_shape) -> Detection:
    """The detection of one region: colour k, shape by the fitted classifier (``classify(features) -> name``),
    size from the box (shapes without a measured split: 0.25 of the side)."""
    f = measure(seg, mask, k)
    box, area = f.pop("box"), f.pop("area")
    shape = classify(f)
    return Detection(PALETTE[k], shape, "big" if f["side"] > SIZE_SPLIT.get(shape, 0.25) else "small", box, area, f)


def detect(image, classify=classify_shape) -> list:
    """Objects in an image (PIL or (H, W, 3) array, any size), as :class:`Detection` s, top to bottom.
    ``classify``: the shape classifier (default: the suite's four shapes; the concept measurement adds one)."""
    seg = segment(image)
    dets = [describe(seg, m, k, classify) for m, k in regions(seg)]
    return sorted(dets, key=lambda d: (d.box[1], d.box[0]))


# --- checking a prompt ----------------------------------------------------------------------------------------
def relation_holds(a: Detection, rel: str, b: Detection) -> bool:
    """``a rel b`` on box centres, the relation's axis dominating (image y grows downwards)."""
    dx, dy = b.center[0] - a.center[0], b.center[1] - a.center[1]
    return {"left of": dx > abs(dy), "right of": -dx > abs(dy), "above": dy > abs(dx), "below": -dy > abs(dx)}[rel]


def check(case: PromptCase, detections: list) -> Verdict:
    """Does the list of detections match the case exactly? (see the module docstring)"""
    reasons, matched = [], []
    left = list(detections)
    for o in case.objects:
        found = [d for d in left if d.color == o.color and d.shape == o.shape and o.size in (None, d.size)]
        if len(found) != o.count:
            what = f"{o.size + ' ' if o.size else ''}{o.color} {o.shape}"
            reasons.append(f"expected {o.count} {what}, found {len(found)}")
        matched.append(found)
        left = [d for d in left if d not in found]
    if left:
        reasons.append("unexpected " + ", ".join(f"{d.size} {d.color} {d.shape}" for d in left))
    if case.relation and not reasons:
        a, b = matched[0][0], matched[1][0]
        if not relation_holds(a, case.relation, b):
            reasons.append(f"{a.color} {a.shape} is not {case.relation} {b.color} {b.shape}")
    return Verdict(not reasons, reasons, list(detections))


def score(image, case: PromptCase) -> Verdict:
    """Detect the objects in ``image`` and check them against ``case``."""
    return check(case, detect(image))
