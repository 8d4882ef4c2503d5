"""Shapes builder: procedural scenes with exact ground truth, for measurable text alignment.

Vocabulary, captions and the held-out split live in :mod:`.shapes_scene`. This file lays
objects out and draws them.

Layout. Single objects go anywhere inside the frame (a margin of ``GAP`` of the side).
Scenes with several objects put each object in its own cell of a 3 x 3 grid, with a
margin inside the cell, so objects can never overlap or leave the frame (``big``
objects, at most 0.31 of the side, fit a cell). For ``position`` scenes the two cells
are drawn from those where the relation's axis dominates: "A left of B" needs
``col_B - col_A > |row_B - row_A|``, so A's box lies entirely left of B's box and the
centres differ more horizontally than vertically.

Drawing. Everything is drawn at ``SUPERSAMPLE`` (4) times the size with a darker
outline (:func:`~.shapes_scene.outline_color`), then box-downsampled (``Image.reduce``),
which antialiases the edges and keeps interiors at their exact :data:`COLORS` value.

Ground truth (manifest ``labels``): ``scene``, ``background``, ``relation``,
``heldout``, ``split``, ``image_size`` and ``objects``: a list of ``{"color", "shape",
"size", "box": [x0, y0, x1, y1], "center": [cx, cy]}`` in output pixels, where ``box``
is the tight box of the drawn outline and ``center`` the centre of the shape's
placement square (inside the fill for circle, square and triangle).
"""
from __future__ import annotations

import math
import os
import random
from typing import Optional, Union

from PIL import Image, ImageDraw

from openimagen.errors import InvalidArgumentError, check_choice, is_int_at_least

from .preprocess import check_size_arg
from .shapes_scene import (BACKGROUNDS, COLORS, DEFAULT_HOLDOUT, SCENE_TYPES, SIZES, SPLITS, Holdout,
                           SceneSpec, outline_color, sample_spec)
from .writer import BuildResult, BuildWriter, default_workers, run_jobs, save_sample

SUPERSAMPLE = 4
GRID = 3
GAP = 0.02          # margin, as a fraction of the image side, around every object
OUTLINE = 0.06      # outline width, as a fraction of the object's extent


def _relation_ok(rel: Optional[str], a: tuple, b: tuple) -> bool:
    """Does cell a=(col, row) stand in ``rel`` to cell b, with that axis dominating?"""
    dc, dr = b[0] - a[0], b[1] - a[1]
    return {None: a != b, "left of": dc > abs(dr), "right of": -dc > abs(dr),
            "above": dr > abs(dc), "below": -dr > abs(dc)}[rel] and a != b


def layout(rng: random.Random, spec: SceneSpec, side: int) -> list:
    """Placement squares ``(x0, y0, extent)`` in output pixels, one per object."""
    extents = [rng.uniform(*SIZES[o.size]) * side for o in spec.objects]
    if spec.kind == "counting":
        extents = [extents[0]] * len(extents)  # all the same size
    m = GAP * side
    if spec.kind == "single_object":
        e = extents[0]
        return [(rng.uniform(m, side - m - e), rng.uniform(m, side - m - e), e)]
    cells = [(c, r) for r in range(GRID) for c in range(GRID)]
    if spec.kind == "position":
        pairs = [(a, b) for a in cells for b in cells if _relation_ok(spec.relation, a, b)]
        chosen = list(rng.choice(pairs))
    else:
        chosen = rng.sample(cells, len(spec.objects))
    cell = side / GRID
    out = []
    for (col, row), e in zip(chosen, extents):
        slack = max(0.0, cell - m - e)  # m/2 margin on each side of the cell
        out.append((col * cell + m / 2 + rng.uniform(0, slack), row * cell + m / 2 + rng.uniform(0, slack), e))
    return out


