"""The 8-image `make demo` call in the default batched mode and in bit-exact mode, side by side.

    .venv/bin/python benchmarks/demo_modes.py --threads 2 --repeats 2 --out benchmarks/results/demo_modes.json

Times ``Pipeline.from_pretrained()(DEMO_PROMPTS, seed=0, batch_invariant=mode)`` after one warm-up call, modes
alternating; then checks the batched mode's reproducibility promise (README "Reproducibility"): each image made
alone vs in the batch of 8, largest float and 8-bit differences. Prints a table, writes JSON.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from openimagen import Pipeline

DEMO_PROMPTS = ["a red circle above a blue square", "two green stars", "a big yellow triangle",
                "a blue square and a black circle", "grinning face", "red heart", "pizza", "rocket"]


def time_modes(pipe, repeats: int) -> tuple[dict, dict]:
    times, outs = {"batched": [], "bit_exact": []}, {}
    for _ in range(repeats):
        for name, exact in (("batched", False), ("bit_exact", True)):
            t = time.perf_counter()
            outs[name] = pipe(DEMO_PROMPTS, seed=0, batch_invariant=exact)
            times[name].append(time.perf_counter() - t)
    return times, outs


def alone_vs_batch(pipe, batched) -> list[dict]:
    rows = []
    for k, prompt in enumerate(DEMO_PROMPTS):
        alone = pipe([prompt], seed=k)
        a, b = (np.asarray(im).astype(int) for im in (alone.images[0], batched.images[k]))
        rows.append({"image": k, "max_float_diff": float((alone.stages[-1][0] - batched.stages[-1][k]).abs().max()),
                     "max_8bit_diff": int(np.abs(a - b).max()), "differing_values": int((a != b).sum())})
    return rows


def demo_args(doc: str, name: str, repeats: int) -> argparse.Namespace:
    """The flags of the scripts that time the ``make demo`` call (--threads, default 2; --repeats; --out, default
    benchmarks/results/NAME.json), parsed, with torch's threads set."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=repeats)
    ap.add_argument("--out", type=Path, default=Path(f"benchmarks/results/{name}.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    return args


def main() -> None:
    args = demo_args(__doc__, "demo_modes", repeats=2)
    pipe = Pipeline.from_pretrained()
    pipe(DEMO_PROMPTS[:2], seed=0, steps=2)                                   # warm-up
    times, outs = time_modes(pipe, args.repeats)
    rows = alone_vs_batch(pipe, outs["batched"])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"threads {args.threads}, {args.repeats} runs each, 8 images")
    print("| mode | runs (s) | median (s) |\n|---|---|---:|")
    for k, v in times.items():
        print(f"| {k} | {', '.join(f'{x:.2f}' for x in v)} | {med[k]:.2f} |")
    print(f"bit-exact / batched: {med['bit_exact'] / med['batched']:.2f}x")
    print(f"alone vs batch of 8 (batched mode): max float diff {max(r['max_float_diff'] for r in rows):.2e}, "
          f"max 8-bit diff {max(r['max_8bit_diff'] for r in rows)}, "
          f"images with any 8-bit difference {sum(r['differing_values'] > 0 for r in rows)} of {len(rows)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"threads": args.threads, "cpu": platform.processor() or platform.machine(),
                                    "torch": torch.__version__, "seconds": times, "median": med,
                                    "alone_vs_batch": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
