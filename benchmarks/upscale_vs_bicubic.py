"""Upscaling real 32 px images to 64 px: the shipped SR stage (Pipeline.upscale) against bicubic, per image,
on held-out shapes scenes and emoji (issue 13's acceptance measure).

Metrics against the real 64 px image: PSNR, and the distance between the emoji classifier's 128-d features
(the project's feature space, openimagen.eval.emoji_classifier) of the upscaled and the real image; the
high-frequency energy of the result relative to the real images' (``hf_ratio``: mean squared difference between
an image and its 2x down-and-up-sampled copy, the band an SR stage adds; 1 is the real images' level, far above
it is grain, far below is blur), and the CPU time per image. Pipeline.upscale keeps the result's downsample equal to the input (low-res
consistency, on unless told otherwise); "bicubic + back-projection" is the classical baseline with the same
property (bicubic, then the same projection: Irani & Peleg 1991's back-projection, solved exactly).

    .venv/bin/python benchmarks/upscale_vs_bicubic.py [--images 8] [--out benchmarks/results/upscale.json]
    .venv/bin/python benchmarks/upscale_vs_bicubic.py --model runs/gan-sr-model --steps 1,2,4   # another cascade's SR
    .venv/bin/python benchmarks/upscale_vs_bicubic.py --sr-strength 0.5,0.3       # SR started from the bicubic image
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from openimagen.diffusion.consistency import project_to_lowres
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


def hf_energy(x: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared detail above half the resolution: x - up(down(x)), (B,) float."""
    r = x.shape[-1]
    low = F.interpolate(x, size=(r // 2, r // 2), mode="bilinear", antialias=True, align_corners=False)
    return (x - F.interpolate(low, size=(r, r), mode="bilinear", align_corners=False)).pow(2).flatten(1).mean(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/upscale.json"))
    ap.add_argument("--model", type=Path, action="append", default=[],
                    help="another model directory whose SR stage to measure too (repeatable)")
    ap.add_argument("--steps", default="", help="with --model: comma-separated SR step counts (default: its own)")
    ap.add_argument("--sr-strength", default="", help="comma-separated sr_strength values below 1 to measure too (the "
                                                       "SR stage starts from the bicubic upsampling noised to it), "
                                                       "at the stage's own aug level")
    args = ap.parse_args()
    from openimagen.eval.emoji_classifier import load_classifier
    from openimagen.pipeline import Pipeline

    torch.set_num_threads(1)
    clf, pipe, rows = load_classifier().eval(), Pipeline.from_pretrained(watermark=None), []
    others = {str(m): Pipeline.from_pretrained(m, watermark=None) for m in args.model}
    steps = [int(s) for s in args.steps.split(",") if s] or [None]
    strengths = [float(v) for v in args.sr_strength.split(",") if v]

    def upscaled(p, low, **settings):
        t = time.perf_counter()
        x = torch.cat([p.upscale(low[k:k + 1], "", seed=k, **settings).stages[-1] for k in range(len(low))])
        return x, (time.perf_counter() - t) / len(low)

    for name, images in real_sets(args.images).items():
        real = to_tensor(images)
        low = resize(real, 32)
        t = time.perf_counter()
        bicubic = F.interpolate(low, size=(64, 64), mode="bicubic", align_corners=False).clamp(-1, 1)
        candidates = {"bicubic": (bicubic, (time.perf_counter() - t) / len(low))}
        t = time.perf_counter()
        projected = project_to_lowres(bicubic, low).clamp(-1, 1)
        candidates["bicubic + back-projection"] = (projected, (time.perf_counter() - t) / len(low))
        for aug in (0.0, 0.1, 0.2):
            candidates[f"SR stage, aug {aug}"] = upscaled(pipe, low, aug_level=aug)
        candidates["SR stage, low-res consistency off (the model's sr_strength)"] = upscaled(pipe, low,
                                                                                           lowres_consistency=False)
        for v in strengths:
            candidates[f"SR stage, sr_strength {v}"] = upscaled(pipe, low, sr_strength=v)
        for label, other in others.items():
            for n in steps:
                candidates[f"{label} SR, {n or 'default'} steps"] = upscaled(other, low, **({"steps": n} if n else {}))
                for v in strengths:
                    candidates[f"{label} SR, {n or 'default'} steps, sr_strength {v}"] = upscaled(
                        other, low, sr_strength=v, **({"steps": n} if n else {}))
        with torch.no_grad():
            f_real, hf_real = clf.features(real), hf_energy(real).mean()
            for method, (x, seconds) in candidates.items():
                rows.append({"set": name, "method": method,
                             "feature_distance": round((clf.features(x) - f_real).norm(dim=1).mean().item(), 3),
                             "psnr_db": round((10 * torch.log10(4 / ((x - real) ** 2).mean())).item(), 2),
                             "hf_ratio": round((hf_energy(x).mean() / hf_real).item(), 2),
                             "seconds_per_image": round(seconds, 3)})
    print("| set | method | feature distance (lower is better) | PSNR dB | HF energy / real | s per image |\n"
          "|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['set']} | {r['method']} | {r['feature_distance']} | {r['psnr_db']} | {r['hf_ratio']} | "
              f"{r['seconds_per_image']} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"images_per_set": args.images, "threads": 1, "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
