"""An invisible watermark on every generated image, and its detector.

Method: spread-spectrum embedding (Cox, Kilian, Leighton & Shamoon 1997, "Secure spread spectrum watermarking for
multimedia"). A key-seeded pseudo-random pattern of +-1 in cells of ``cell x cell`` pixels is added to every
channel with amplitude ``amplitude`` (in 0..255 units, so the luma moves by the same amount and the hue does not).
Detection correlates the image's high-pass residual (the luma minus its 5x5 box mean, divided by its local RMS
plus one grey level, so that strong edges do not drown the mark) with the high-passed pattern of the key; the correlation is turned into a z-score against the correlations with ``decoys``
patterns of other keys, so the threshold means the same thing on every image: an unmarked image's z is about
standard normal, and ``z >= threshold`` (4.0) says "marked".

Why not the ``invisible-watermark`` package's DWT-DCT method: its encoder refuses images under 256 x 256 pixels,
and its underlying ``EmbedMaxDct`` on the default model's 64 x 64 images recovers 78% of 32 bits from the lossless
PNG (scale 36, PSNR 32.4 dB) and 53% (chance) after JPEG at quality 75. This pattern, at PSNR 38.7 dB, is detected
at the measured rates of docs/SERVING.md (``benchmarks/watermark_robustness.py``). Cells of 2 x 2 pixels survive
halving and re-enlarging the image; the pattern is made for the image's size, so other resizes are not detected.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

DEFAULT_KEY = 0x6F70656E696D6167   # "openimag"


@dataclass(frozen=True)
class Detection:
    """``z``: the z-score of the key's correlation among the decoys'; ``present``: ``z >= threshold``."""

    z: float
    present: bool


def _box_mean(y: np.ndarray, k: int = 5) -> np.ndarray:
    pad = np.pad(y, k // 2, mode="reflect")
    return np.lib.stride_tricks.sliding_window_view(pad, (k, k)).mean(axis=(-1, -2))


def _high_pass(y: np.ndarray) -> np.ndarray:
    return y - _box_mean(y)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


@lru_cache(maxsize=16)
def _references(wm: "Watermark", height: int, width: int) -> np.ndarray:
    """(1 + decoys, height * width): the high-passed patterns of the key and of the decoy keys, made once per size."""
    keys = [wm.key] + [wm.key + 1 + i for i in range(wm.decoys)]
    return np.stack([_high_pass(wm.pattern(height, width, k)).ravel() for k in keys])


@dataclass(frozen=True)
class Watermark:
    """Embed and detect the mark of ``key`` on RGB images of any size (at least 8 x 8 pixels).

    amplitude   +- pixel change in 0..255 units (3: PSNR about 38.7 dB)
    cell        side of the square cells the pattern is constant on (2: survives halving and re-enlarging)
    threshold   z-score from which an image counts as marked
    decoys      number of other keys whose correlations calibrate the z-score
    """

    key: int = DEFAULT_KEY
    amplitude: float = 3.0
    cell: int = 2
    threshold: float = 4.0
    decoys: int = 64

    def pattern(self, height: int, width: int, key: int | None = None) -> np.ndarray:
        """(height, width) float64 pattern of +-1, constant on ``cell x cell`` squares, from ``key``."""
        c = self.cell
        rng = np.random.default_rng(self.key if key is None else key)
        cells = rng.choice(np.array([-1.0, 1.0]), size=(-(-height // c), -(-width // c)))
        return np.kron(cells, np.ones((c, c)))[:height, :width]

    def embed(self, image: Image.Image) -> Image.Image:
        """The image (converted to RGB) with the mark added; uint8, same size."""
        rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
        marked = rgb + self.amplitude * self.pattern(*rgb.shape[:2])[..., None]
        return Image.fromarray(np.clip(np.round(marked), 0, 255).astype(np.uint8))

    def detect(self, image: Image.Image) -> Detection:
        """Whether ``image`` carries this key's mark: the z-score of its correlation (module docstring)."""
        rgb = np.asarray(image.convert("RGB"))
        h, w = rgb.shape[:2]
        if min(h, w) < 8:
            return Detection(0.0, False)
        r = _high_pass(_luma(rgb))
        r = r / (np.sqrt(_box_mean(r * r)) + 1.0)   # local contrast normalisation: edges stop drowning the mark
        r = r - r.mean()
        scores = _references(self, h, w) @ r.ravel()  # (1 + decoys,): the key's correlation, then the decoys'
        key, null = scores[0], scores[1:]
        if null.std() < 1e-9:                  # a flat image: nothing to correlate
            return Detection(0.0, False)
        z = (key - null.mean()) / null.std()
        return Detection(float(z), bool(z >= self.threshold))
