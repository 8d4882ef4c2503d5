"""GPU sampling speed (issue 15, point 5): openimagen against diffusers' IF pipeline at matched parameters, in
images per second at batch 1, 8 and 64, for each precision (float32, bfloat16, float16) and each way of running the
network: eager, ``torch.compile`` (``fullgraph=True``) and ``torch.compile(mode="reduce-overhead")`` (CUDA graphs:
each batch size captured once, then replayed, which removes the per-kernel launch cost that dominates small nets).

Workloads, each a whole sample of ``batch`` images from noise to images (text embeddings given: no text encoder,
whose cost is the same for every sampler setting):

* ``cascade``: openimagen's shipped default model as ``make demo`` runs it: the base stage (32 px, DPM-Solver++(2M),
  32 steps, guidance 2) then the SR stage (64 px, its 16 steps from ``sr_strength`` 0.5), batched
  (``batch_invariant=False``); the shipped weights, random text embeddings (they do not change the work).
* ``base``: the shipped base stage alone at the matched comparison's settings (benchmarks/sample_speed.py):
  DPM-Solver++(2M), 20 steps, guidance 4, dynamic thresholding. Its preset (``small-cpu``, 2.36M parameters) is the
  matched one of benchmarks/peers.py.
* ``diffusers``: diffusers' ``IFPipeline`` around the matched ``UNet2DConditionModel`` (2.45M parameters, random
  weights, IF's learned-variance output) with ``DPMSolverMultistepScheduler`` (DPM-Solver++ order 2, dynamic
  thresholding), 20 steps, guidance 4, prompt embeddings passed in, ``output_type="pt"``; compiled as diffusers'
  docs do it (``pipe.unet = torch.compile(pipe.unet, mode=..., fullgraph=True)``, static shapes). openimagen compiles
  as the product does (``openimagen.accel.compile.compile_network``: ``fullgraph=True, dynamic=True``).

Every cell is warmed up before it is timed (the compiler runs, CUDA graphs are captured): the warm-up's seconds
are the compile cost, recorded. Every cell records how far its images are from the float32 eager cell's of the
same workload and batch (largest and mean absolute difference, images in [-1, 1]): a compiled graph must make the
eager images to rounding, and the gap of bfloat16/float16 says what the precision costs. A cell that fails
records its error and the run goes on. The JSON is rewritten after every cell, so a run cut short by the device's
time limit still returns what it measured; ``--budget-s`` skips the cells that would start after that many seconds.
Cells run most-wanted first: float32 and bfloat16 eager, bfloat16 compiled and with CUDA graphs, then the rest.

On a GPU machine (docs/BENCHMARKS.md, "On a GPU"; ``make gpu-bench-wheels`` here first):
    python3 benchmarks/gpu_speed.py --out $OUT/gpu_speed.json
Smoke run on a CPU (its numbers are not for reporting):
    .venv-bench/bin/python benchmarks/gpu_speed.py --device cpu --quick
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, command_line, machine_info, table, write_json  # noqa: E402
import peers  # noqa: E402

import torch  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MODES = {"eager": None, "compile": "default", "cudagraphs": "reduce-overhead"}
WORKLOADS = ("cascade", "base", "diffusers")
MATCHED = dict(sampler="dpmpp_2m", steps=20, guidance=4.0, threshold="dynamic")
# most-wanted first: what a GPU session must bring back even if it is cut short
ORDER = [("eager", "fp32"), ("eager", "bf16"), ("compile", "bf16"), ("cudagraphs", "bf16"), ("eager", "fp16"),
         ("cudagraphs", "fp16"), ("compile", "fp32"), ("cudagraphs", "fp32"), ("compile", "fp16")]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def openimagen_runner(kind: str, device: torch.device, dtype: torch.dtype, mode):
    """``run(batch) -> images`` (B, 3, R, R) float32 for the shipped default model's ``cascade`` or ``base``."""
    from openimagen.accel.compile import compile_network
    from openimagen.diffusion import Cond
    from openimagen.pipeline import Stage
    from openimagen.pipeline.io import read_json
    from openimagen.pipeline.pipeline import DEFAULT_MODEL_DIR

    names = read_json(DEFAULT_MODEL_DIR / "pipeline.json")["stages"]
    names = names if kind == "cascade" else names[:1]
    stages = [Stage.load(DEFAULT_MODEL_DIR / n).to(device=device, dtype=dtype).eval() for n in names]
    if kind == "base":
        matched = peers.openimagen_stage().config.unet
        assert stages[0].config.unet == matched, "the shipped base is not the matched preset"
    if mode is not None:
        for st in stages:
            st.denoiser.net = compile_network(st.denoiser.net, mode=None if mode == "default" else mode)
    settings = ([st.config.sampling for st in stages] if kind == "cascade"
                else [replace(stages[0].config.sampling, **MATCHED)])

    def run(batch: int) -> torch.Tensor:
        text, mask = peers.text_batch(batch)
        cond = Cond(text.to(device), mask.to(device))
        gens = [torch.Generator().manual_seed(i) for i in range(batch)]
        x = None
        with torch.inference_mode():
            for st, sampling in zip(stages, settings):
                x = st.sample(cond, gens, sampling, lowres=x, batch_invariant=False)
        return x

    return run, {"stages": names, "settings": [asdict(s) for s in settings],
                 "parameters": sum(st.num_parameters for st in stages)}


