"""Colour segmentation for the shapes scorer: background, object silhouettes and palette-colour cores.

1. Every image is resampled to ``WORK`` = 64 px and converted to CIELAB (D65), where Euclidean distance
   (Delta E 1976) follows perceived colour difference better than RGB does.
2. Background colour and noise: the per-channel median and robust std (1.4826 MAD) of the border pixels
   (objects never cover most of the border).
3. Noise: if the border's noise exceeds ``NOISE_LEVEL``, colours are Gaussian-smoothed (``SMOOTH_SIGMA``).
4. *Silhouettes* (``fg``): pixels whose distance from the background, in units of the per-channel noise
   (at least ``NOISE_FLOOR``), exceeds ``Z_FG``; in a noisy image also pixels whose locally averaged squared
   distance does (averaging energy, not colour, keeps thin dark outlines and faint white fills, which cancel in
   an average of colours). Then a one-pixel closing and hole filling.
5. *Cores* (``classes``): silhouette pixels within ``CORE_DELTA_E`` of one of the eight
   :data:`~openimagen.data.COLORS` and clearly closer to it than to the background. Fills are cores; dark
   outlines and antialiased edges are mixtures and mostly not. ``loose``: the same with ``LOOSE_DELTA_E``.
6. Coverage (:meth:`Segmentation.alpha`): how much of a pixel an object of a given colour covers, read off
   its sRGB colour, in which antialiasing, blur and additive noise are all linear.
7. Connected components: :func:`label` (4-connected, vectorised union-find with pointer jumping; no scipy
   needed) and :func:`grow` (geodesic growth of seeds inside a mask).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from openimagen.data.shapes_scene import COLORS, outline_color
from openimagen.errors import InvalidArgumentError

WORK = 64                # evaluation resolution: every image is scored at 64 x 64
NOISE_LEVEL = 2.0        # border noise (robust std of a Lab channel) above which colours are smoothed
SMOOTH_SIGMA = 1.0       # that smoothing: Gaussian, in pixels
NOISE_FLOOR = 1.0        # per-channel noise scale never taken below this (Delta E units)
Z_FG = 5.0               # silhouette: noise-scaled distance from the background above this ...
Z_FG_NOISY = 4.5         # ... or noise-scaled root of the locally averaged squared distance above this
CORE_DELTA_E = 22.0      # core: Delta E to the nearest palette colour at most this ...
BG_MARGIN = 4.0          # ... and closer to it than to the background by this much
LOOSE_DELTA_E = 35.0     # cores joined by pixels this close to their colour are one object
PALETTE = tuple(COLORS)  # colour index k -> name; in ``classes`` 0 is no core, k + 1 is PALETTE[k]

_LINEAR = np.array([c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
                    for c in np.arange(256) / 255.0], np.float32)     # sRGB byte -> linear RGB
_RGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]],
                       np.float32) / np.array([[0.95047], [1.0], [1.08883]], np.float32)   # D65-normalised


def to_pixels(image) -> np.ndarray:
    """PIL image or (H, W, 3) uint8 / float-in-[0, 1] array -> (WORK, WORK, 3) uint8 RGB.

    Smaller images are upsampled bilinearly, larger ones box-filtered (area average)."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise InvalidArgumentError(f"expected an (H, W, 3) RGB array, got shape {image.shape}")
        if image.dtype != np.uint8:
            image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
        image = Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise InvalidArgumentError(f"expected a PIL image or an RGB array, got {type(image).__name__}")
    image = image.convert("RGB")
    if image.size != (WORK, WORK):
        image = image.resize((WORK, WORK), Image.BOX if min(image.size) >= WORK else Image.BILINEAR)
    return np.asarray(image)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB bytes (..., 3) uint8 -> CIELAB (..., 3) float32, D65 white."""
    xyz = _LINEAR[rgb] @ _RGB_TO_XYZ.T
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


PALETTE_LAB = rgb_to_lab(np.array([COLORS[k] for k in PALETTE], np.uint8))   # (8, 3)
PALETTE_RGB = np.array([COLORS[k] for k in PALETTE], np.float32) / 255.0     # (8, 3)
OUTLINE_RGB = np.array([outline_color(k) for k in PALETTE], np.float32) / 255.0


def _border(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x[0], x[-1], x[1:-1, 0], x[1:-1, -1]])


def background(lab: np.ndarray) -> tuple:
    """``(colour (3,), noise (3,))``: median and robust std (1.4826 MAD) per channel of the one-pixel border."""
    border = _border(lab)
    bg = np.median(border, axis=0)
    return bg, 1.4826 * np.median(np.abs(border - bg), axis=0)


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an (H, W, ...) float array, edges replicated."""
    r = max(1, int(3 * sigma + 0.5))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    for axis in (0, 1):
        p = np.pad(x, [(r, r) if a == axis else (0, 0) for a in range(x.ndim)], mode="edge")
        n = x.shape[axis]
        x = sum(w * np.take(p, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return x


@dataclass
class Segmentation:
    rgb: np.ndarray          # (64, 64, 3) sRGB in [0, 1], smoothed if the image was noisy
    lab: np.ndarray          # (64, 64, 3) CIELAB, smoothed like ``rgb``
    bg: np.ndarray           # (3,) background colour, Lab
    bg_rgb: np.ndarray       # (3,) background colour, sRGB in [0, 1]
    scale: np.ndarray        # (3,) per-channel noise scale, at least NOISE_FLOOR
    z: np.ndarray            # (64, 64) distance from the background in units of ``scale``
    fg: np.ndarray           # (64, 64) bool silhouettes
    classes: np.ndarray      # (64, 64) int: 0 no core, k + 1 a core pixel of PALETTE[k] (inside fg)
    loose: np.ndarray        # (64, 64) int: like ``classes`` with LOOSE_DELTA_E (a superset of the cores)
    smoothed: bool

    def alpha(self, k: int) -> np.ndarray:
        """(64, 64) coverage by an object of palette colour k. Each pixel's sRGB colour is projected onto the
        line from the background to the fill colour and onto the line to the outline colour (antialiasing, blur
        and additive noise are linear in sRGB, so a pixel half covered reads 1/2); the larger reading, clipped
        to [0, 1], is the coverage."""
        out = np.zeros(self.rgb.shape[:2], np.float32)
        for ref in (PALETTE_RGB[k], OUTLINE_RGB[k]):
            d = ref - self.bg_rgb                                                   # (3,)
            out = np.maximum(out, (self.rgb - self.bg_rgb) @ d / max(float(d @ d), 1e-6))
        return np.clip(out, 0.0, 1.0)


def segment(image) -> Segmentation:
    """Background, silhouettes and palette cores of an image (see the module docstring)."""
    pixels = to_pixels(image)
    rgb, lab = pixels.astype(np.float32) / 255.0, rgb_to_lab(pixels)
    bg, noise = background(lab)
    smoothed = bool(noise.max() > NOISE_LEVEL)
    if smoothed:
        energy = (((lab - bg) / np.maximum(noise, NOISE_FLOOR)) ** 2).sum(-1)         # (H, W), ~3 on background
        rgb = gaussian_blur(rgb, SMOOTH_SIGMA)
        lab = gaussian_blur(lab, SMOOTH_SIGMA)
        bg, noise = background(lab)
    scale = np.maximum(noise, NOISE_FLOOR)
    z = np.linalg.norm((lab - bg) / scale, axis=-1)                                  # (H, W)
    fg = z > Z_FG
    if smoothed:
        fg |= np.sqrt(gaussian_blur(energy, SMOOTH_SIGMA)) > Z_FG_NOISY
    fg = fill_holes(close(fg))
    d = np.linalg.norm(lab[..., None, :] - PALETTE_LAB, axis=-1)                    # (H, W, 8)
    best = d.argmin(-1)
    dmin = np.take_along_axis(d, best[..., None], -1)[..., 0]
    colour = fg & (dmin + BG_MARGIN < np.linalg.norm(lab - bg, axis=-1))
    classes, loose = (np.where(colour & (dmin <= t), best + 1, 0) for t in (CORE_DELTA_E, LOOSE_DELTA_E))
    return Segmentation(rgb, lab, bg, np.median(_border(rgb), axis=0), scale, z, fg, classes, loose, smoothed)


# --- morphology and components ----------------------------------------------------------------------------------
def shifts(x: np.ndarray, pad) -> list:
    """``x`` and its four 4-neighbour shifts (outside the image reads ``pad``)."""
    p = np.pad(x, 1, constant_values=pad)
    return [p[1:-1, 1:-1], p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]]


def close(mask: np.ndarray) -> np.ndarray:
    """Morphological closing with the 4-neighbourhood cross: joins parts of one object split by a one-pixel
    seam (a white fill and its grey outline can blur into a ring of background colour)."""
    grown = np.logical_or.reduce(shifts(mask, False))
    return np.logical_and.reduce(shifts(grown, True))


def erode(classes: np.ndarray) -> np.ndarray:
    """Pixels whose four neighbours carry the same positive class (outside the image counts as different)."""
    c, *nbrs = shifts(classes, -1)
    return (c > 0) & np.logical_and.reduce([n == c for n in nbrs])


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` plus every region outside it that does not reach the border."""
    ids, _ = label((~mask).astype(np.int64))
    return mask | ((ids >= 0) & ~np.isin(ids, _border(ids)))


def label(classes: np.ndarray) -> tuple:
    """4-connected components of equal positive values: ``(ids (H, W) int, -1 outside; count)``, numbered in
    order of their first pixel (row-major).

    Union-find on the edge list, vectorised (Shiloach-Vishkin style): every pixel points to a parent, each
    edge hooks the larger root under the smaller, then pointers jump to their grandparent until stable."""
    h, w = classes.shape
    valid = classes > 0
    ry, rx = np.nonzero(valid[:, :-1] & (classes[:, :-1] == classes[:, 1:]))        # joins (y, x) and (y, x + 1)
    dy, dx = np.nonzero(valid[:-1] & (classes[:-1] == classes[1:]))                 # joins (y, x) and (y + 1, x)
    u = np.concatenate([ry * w + rx, dy * w + dx])
    v = np.concatenate([ry * w + rx + 1, (dy + 1) * w + dx])
    parent = np.arange(h * w)
    while True:
        pu, pv = parent[u], parent[v]
        diff = pu != pv
        if not diff.any():
            break
        np.minimum.at(parent, np.maximum(pu, pv)[diff], np.minimum(pu, pv)[diff])
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    flat = np.flatnonzero(valid)
    roots, ids = np.unique(parent[flat], return_inverse=True)
    out = np.full(h * w, -1)
    out[flat] = ids
    return out.reshape(h, w), len(roots)


def grow(seeds: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Spread seed labels (>= 0; -1 none) through ``mask`` one 4-neighbour step at a time (a geodesic
    Voronoi partition of the mask); pixels the seeds cannot reach keep -1."""
    lab = np.where(mask, seeds, -1)
    while True:
        _, *nbrs = shifts(lab, -1)
        new = np.where(mask & (lab < 0), np.maximum.reduce(nbrs), lab)
        if np.array_equal(new, lab):
            return lab
        lab = new
