"""A tiny two-stage cascade trained on a few prompt/image pairs: the proof that text conditioning works
through both stages, and the model ``make demo`` uses until the default model ships.

    python -m openimagen.train.overfit --out runs/overfit-demo      # writes runs/overfit-demo/model
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from openimagen.diffusion.parameterization import ParamConfig
from openimagen.nn import get_preset
from openimagen.pipeline import Pipeline, PipelineConfig, SamplingConfig, Stage, StageConfig
from openimagen.text import load_text_encoder
from openimagen.train.step import stage_loss

PROMPTS = ("a red square", "a blue circle", "a green triangle")
HI, LO = 32, 16


def render(prompt: str, size: int = HI) -> torch.Tensor:
    """The target image of one of ``PROMPTS``: a coloured shape on white, (3, size, size) in [-1, 1]."""
    colour = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 60)}[prompt.split()[1]]
    img = Image.new("RGB", (size * 4, size * 4), "white")
    d, m = ImageDraw.Draw(img), size * 4
    box = (m * 0.2, m * 0.2, m * 0.8, m * 0.8)
    shape = prompt.split()[2]
    if shape == "square":
        d.rectangle(box, fill=colour)
    elif shape == "circle":
        d.ellipse(box, fill=colour)
    else:
        d.polygon([(m * 0.5, m * 0.15), (m * 0.85, m * 0.8), (m * 0.15, m * 0.8)], fill=colour)
    img = img.resize((size, size), Image.LANCZOS)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 127.5 - 1


def stage_configs() -> list[StageConfig]:
    # Measured on this recipe: dynamic thresholding (p = 0.995) rescales every x0 estimate of this small model,
    # whose mid-trajectory estimates overshoot [-1, 1] by ~1.4x, and leaves grain (MSE to target 0.17-0.19 vs
    # 0.03-0.04 with static clipping at guidance 1-3), so the overfit cascade samples with static clipping.
    fast = SamplingConfig(sampler="dpmpp_2m", steps=12, guidance=3.0, threshold="static", aug_level=0.1)
    base = StageConfig(unet=get_preset("tiny", image_size=LO), resolution=LO, param=ParamConfig("v"), sampling=fast)
    sr = StageConfig(unet=get_preset("tiny-sr", image_size=HI), resolution=HI, lowres_resolution=LO,
                     param=ParamConfig("v"), sampling=fast)
    return [base, sr]


def train(out: Path, steps: int = 300, batch: int = 24, lr: float = 2e-3, seed: int = 0, log=print) -> Pipeline:
    torch.manual_seed(seed)
    encoder = load_text_encoder("default", max_length=8)
    emb = encoder.encode(list(PROMPTS))
    targets = torch.stack([render(p) for p in PROMPTS])                         # (P, 3, 32, 32)
    stages = [Stage(c) for c in stage_configs()]
    g = torch.Generator().manual_seed(seed)
    for i, stage in enumerate(stages):
        res = stage.config.resolution
        images = targets if res == HI else torch.nn.functional.interpolate(
            targets, size=(res, res), mode="bilinear", antialias=True)
        opt = torch.optim.AdamW(stage.parameters(), lr=lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
        t0 = time.perf_counter()
        for step in range(steps):
            idx = torch.randint(len(PROMPTS), (batch,), generator=g)
            loss = stage_loss(stage, images[idx], emb.tokens[idx], emb.mask[idx], g, text_drop_prob=0.1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 100 == 0 or step == steps - 1:
                log(f"stage {i} ({res}px) step {step:4d} loss {loss.item():.4f} ({time.perf_counter() - t0:.1f}s)")
        stage.eval()
    cfg = PipelineConfig(stages=("stage0_base", "stage1_sr"), text_encoder="default", max_length=8,
                         description="tiny overfit cascade: " + ", ".join(PROMPTS))
    pipe = Pipeline(encoder, stages, cfg)
    pipe.save_pretrained(out)
    log(f"saved {out}")
    return pipe


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/overfit-demo"), help="run folder; the model goes to OUT/model")
    ap.add_argument("--steps", type=int, default=300, help="training steps per stage")
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    args = ap.parse_args(argv)
    train(args.out / "model", steps=args.steps, seed=args.seed)


if __name__ == "__main__":
    main()