def diffusers_runner(device: torch.device, dtype: torch.dtype, mode):
    """``run(batch) -> images``: IFPipeline around the matched U-Net (module docstring)."""
    torch.manual_seed(0)
    unet = peers.diffusers_unet(out_channels=6).eval()
    params = peers.count_params(unet)
    pipe = peers.if_pipeline(unet)
    pipe.to(device)
    pipe.unet.to(dtype)
    if mode is not None:
        pipe.unet = torch.compile(pipe.unet, fullgraph=True, mode=None if mode == "default" else mode)

    def run(batch: int) -> torch.Tensor:
        text, _ = peers.text_batch(batch)
        text = text.to(device, dtype)
        with torch.inference_mode():
            return pipe(prompt_embeds=text, negative_prompt_embeds=torch.zeros_like(text),
                        num_inference_steps=MATCHED["steps"], guidance_scale=MATCHED["guidance"], output_type="pt",
                        generator=torch.Generator(device).manual_seed(0)).images

    return run, {"pipeline": "diffusers.IFPipeline", "scheduler": "DPMSolverMultistepScheduler (dpmsolver++, 2)",
                 "steps": MATCHED["steps"], "guidance": MATCHED["guidance"], "parameters": params}


def time_cell(run, batch: int, device: torch.device, warmup: int, repeats: int) -> dict:
    """Warm ``run`` up (compile, capture), then time ``repeats`` calls: seconds and images per second."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        images = run(batch)
    _sync(device)
    warm_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        images = run(batch)
        _sync(device)
        times.append(time.perf_counter() - t)
    median = sorted(times)[len(times) // 2]
    return {"warmup_s": round(warm_s, 3), "times_s": [round(t, 5) for t in times], "median_s": round(median, 5),
            "images_per_s": round(batch / median, 2), "images": images.detach().float().cpu()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu for a smoke run")
    p.add_argument("--batches", default="1,8,64", help="comma-separated batch sizes (default 1,8,64)")
    p.add_argument("--dtypes", default="fp32,bf16,fp16", help="subset of fp32,bf16,fp16")
    p.add_argument("--modes", default="eager,compile,cudagraphs", help="subset of eager,compile,cudagraphs")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="subset of " + ",".join(WORKLOADS))
    p.add_argument("--repeats", type=int, default=None, help="timed calls per cell (default 5; --quick 1)")
    p.add_argument("--budget-s", type=float, default=480.0,
                   help="start no cell after this many seconds (default 480: a 10-minute device call keeps time "
                        "to return its files)")
    p.add_argument("--quick", action="store_true", help="smoke run: one timed call per cell, batch 1 and 2")
    p.add_argument("--out", type=Path, default=RESULTS / "gpu_speed.json", help="JSON result file")
    args = p.parse_args()
    print(f"$ {command_line()}")
    started = time.perf_counter()
    device = torch.device(args.device)
    batches = [1, 2] if args.quick and args.batches == "1,8,64" else [int(b) for b in args.batches.split(",")]
    repeats = args.repeats or (1 if args.quick else 5)
    wanted_modes, wanted_dtypes = args.modes.split(","), args.dtypes.split(",")
    workloads = args.workloads.split(",")
    for name, allowed in (("mode", MODES), ("dtype", DTYPES), ("workload", WORKLOADS)):
        bad = [v for v in {"mode": wanted_modes, "dtype": wanted_dtypes, "workload": workloads}[name]
               if v not in allowed]
        if bad:
            p.error(f"unknown {name} {bad[0]!r}; choose from {', '.join(allowed)}")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("no CUDA device here; run with --device cpu for a smoke run")
    torch.backends.cuda.matmul.allow_tf32 = False       # float32 means float32; bf16/fp16 are their own rows
    torch.backends.cudnn.allow_tf32 = False
    order = [(m, d) for m, d in ORDER if m in wanted_modes and d in wanted_dtypes]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    results = {"command": command_line(), "machine": machine_info(), "device": str(device), "gpu": gpu,
               "torch": torch.__version__, "batches": batches, "repeats": repeats, "cells": []}
    reference: dict = {}                                  # (workload, batch) -> float32 eager images
    rows = []
    for mode, dname in order:
        for workload in workloads:
            cell_head = {"workload": workload, "dtype": dname, "mode": mode}
            if time.perf_counter() - started > args.budget_s:
                results["cells"].append({**cell_head, "skipped": f"over the {args.budget_s:.0f} s budget"})
                continue
            try:
                if workload == "diffusers":
                    run, about = diffusers_runner(device, DTYPES[dname], MODES[mode])
                else:
                    run, about = openimagen_runner(workload, device, DTYPES[dname], MODES[mode])
            except Exception as e:                      # a peer that cannot load here: say so, go on
                results["cells"].append({**cell_head, "error": f"{type(e).__name__}: {e}"})
                print(f"{workload} {dname} {mode}: {type(e).__name__}: {e}")
                continue
            for batch in batches:
                if time.perf_counter() - started > args.budget_s:
                    results["cells"].append({**cell_head, "batch": batch,
                                             "skipped": f"over the {args.budget_s:.0f} s budget"})
                    continue
                try:
                    cell = time_cell(run, batch, device, warmup=3 if mode == "cudagraphs" else 2, repeats=repeats)
                except Exception as e:
                    traceback.print_exc()
                    results["cells"].append({**cell_head, "batch": batch, "error": f"{type(e).__name__}: {e}"})
                    continue
                images = cell.pop("images")
                key = (workload, batch)
                if (mode, dname) == ("eager", "fp32"):
                    reference[key] = images
                if key in reference:
                    diff = (images - reference[key]).abs()
                    cell["vs_fp32_eager"] = {"max_abs": round(float(diff.max()), 5),
                                             "mean_abs": round(float(diff.mean()), 6)}
                results["cells"].append({**cell_head, "batch": batch, **cell, "about": about})
                rows.append([workload, dname, mode, batch, f"{cell['median_s'] * 1e3:.1f}", cell["images_per_s"],
                             f"{cell['warmup_s']:.1f}",
                             cell.get("vs_fp32_eager", {}).get("max_abs", "")])
                print(f"{workload} {dname} {mode} batch {batch}: {cell['median_s'] * 1e3:.1f} ms, "
                      f"{cell['images_per_s']} images/s (warm-up {cell['warmup_s']:.1f} s)", flush=True)
                results["elapsed_s"] = round(time.perf_counter() - started, 1)
                write_json(args.out, results)
    results["ratios"] = ratios(results["cells"])
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    write_json(args.out, results)
    print(table(["workload", "dtype", "mode", "batch", "ms", "images/s", "warm-up s", "max |diff| vs fp32 eager"],
                rows))
    for r in results["ratios"]:
        print(f"openimagen base / diffusers, {r['dtype']} {r['mode']}, batch {r['batch']}: {r['speedup']:.2f}x")


def ratios(cells: list) -> list:
    """openimagen's matched base sample against diffusers', images/s, for every (dtype, mode, batch) both have."""
    done = {(c["workload"], c["dtype"], c["mode"], c["batch"]): c for c in cells if "images_per_s" in c}
    out = []
    for (w, d, m, b), c in done.items():
        peer = done.get(("diffusers", d, m, b))
        if w == "base" and peer is not None:
            out.append({"dtype": d, "mode": m, "batch": b,
                        "speedup": round(c["images_per_s"] / peer["images_per_s"], 3)})
    return out


if __name__ == "__main__":
    main()
