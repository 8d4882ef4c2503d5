"""Upscaling real 32 px images to 64 px: the shipped SR stage (Pipeline.upscale) against bicubic, per image,
on held-out shapes scenes and emoji (issue 13's acceptance measure).

Metrics against the real 64 px image: PSNR, and the distance between the emoji classifier's 128-d features
(the project's feature space, openimagen.eval.emoji_classifier) of the upscaled and the real image.

    .venv/bin/python benchmarks/upscale_vs_bicubic.py [--images 8] [--out benchmarks/results/upscale.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from openimagen.edit.inputs import resize, to_tensor


def real_sets(n: int) -> dict:
    from openimagen.data.emojis import NOTO_EMOJI_FONT, _init_font, read_emoji_test, render_emoji
    from openimagen.data.shapes import make_scene

    _init_font(str(NOTO_EMOJI_FONT))
    emoji = []
    for e in read_emoji_test()[5::37]:
        try:
            emoji.append(render_emoji(e.chars, 64).convert("RGB"))
        except ValueError:
            continue
        if len(emoji) == n:
            break
    return {"shapes (held-out scenes)": [make_scene(i, seed=3, split="heldout", size=64)[0].convert("RGB")
                                         for i in range(n)], "emoji": emoji}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/upscale.json"))
    args = ap.parse_args()
    from openimagen.eval.emoji_classifier import load_classifier
    from openimagen.pipeline import Pipeline

    clf, pipe, rows = load_classifier().eval(), Pipeline.from_pretrained(watermark=None), []
    for name, images in real_sets(args.images).items():
        real = to_tensor(images)
        low = resize(real, 32)
        candidates = {"bicubic": F.interpolate(low, size=(64, 64), mode="bicubic", align_corners=False).clamp(-1, 1)}
        for aug in (0.0, 0.1, 0.2):
            candidates[f"SR stage, aug {aug}"] = torch.cat(
                [pipe.upscale(low[k:k + 1], "", aug_level=aug, seed=k).stages[-1] for k in range(len(images))])
        with torch.no_grad():
            f_real = clf.features(real)
            for method, x in candidates.items():
                rows.append({"set": name, "method": method,
                             "feature_distance": round((clf.features(x) - f_real).norm(dim=1).mean().item(), 3),
                             "psnr_db": round((10 * torch.log10(4 / ((x - real) ** 2).mean())).item(), 2)})
    print("| set | method | feature distance (lower is better) | PSNR dB |\n|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['set']} | {r['method']} | {r['feature_distance']} | {r['psnr_db']} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"images_per_set": args.images, "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
