"""The default model against its `fast` variant (the distilled 4-step base student, same SR stage), side by side.

    .venv/bin/python benchmarks/fast_variant.py --threads 2 --repeats 3 --out benchmarks/results/fast_variant.json

Times the 8-image `make demo` call (batched, the default mode) and one image, each after a warm-up call, the two
models alternating within every round (so slow drift in the machine's load hits both alike), and reports the
medians, their ratio and each stage's share. Quality is in docs/EVALUATION.md ("The shipped default's students").
Prints a table, writes JSON.
"""
from __future__ import annotations

import platform
import statistics
import time

import torch

from demo_modes import DEMO_PROMPTS, demo_args  # the `make demo` prompts; benchmarks/ is on a script's path

from openimagen import Pipeline
from openimagen.pipeline.io import write_json


def main() -> None:
    args = demo_args(__doc__, "fast_variant", repeats=3)
    pipes = {"default": Pipeline.from_pretrained(), "fast": Pipeline.from_pretrained(variant="fast")}
    calls = {"8 images (make demo)": DEMO_PROMPTS, "1 image": DEMO_PROMPTS[:1]}
    rows = {}
    for call, prompts in calls.items():
        times = {name: [] for name in pipes}
        stages = {name: [] for name in pipes}
        for pipe in pipes.values():
            pipe(prompts, seed=0)                                          # warm-up
        for _ in range(args.repeats):
            for name, pipe in pipes.items():
                t = time.perf_counter()
                out = pipe(prompts, seed=0)
                times[name].append(time.perf_counter() - t)
                stages[name].append({k: v for k, v in out.timings.items() if k.startswith("stage")})
        med = {name: statistics.median(v) for name, v in times.items()}
        share = {name: {k: statistics.median(s[k] for s in stages[name]) for k in stages[name][0]} for name in pipes}
        rows[call] = {"seconds": times, "median_s": med, "speedup": med["default"] / med["fast"], "stages_s": share}
    print(f"threads {args.threads}, {args.repeats} alternating rounds, median seconds")
    print("| call | default | fast variant | speed-up | default: base / SR | fast: base / SR |\n|---|---:|---:|---:|---|---|")
    for call, r in rows.items():
        d, f = r["stages_s"]["default"], r["stages_s"]["fast"]
        print(f"| {call} | {r['median_s']['default']:.2f} | {r['median_s']['fast']:.2f} | {r['speedup']:.2f}x | "
              f"{d['stage0']:.2f} / {d['stage1']:.2f} | {f['stage0']:.2f} / {f['stage1']:.2f} |")
    write_json(args.out, {"threads": args.threads, "repeats": args.repeats, "cpu": platform.processor() or
                          platform.machine(), "torch": torch.__version__, "rows": rows})


if __name__ == "__main__":
    main()
