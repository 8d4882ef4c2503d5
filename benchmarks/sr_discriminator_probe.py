"""Can the adversarial SR objective's discriminator separate the SR stage's samples from real 64 px images at all,
with the stage frozen? (issue 13, point 5; docs/EVALUATION.md, "Why the SR stage loses to bicubic")

    .venv/bin/python benchmarks/sr_discriminator_probe.py [MODEL]

16 held-out shapes scenes + 16 emoji, downsampled to 32 px; fakes: bicubic upsampling (plain and back-projected onto
the low-res image), the stage's text-to-image sampling (16 steps from sr_strength 0.5), upscale's (low-res
consistency, from pure noise) and 2 DDIM steps with consistency; one spectral-norm PatchDiscriminator per fake, Adam
2e-4, 300 steps of 16 random pairs, then its hinge loss and real-minus-fake logit gap on all 32 (the images it
trained on: this measures whether D *can* tell them apart, not whether it generalises). One thread, seeded.
"""
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, "benchmarks")
from upscale_vs_bicubic import real_sets  # noqa: E402

from openimagen.diffusion.consistency import project_to_lowres  # noqa: E402
from openimagen.edit.inputs import resize, to_tensor  # noqa: E402
from openimagen.edit.upscale import upscale  # noqa: E402
from openimagen.pipeline import Pipeline  # noqa: E402
from openimagen.pipeline.io import write_json  # noqa: E402
from openimagen.train.adversarial import PatchDiscriminator  # noqa: E402


def probe(real: torch.Tensor, low: torch.Tensor, fake: torch.Tensor, steps: int = 300) -> dict:
    """Train a fresh discriminator on real vs ``fake`` (both (N, 3, 64, 64)); its hinge loss and logit gap after."""
    torch.manual_seed(0)
    disc = PatchDiscriminator(32, spectral=True)
    opt = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.0, 0.99))
    for _ in range(steps):
        idx = torch.randint(0, real.shape[0], (16,))
        loss = F.relu(1 - disc(real[idx], low[idx])).mean() + F.relu(1 + disc(fake[idx], low[idx])).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        d_real, d_fake = disc(real, low), disc(fake, low)
    return {"hinge": float(F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()),
            "gap": float(d_real.mean() - d_fake.mean())}


def main() -> None:
    torch.set_num_threads(1)
    real = torch.cat([to_tensor(v) for v in real_sets(16).values()])
    low = resize(real, 32)
    pipe = Pipeline.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else None, watermark=None)
    blank = [""] * low.shape[0]
    bicubic = F.interpolate(low, size=64, mode="bicubic", align_corners=False).clamp(-1, 1)
    fakes = {"bicubic": bicubic, "bicubic + back-projection": project_to_lowres(bicubic, low).clamp(-1, 1),
             "SR stage, text-to-image sampling (16 steps from sr_strength 0.5, no low-res consistency)":
                 upscale(pipe, low, blank, lowres_consistency=False).stages[-1],
             "SR stage, upscale's sampling (16 steps, low-res consistency)": upscale(pipe, low, blank).stages[-1],
             "SR stage, 2 DDIM steps, low-res consistency": upscale(pipe, low, blank, sampler="ddim",
                                                                    steps=2).stages[-1]}
    rows = {name: probe(real, low, fake) for name, fake in fakes.items()}
    print("| fake | hinge loss (2 = chance) | real-minus-fake logit gap |\n|---|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['hinge']:.3f} | {r['gap']:.3f} |")
    write_json(Path("benchmarks/results/sr_discriminator_probe.json"), rows)


if __name__ == "__main__":
    main()