def shape_geometry(shape: str, x0: float, y0: float, e: float):
    """``("ellipse", box)`` or ``("polygon", points)`` for a shape in its placement square."""
    if shape == "circle":
        return "ellipse", [x0, y0, x0 + e, y0 + e]
    if shape == "square":
        return "polygon", [(x0, y0), (x0 + e, y0), (x0 + e, y0 + e), (x0, y0 + e)]
    if shape == "triangle":
        return "polygon", [(x0 + e / 2, y0), (x0 + e, y0 + e), (x0, y0 + e)]
    if shape == "cross":                            # a plus sign, arms a third of the extent wide (data/concept.py)
        a, b = x0 + e / 3, x0 + 2 * e / 3
        c, d = y0 + e / 3, y0 + 2 * e / 3
        return "polygon", [(a, y0), (b, y0), (b, c), (x0 + e, c), (x0 + e, d), (b, d), (b, y0 + e), (a, y0 + e),
                           (a, d), (x0, d), (x0, c), (a, c)]
    R, r = e / 2, e / 2 * 0.42                      # five-pointed star, outer and inner radius
    cx, cy = x0 + R, y0 + R + (2 * R - R * (1 + math.cos(math.pi / 5))) / 2  # centred vertically
    return "polygon", [(cx + (R if k % 2 == 0 else r) * math.sin(k * math.pi / 5),
                        cy - (R if k % 2 == 0 else r) * math.cos(k * math.pi / 5)) for k in range(10)]


def _box(kind: str, geom) -> list:
    if kind == "ellipse":
        return [round(v, 2) for v in geom]
    xs, ys = [p[0] for p in geom], [p[1] for p in geom]
    return [round(min(xs), 2), round(min(ys), 2), round(max(xs), 2), round(max(ys), 2)]


def render_scene(spec: SceneSpec, placement: list, size: int) -> tuple:
    """Draw the scene; returns ``(RGB image size x size, list of object ground-truth dicts)``."""
    k = SUPERSAMPLE
    img = Image.new("RGB", (size * k, size * k), BACKGROUNDS[spec.background])
    draw = ImageDraw.Draw(img)
    objects = []
    for o, (x0, y0, e) in zip(spec.objects, placement):
        kind, geom = shape_geometry(o.shape, x0, y0, e)
        style = {"fill": COLORS[o.color], "outline": outline_color(o.color), "width": max(2, round(OUTLINE * e * k))}
        if kind == "ellipse":
            draw.ellipse([v * k for v in geom], **style)
        else:
            draw.polygon([(x * k, y * k) for x, y in geom], **style)
        objects.append({"color": o.color, "shape": o.shape, "size": o.size, "box": _box(kind, geom),
                        "center": [round(x0 + e / 2, 2), round(y0 + e / 2, 2)]})
    return img.reduce(k), objects


def make_scene(index: int, seed: int, split: str, size: int, holdout: Holdout = DEFAULT_HOLDOUT) -> tuple:
    """Scene ``index`` of a build: ``(image, captions, labels)``; a pure function of its arguments.

    Scene types cycle through :data:`SCENE_TYPES` by index, so every type gets a quarter.
    """
    rng = random.Random(f"shapes:{seed}:{split}:{index}")
    spec = sample_spec(rng, SCENE_TYPES[index % len(SCENE_TYPES)], split, holdout)
    image, objects = render_scene(spec, layout(rng, spec, size), size)
    labels = {**spec.to_json(), "objects": objects, "heldout": holdout.spec(spec), "split": split,
              "image_size": size, "count": len(objects)}
    return image, list(spec.captions), labels


def _shapes_job(job) -> tuple:
    out, key, index, seed, split, size, holdout = job
    image, captions, labels = make_scene(index, seed, split, size, holdout)
    save_sample(out, key, image, captions[0])
    return captions, labels


def build_shapes(out: Union[str, os.PathLike], count: int, seed: int = 0, size: int = 64, *,
                 split: str = "train", holdout: Holdout = DEFAULT_HOLDOUT,
                 workers: Optional[int] = None) -> BuildResult:
    """Write ``count`` scenes of ``split`` ("train" | "heldout" | "all") to ``out``.

    Deterministic: scene i depends only on (seed, split, i, size, holdout), so the same
    arguments give byte-identical folders and a larger ``count`` extends a smaller one.
    """
    check_size_arg(size)
    check_choice("split", split, SPLITS)
    if not is_int_at_least(count, 1):
        raise InvalidArgumentError(f"count must be a positive integer, got {count!r}")
    if size < 16:
        raise InvalidArgumentError(f"size must be at least 16 for shapes scenes, got {size}")
    args = {"count": count, "seed": seed, "size": size, "split": split,
            "holdout": {"pairs": sorted(map(list, holdout.pairs)), "relations": sorted(map(list, holdout.relations))}}
    with BuildWriter(out, builder="shapes", args=args) as w:
        keys = [f"{i:06d}" for i in range(count)]
        jobs = [(w.out, k, i, seed, split, size, holdout) for i, k in enumerate(keys)]
        for key, (captions, labels) in zip(keys, run_jobs(_shapes_job, jobs, workers or default_workers())):
            w.record(key, captions, labels)
    return w.result
