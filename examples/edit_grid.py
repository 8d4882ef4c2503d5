"""Make the README's before/after grid of the editing modes with the shipped default model (CPU, ~20 s).

    .venv/bin/python examples/edit_grid.py [-o docs/images/edit-grid.png]

Rows: the input (a held-out shapes scene, 64 px), image-to-image at strength 0.3 and 0.7 toward another prompt,
inpainting of a rectangle, outpainting of an 8 px border, upscaling of the input shrunk to 32 px, and the input with
Gaussian noise (std 0.1 of the [0, 1] range) restored by ``restore(kind="denoise")``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from openimagen.data.shapes import make_scene
from openimagen.edit.inputs import to_tensor
from openimagen.pipeline import Pipeline, make_grid, to_pil


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/images/edit-grid.png"))
    args = ap.parse_args()
    pipe = Pipeline.from_pretrained()
    images = [make_scene(i, seed=21, split="heldout", size=64)[0].convert("RGB") for i in (0, 1, 2, 3)]
    rows = []
    for k, image in enumerate(images):
        masked = image.copy()
        ImageDraw.Draw(masked).rectangle((16, 16, 47, 47), outline=(255, 0, 255))
        rows += [image,
                 pipe.img2img(image, "a green star", strength=0.3, seed=k).images[0],
                 pipe.img2img(image, "a green star", strength=0.7, seed=k).images[0],
                 masked,
                 pipe.inpaint(image, (16, 16, 48, 48), "a yellow triangle", seed=k).images[0],
                 pipe.outpaint(image, "", border=8, seed=k).images[0],
                 pipe.upscale(image.resize((32, 32), Image.BILINEAR), "", aug_level=0.1, seed=k).images[0]]
        x = to_tensor(image)
        noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(k))).clamp(-1, 1)
        rows += [to_pil(noisy)[0], pipe.restore(noisy, "denoise", seed=k).images[0]]
    grid = make_grid(rows, cols=9)
    grid = grid.resize((grid.width * 2, grid.height * 2), Image.NEAREST)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
