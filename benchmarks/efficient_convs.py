"""Efficient convolutions and pruning (issue 15, point 4): parameters, FLOPs and CPU time of the base U-Net variants.

Variants of the shipped base stage's network (32 px, MiniLM-width text), all random-initialised (speed does not
depend on the weights):
  standard     preset small-cpu (the shipped base)
  separable    preset small-cpu-separable: every block's 3x3 conv depthwise-separable
  pruned-0.5   small-cpu with res_hidden_fraction 0.5: what `openimagen prune --fraction 0.5` makes of it

Timed, interleaved: the guided forward pass of one sampling step (batch 2B: conditional and unconditional halves)
at B = 1 and 8, and one training step (forward + backward + AdamW, batch 32). Quality at matched training compute is
measured by `openimagen eval` (docs/BENCHMARKS.md, "Efficient convolutions and pruning").

    .venv/bin/python benchmarks/efficient_convs.py --threads 1
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (RESULTS, command_line, count_flops, finish_run, interleaved, machine_info, paired_speedup,  # noqa: E402
                    start_run, summary, table)
import peers  # noqa: E402
from openimagen_variants import make_step  # noqa: E402

import torch  # noqa: E402

VARIANTS = {"standard": ("small-cpu", {}), "separable": ("small-cpu-separable", {}),
            "pruned-0.5": ("small-cpu", {"res_hidden_fraction": 0.5})}
TRAIN_BATCH = 32


def make_stage(preset: str, overrides: dict):
    from openimagen.nn import get_preset
    from openimagen.pipeline import Stage, StageConfig
    torch.manual_seed(0)
    return Stage(StageConfig(unet=get_preset(preset, **overrides), resolution=peers.IMAGE_SIZE))


def guided_forward(stage, batch: int):
    """One guided sampling step's network call: 2 * batch images (conditional and unconditional halves)."""
    net = stage.denoiser.net.eval()
    x = torch.randn(2 * batch, 3, peers.IMAGE_SIZE, peers.IMAGE_SIZE)
    text, mask = peers.text_batch(2 * batch)
    c_noise = torch.full((2 * batch,), 0.3)

    def run():
        with torch.no_grad():
            return net(x, c_noise, text, mask)
    return run


def train_step(stage):
    images = torch.rand(TRAIN_BATCH, 3, peers.IMAGE_SIZE, peers.IMAGE_SIZE) * 2 - 1
    return make_step(images, *peers.text_batch(TRAIN_BATCH), stage=stage)


def main() -> None:
    args, threads, rounds = start_run(__doc__, RESULTS / "efficient_convs.json", quick_rounds=1, full_rounds=5)
    stages = {name: make_stage(*spec) for name, spec in VARIANTS.items()}
    results = {"command": command_line(), "machine": machine_info(), "threads": threads, "variants": {}}
    for name, stage in stages.items():
        flops, _ = count_flops(guided_forward(stage, 1))
        results["variants"][name] = {"preset": VARIANTS[name][0], "overrides": VARIANTS[name][1],
                                     "parameters": stage.num_parameters, "mflop_per_image_forward": flops / 2e6}
    for batch in (1, 8):
        fns = {name: guided_forward(stage, batch) for name, stage in stages.items()}
        times = interleaved(fns, warmup=2, rounds=rounds, per_round=5)
        for name in stages:
            results["variants"][name][f"guided_step_b{batch}"] = {
                **summary(times[name]), "ms_per_image": summary(times[name])["median_s"] * 1e3 / batch,
                "speedup_vs_standard": paired_speedup(times, name, "standard", 5)}
    times = interleaved({name: train_step(stage) for name, stage in stages.items()}, warmup=1, rounds=rounds,
                        per_round=2)
    for name in stages:
        results["variants"][name]["train_step_b32"] = {
            **summary(times[name]), "img_per_s": TRAIN_BATCH / summary(times[name])["median_s"],
            "speedup_vs_standard": paired_speedup(times, name, "standard", 2)}
    rows = []
    for name, r in results["variants"].items():
        g1, g8, tr = r["guided_step_b1"], r["guided_step_b8"], r["train_step_b32"]
        rows.append([name, f"{r['parameters']:,}", f"{r['mflop_per_image_forward']:.0f}",
                     f"{g1['ms_per_image']:.1f} ({g1['speedup_vs_standard']:.2f}x)",
                     f"{g8['ms_per_image']:.2f} ({g8['speedup_vs_standard']:.2f}x)",
                     f"{tr['img_per_s']:.0f} ({tr['speedup_vs_standard']:.2f}x)"])
    print(f"\nbase U-Net variants at 32 px, {threads} thread(s); median of {rounds} interleaved rounds")
    print(table(["variant", "parameters", "MFLOP / image forward", "guided step ms / image, B=1",
                 "guided step ms / image, B=8", "training img/s (batch 32)"], rows))
    finish_run(args.out, results)


if __name__ == "__main__":
    main()
