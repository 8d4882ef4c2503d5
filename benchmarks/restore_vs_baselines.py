"""Restoring degraded copies of held-out real images (issue 13, point 4): `Pipeline.restore` with the shipped model
against plain baselines, per degradation, on 8 held-out shapes scenes and 8 emoji at 64 px (those of
benchmarks/upscale_vs_bicubic.py) and 8 clip art images (Debian's openclipart-png, which the model never saw).

Degradations (seeded): Gaussian noise sigma 0.1 (of the [0, 1] range), Gaussian blur (radius 1 px), JPEG quality
20, scratches (3 random one-pixel white or black strokes). Methods: the degraded image itself, a 3x3 median filter,
bicubic down-to-32-and-up, and `restore` at its defaults (the stage that makes 64 px restores at 64 px: denoise
starts the sampler at the noisy image at its estimated noise level and debiases the clipped noise, deblur / jpeg start from it with noise 0.05 /
0.1 added, scratches are found, median-filled and repainted; openimagen.edit.restore). Metrics against the clean image: PSNR and the distance between
the emoji classifier's 128-d features (the project's feature space).

    .venv/bin/python benchmarks/restore_vs_baselines.py [--images 8] [--out benchmarks/results/restore.json]
"""
from __future__ import annotations

import argparse
import io
import json
import random
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from upscale_vs_bicubic import real_sets  # noqa: E402

from openimagen.edit.inputs import resize, to_tensor  # noqa: E402
from openimagen.edit.restore import median3  # noqa: E402


def clipart_set(n: int) -> list:
    """``n`` clip art images at 64 px (Debian's openclipart-png, evenly spaced through the sorted files, padded to
    square on white as the data builder does; flat ones skipped). The default model never saw clip art."""
    from openimagen.data.openclipart import MAX_PIXELS, OPENCLIPART_ROOT, is_flat, list_clipart
    from openimagen.data.preprocess import Preprocessor, SkipImage

    pre, out = Preprocessor(64, "pad", 16, MAX_PIXELS), []
    for path in list_clipart(limit=4 * n):
        try:
            im = pre.pil(OPENCLIPART_ROOT / path).convert("RGB")
        except SkipImage:
            continue
        if not is_flat(im):
            out.append(im)
        if len(out) == n:
            break
    return out


def degrade(images: list, kind: str, seed: int) -> list:
    rng = random.Random(seed)
    out = []
    for k, im in enumerate(images):
        if kind == "noise":
            x = to_tensor([im]) + 0.2 * torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(seed + k))
            out.append(x.clamp(-1, 1))
            continue
        if kind == "blur":
            im = im.filter(ImageFilter.GaussianBlur(1))
        elif kind == "jpeg":
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=20)
            im = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        elif kind == "scratches":
            im = im.copy()
            draw = ImageDraw.Draw(im)
            for _ in range(3):
                pts = [(rng.randrange(64), rng.randrange(64)) for _ in range(2)]
                draw.line(pts, fill=rng.choice([(255, 255, 255), (0, 0, 0)]), width=1)
        out.append(to_tensor([im]))
    return [torch.cat(out)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/restore.json"))
    ap.add_argument("--model", type=Path, default=None, help="model directory (default: the shipped default model)")
    ap.add_argument("--sr-strength", type=float, default=None,
                    help="sr_strength of the SR stage for denoise/deblur/jpeg (default: the model's)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from openimagen.eval.emoji_classifier import load_classifier
    from openimagen.pipeline import Pipeline

    clf, pipe, rows = load_classifier().eval(), Pipeline.from_pretrained(args.model, watermark=None), []
    kinds = {"noise": "denoise", "blur": "deblur", "jpeg": "jpeg", "scratches": "scratches"}
    sets = {**real_sets(args.images), "clip art": clipart_set(args.images)}
    for name, images in sets.items():
        real = to_tensor(images)
        with torch.no_grad():
            f_real = clf.features(real)
        for d, (kind, restore_kind) in enumerate(kinds.items()):
            (bad,) = degrade(images, kind, seed=100 * d)
            up = F.interpolate(resize(bad, 32), size=(64, 64), mode="bicubic", align_corners=False).clamp(-1, 1)
            extra = {"sr_strength": args.sr_strength} if args.sr_strength is not None and kind != "scratches" else {}
            restored = torch.cat([pipe.restore(bad[k:k + 1], restore_kind, seed=k, **extra).stages[-1]
                                  for k in range(len(bad))])
            for method, x in {"degraded input": bad, "median 3x3": median3(bad), "bicubic down-up": up,
                              "restore (shipped model)": restored}.items():
                with torch.no_grad():
                    rows.append({"set": name, "degradation": kind, "method": method,
                                 "feature_distance": round((clf.features(x) - f_real).norm(dim=1).mean().item(), 3),
                                 "psnr_db": round((10 * torch.log10(4 / ((x - real) ** 2).mean())).item(), 2)})
    print("| set | degradation | method | feature distance (lower is better) | PSNR dB |\n|---|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['set']} | {r['degradation']} | {r['method']} | {r['feature_distance']} | {r['psnr_db']} |")
    wins = {}
    for kind in kinds:
        for name in {r["set"] for r in rows}:
            rs = [r for r in rows if r["degradation"] == kind and r["set"] == name]
            best_base = min(r["feature_distance"] for r in rs if r["method"] in ("median 3x3", "bicubic down-up"))
            mine = next(r["feature_distance"] for r in rs if r["method"].startswith("restore"))
            wins[f"{name} / {kind}"] = mine < best_base
    print("\nrestore beats the better baseline on the feature distance:",
          ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in wins.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"images_per_set": args.images, "model": str(args.model or "default"),
                                    "sr_strength": args.sr_strength, "rows": rows, "beats_baseline": wins},
                                   indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
