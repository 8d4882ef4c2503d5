"""The default model's setups side by side: shipped settings, half the steps, `--fast` (float32 ONNX Runtime), both,
the int8 ONNX graphs, the distilled `fast` variant.

    .venv/bin/python benchmarks/fast_setups.py --threads 2 --repeats 3 --out benchmarks/results/fast_setups.json

Times the 8-image `make demo` call (batched, the default mode) and one image for each setup, after a warm-up call,
the setups alternating within every round (so slow drift in the machine's load hits all alike), and reports the
medians and each one's speed-up over the shipped settings. "16 steps" is `generate --steps 16`: DPM-Solver++(2M)
16 steps for the base stage (32 guided network passes instead of 64), the SR stage at its own 16. The ONNX exports
are built into the cache first (once per model; not timed). Quality of each setup is in docs/EVALUATION.md ("The
fastest setup within 10%", "Quantization" and "Trajectory distillation"). Prints a table, writes JSON.
"""
from __future__ import annotations

import platform
import statistics
import time

import torch

from demo_modes import DEMO_PROMPTS, demo_args  # the `make demo` prompts; benchmarks/ is on a script's path

from openimagen import Pipeline
from openimagen.pipeline.io import write_json


def setups(threads: int) -> dict:
    """name -> (pipeline, keyword settings of each call); a setup that only changes the steps reuses its pipeline."""
    from openimagen.accel.fast import use_fast

    shipped = Pipeline.from_pretrained()
    fast = use_fast(Pipeline.from_pretrained(), threads=threads, quiet=False)
    int8 = use_fast(Pipeline.from_pretrained(), int8=True, threads=threads, quiet=False)
    return {"shipped (32 base steps)": (shipped, {}),
            "16 steps": (shipped, {"steps": 16}),
            "--fast": (fast, {}),
            "--fast, 16 steps": (fast, {"steps": 16}),
            "int8 ONNX": (int8, {}),
            "variant fast (4-step student)": (Pipeline.from_pretrained(variant="fast"), {})}


def main() -> None:
    args = demo_args(__doc__, "fast_setups", repeats=3)
    runs = setups(args.threads)
    calls = {"8 images (make demo)": DEMO_PROMPTS, "1 image": DEMO_PROMPTS[:1]}
    rows = {}
    for call, prompts in calls.items():
        times = {name: [] for name in runs}
        for pipe, kw in runs.values():
            pipe(prompts, seed=0, **kw)                                    # warm-up
        for _ in range(args.repeats):
            for name, (pipe, kw) in runs.items():
                t = time.perf_counter()
                pipe(prompts, seed=0, **kw)
                times[name].append(time.perf_counter() - t)
        med = {name: statistics.median(v) for name, v in times.items()}
        base = med["shipped (32 base steps)"]
        rows[call] = {name: {"seconds": times[name], "median_s": med[name], "speedup": base / med[name]}
                      for name in runs}
    names = list(runs)
    print(f"threads {args.threads}, {args.repeats} alternating rounds, median seconds (speed-up over shipped)")
    print("| call | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names))
    for call, r in rows.items():
        print(f"| {call} | " + " | ".join(f"{r[n]['median_s']:.2f} ({r[n]['speedup']:.2f}x)" for n in names) + " |")
    write_json(args.out, {"threads": args.threads, "repeats": args.repeats, "cpu": platform.processor() or
                          platform.machine(), "torch": torch.__version__, "rows": rows})


if __name__ == "__main__":
    main()
