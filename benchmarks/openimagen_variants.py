"""What would make openimagen's training step faster on this CPU? Times variants of the same step, interleaved.

Variants of the benchmark's step (small-cpu, batch 32, 32x32, forward + backward + AdamW):
  baseline        as in train_throughput.py (NCHW, single-tensor AdamW)
  channels_last   model and images in channels-last memory format (oneDNN's native layout)
  foreach_adamw   AdamW(foreach=True)
  fused_adamw     AdamW(fused=True)
  compile         torch.compile(net) (inductor C++ code; minutes of compilation), only with --compile

    .venv-bench/bin/python benchmarks/openimagen_variants.py --threads 1
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (RESULTS, base_parser, command_line, interleaved, load_average, machine_info,  # noqa: E402
                    paired_speedup, setup_threads, summary, table, write_json)
import peers  # noqa: E402

import torch  # noqa: E402

BATCH = 32


def make_step(images, text, mask, channels_last=False, fused=False, foreach=None, compile=False, stage=None):
    """One training step of ``stage`` (default: a fresh small-cpu stage) on the fixed batch, as a closure."""
    from openimagen.train.step import stage_loss
    torch.manual_seed(0)
    stage = (stage if stage is not None else peers.openimagen_stage()).train()
    if channels_last:
        stage = stage.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    if compile:
        stage.denoiser.net = torch.compile(stage.denoiser.net)
    opt = torch.optim.AdamW(stage.parameters(), lr=1e-4, fused=fused or None, foreach=foreach)
    gen = torch.Generator().manual_seed(0)

    def step():
        loss = stage_loss(stage, images, text, mask, gen).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main() -> None:
    p = base_parser(__doc__.splitlines()[0], RESULTS / "openimagen_variants.json")
    p.add_argument("--compile", action="store_true", help="also time torch.compile(net) (compiles for minutes)")
    args = p.parse_args()
    cmd = command_line()
    print(f"$ {cmd}")
    threads = setup_threads(args.threads)
    load_before = load_average()
    torch.manual_seed(0)
    images = torch.rand(BATCH, 3, peers.IMAGE_SIZE, peers.IMAGE_SIZE) * 2 - 1
    text, mask = peers.text_batch(BATCH)
    steps = {"baseline": make_step(images, text, mask),
             "channels_last": make_step(images, text, mask, channels_last=True),
             "foreach_adamw": make_step(images, text, mask, foreach=True),
             "fused_adamw": make_step(images, text, mask, fused=True)}
    compile_s = None
    if args.compile:
        t0 = time.perf_counter()
        steps["compile"] = make_step(images, text, mask, compile=True)
        steps["compile"]()
        compile_s = time.perf_counter() - t0
        print(f"torch.compile: first step (compilation) {compile_s:.0f} s")
    warmup, rounds, per_round = (1, 1, 2) if args.quick else (2, 4, 2)
    rounds = args.rounds or rounds
    times = interleaved(steps, warmup=warmup, rounds=rounds, per_round=per_round)
    load_after = load_average()
    results = {}
    for name, ts in times.items():
        s = summary(ts)
        results[name] = {"step": s, "img_per_s": BATCH / s["median_s"],
                         "speedup_vs_baseline_paired": paired_speedup(times, name, "baseline", per_round)}
    print(f"\nopenimagen small-cpu training step variants, batch {BATCH}, {threads} thread(s); median of "
          f"{rounds * per_round}, interleaved")
    print(table(["variant", "step ms", "img/s", "speed-up vs baseline (paired)"],
                [[n, f"{r['step']['median_s'] * 1e3:.0f}", f"{r['img_per_s']:.1f}",
                  f"{r['speedup_vs_baseline_paired']:.2f}x"] for n, r in results.items()]))
    print(f"load before {load_before}, after {load_after}")
    write_json(args.out, {"benchmark": "openimagen_variants", "command": cmd, "quick": args.quick,
                          "machine": machine_info(), "load_before": load_before, "load_after": load_after,
                          "compile_seconds": compile_s, "results": results, "raw_step_seconds": times})


if __name__ == "__main__":
    main()
