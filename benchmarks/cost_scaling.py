"""How the shipped cascade's cost grows (issue 15): time per image against batch size for each stage, eager and
with the fast setup, and the super-resolution stage's time per image against its output resolution.

1. Batch size 1, 2, 4, ..., 64: the whole cascade and each stage alone (``openimagen.eval.speed.bench_config``,
   exactly what ``openimagen bench`` measures: ``Stage.sample`` at the stage's shipped sampler, steps and
   guidance, batched mode), eager PyTorch float32 and ``generate --fast``'s setup (ONNX Runtime, int8
   convolutions), interleaved per batch size (eager B, fast B, eager 2B, ...).
2. Output resolution 32, 64, 128, 256 of the SR stage (its low-res input at half the side, 16 steps, batch 1 and
   8, eager): the network is fully convolutional, so the same weights run at every size; the shipped stage was
   trained at 64 px, so the larger sizes measure cost only, not quality.

    .venv/bin/python benchmarks/cost_scaling.py --threads 1      # about 15 minutes on this 2-core CPU
"""
from __future__ import annotations

import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (RESULTS, command_line, load_average, machine_info, start_run, table, finish_run,  # noqa: E402
                    time_repeated)

import torch  # noqa: E402

BATCHES = (1, 2, 4, 8, 16, 32, 64)
SR_SIDES = (32, 64, 128, 256)
PROMPT = "a red circle above a blue square"


def _batch_sweep(eager, fast, batches, repeats, log) -> list[dict]:
    from openimagen.eval.speed import BenchSettings, PeakMemory, bench_config

    rows = []
    memory = PeakMemory(torch.device("cpu"))
    for b in batches:
        settings = BenchSettings(batch_sizes=(b,), repeats=repeats if b < 32 else max(1, repeats - 1), warmup=1,
                                 prompt=PROMPT).validate()
        for runtime, pipe in (("eager", eager), ("fast", fast)):
            for r in bench_config(pipe, None, None, b, settings, memory):
                rows.append({"runtime": runtime, **asdict(r)})
            log(f"  batch {b} {runtime}: " + ", ".join(f"{r['part']} {r['seconds_per_image'] * 1e3:.0f} ms/img"
                                                      for r in rows[-len(eager.stages) - 1:]))
    return rows


def _sr_resolution_sweep(pipe, sides, batches, repeats, log) -> list[dict]:
    from openimagen.samplers import generators_from_seeds

    stage = pipe.stages[-1]
    shipped = stage.config
    sampling = pipe.sampling_configs()[-1]
    rows = []
    try:
        for side in sides:
            stage.config = replace(shipped, resolution=side, lowres_resolution=side // 2)
            for b in batches:
                cond = pipe.encode([PROMPT] * b)
                lowres = torch.rand(b, 3, side // 2, side // 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
                fn = lambda: stage.sample(cond, generators_from_seeds(range(b)), sampling, lowres=lowres,
                                          batch_invariant=False)
                times = time_repeated(fn, warmup=1, repeats=repeats)
                s = statistics.median(times)
                rows.append({"side": side, "lowres_side": side // 2, "batch_size": b, "steps": sampling.steps,
                             "seconds": s, "seconds_per_image": s / b, "us_per_pixel": s / b / side ** 2 * 1e6,
                             "times": times})
                log(f"  SR {side // 2}->{side} batch {b}: {s / b * 1e3:.0f} ms/img")
    finally:
        stage.config = shipped
    return rows


def main() -> None:
    args, threads, rounds = start_run(__doc__, RESULTS / "cost_scaling.json", quick_rounds=1, full_rounds=3)
    from openimagen.accel.fast import use_fast
    from openimagen.pipeline import Pipeline

    eager = Pipeline.from_pretrained(watermark=None)
    fast = use_fast(Pipeline.from_pretrained(watermark=None), threads=threads)
    batches = (1, 8) if args.quick else BATCHES
    results = {"command": command_line(), "machine": machine_info(), "threads": threads,
               "load_before": load_average(), "prompt": PROMPT}
    t0 = time.perf_counter()
    results["batch_sweep"] = _batch_sweep(eager, fast, batches, rounds, print)
    results["sr_resolution_sweep"] = _sr_resolution_sweep(eager, (32, 64) if args.quick else SR_SIDES,
                                                          (1, 8), rounds, print)
    results["wall_s"] = time.perf_counter() - t0

    parts = ["stage0", "stage1", "cascade"]
    per = {(r["runtime"], r["part"], r["batch_size"]): r["seconds_per_image"] for r in results["batch_sweep"]}
    rows = []
    for b in batches:
        row = [b]
        for part in parts:
            e, f = per[("eager", part, b)], per[("fast", part, b)]
            row += [f"{e * 1e3:.0f}", f"{f * 1e3:.0f}"]
        row.append(f"{per[('eager', 'cascade', batches[0])] / per[('eager', 'cascade', b)]:.2f}x")
        row.append(f"{per[('fast', 'cascade', batches[0])] / per[('fast', 'cascade', b)]:.2f}x")
        rows.append(row)
    print("\nms per image by batch size (eager | fast), each stage alone and the whole cascade")
    print(table(["batch", "base eager", "base fast", "SR eager", "SR fast", "cascade eager", "cascade fast",
                 f"cascade eager vs batch {batches[0]}", f"cascade fast vs batch {batches[0]}"], rows))
    print("\nSR stage, eager, 16 steps: ms per image and microseconds per output pixel by output side")
    print(table(["side", "batch", "ms / image", "us / pixel"],
                [[r["side"], r["batch_size"], f"{r['seconds_per_image'] * 1e3:.0f}", f"{r['us_per_pixel']:.1f}"]
                 for r in results["sr_resolution_sweep"]]))
    finish_run(args.out, results)


if __name__ == "__main__":
    main()
