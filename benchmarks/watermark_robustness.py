"""How often the invisible watermark is found: on generated images as saved, after JPEG at quality 75 and after
halving and re-enlarging; and how often it is wrongly found on real images (emoji, clip art, shapes scenes).

Also measures the ``invisible-watermark`` package's DWT-DCT method on the same images for comparison (its
encoder refuses images under 256 x 256, so its ``EmbedMaxDct`` class is called directly; a 32-bit mark counts as
found when at least 28 bits are right, a chance rate of 1e-5 per image).

    .venv/bin/python benchmarks/watermark_robustness.py [--images 200] [--out benchmarks/results/watermark.json]
"""
from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

DEMO = ["a red circle above a blue square", "two green stars", "a big yellow triangle",
        "a blue square and a black circle", "grinning face", "red heart", "pizza", "rocket"]


def jpeg(im: Image.Image, quality: int = 75) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def png(im: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def half_and_back(im: Image.Image) -> Image.Image:
    w, h = im.size
    return im.resize((w // 2, h // 2), Image.BICUBIC).resize((w, h), Image.BICUBIC)


ATTACKS = {"as saved (PNG)": png, "JPEG q75": jpeg, "half size and back": half_and_back}


def generated(n: int) -> list:
    """n images from the shipped default model (raw, unmarked), the demo prompts with seeds 0, 1, ..."""
    from openimagen.pipeline import Pipeline, to_pil

    pipe = Pipeline.from_pretrained(watermark=None)
    out = []
    for start in range(0, n, 8):
        k = min(8, n - start)
        res = pipe([DEMO[(start + i) % len(DEMO)] for i in range(k)], seed=start)
        out += to_pil(res.stages[-1])
    return out


def real(n: int) -> list:
    """n real 64 px images: emoji and clip art (Debian packages) and shapes scenes, a third each."""
    from openimagen.data.emojis import NOTO_EMOJI_FONT, _init_font, read_emoji_test, render_emoji
    from openimagen.data.openclipart import MAX_PIXELS, OPENCLIPART_ROOT, list_clipart
    from openimagen.data.preprocess import Preprocessor, SkipImage
    from openimagen.data.shapes import make_scene

    third = n // 3
    _init_font(str(NOTO_EMOJI_FONT))
    emoji = []
    for e in read_emoji_test()[::7]:
        try:
            emoji.append(render_emoji(e.chars, 64).convert("RGB"))
        except ValueError:                     # not one glyph in this font
            continue
        if len(emoji) == third:
            break
    pre, clip = Preprocessor(64, "pad", 16, MAX_PIXELS), []     # as the data builder does (white pad, no bombs)
    for p in list_clipart():
        try:
            im = pre.pil(Path(OPENCLIPART_ROOT) / p).convert("RGB")
        except SkipImage:
            continue
        if np.ptp(np.asarray(im)) >= 8:
            clip.append(im)
        if len(clip) == third:
            break
    scenes = [make_scene(i, seed=11, split="train", size=64)[0].convert("RGB") for i in range(n - len(emoji) - len(clip))]
    return emoji + clip + scenes


class DwtDct:
    """invisible-watermark's DWT-DCT (scale 36 on the U channel, 4x4 blocks), 32 bits, found at >= 28 right."""

    def __init__(self):
        from imwatermark.maxDct import EmbedMaxDct

        self.bits = [int(b) for b in np.random.default_rng(0).integers(0, 2, 32)]
        self.codec = EmbedMaxDct(self.bits, 32, [0, 36, 36], 4)

    def embed(self, im):
        import cv2

        bgr = cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR)
        return Image.fromarray(cv2.cvtColor(self.codec.encode(bgr), cv2.COLOR_BGR2RGB))

    def found(self, im) -> bool:
        import cv2

        got = self.codec.decode(cv2.cvtColor(np.asarray(im.convert("RGB")), cv2.COLOR_RGB2BGR))
        return int(np.sum(np.array(got, bool) == np.array(self.bits, bool))) >= 28


def psnr(a, b) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(255 ** 2 / mse)) if mse > 0 else float("inf")


def measure(method, found, images, reals) -> dict:
    marked = [method.embed(im) for im in images]
    row = {"psnr_db": round(float(np.mean([psnr(a, b) for a, b in zip(images, marked)])), 2)}
    for name, attack in ATTACKS.items():
        row[name] = round(float(np.mean([found(attack(m)) for m in marked])), 4)
    row["false positives on real images"] = round(float(np.mean([found(r) for r in reals])), 4)
    row["false positives on unmarked generated"] = round(float(np.mean([found(im) for im in images])), 4)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/watermark.json"))
    args = ap.parse_args()
    from openimagen.safety import Watermark

    t0 = time.perf_counter()
    images, reals = generated(args.images), real(args.images)
    ours = Watermark()
    rows = {"openimagen spread spectrum (default)": measure(ours, lambda im: ours.detect(im).present, images, reals)}
    try:
        dwt = DwtDct()
        rows["invisible-watermark DWT-DCT"] = measure(dwt, dwt.found, images, reals)
    except ImportError:
        print("invisible-watermark is not installed: its row is skipped (pip install invisible-watermark)")
    cols = ["psnr_db", *ATTACKS, "false positives on real images", "false positives on unmarked generated"]
    print(f"{len(images)} generated images (64 px, default model), {len(reals)} real images\n")
    print("| method | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(str(row[c]) for c in cols) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"images": len(images), "real_images": len(reals), "rows": rows,
                                    "seconds": round(time.perf_counter() - t0, 1)}, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
