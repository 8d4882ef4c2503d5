"""What int8 quantization does to the shipped default model's speed on this CPU (issue 15, point 3), interleaved.

Per stage of the shipped cascade, one network evaluation F at batch 1 and 16 (the guided batch of the 8-image
demo), each option timed A B C A B C ... in the same run, reported as a ratio to eager PyTorch float32:
  eager         the stage's EfficientUNet, float32
  ort_fp32      the stage exported by `openimagen export-onnx`, ONNX Runtime, CPU execution provider
  ort_int8      the same graph after `export-onnx --int8` (openimagen.accel.quantize: static int8 convolutions,
                calibrated on real prompts)
  pt2e_int8     only if torchao is installed (`pip install torchao`; not a dependency: importing it prints
                warnings in every command through peft): PyTorch's pt2e flow, X86InductorQuantizer, static int8,
                calibrated on the same recorded inputs, then torch.compile
with each option's error on recorded real inputs (mean |F - F_eager| / mean |F_eager|), then the whole 8-image
demo (README prompts, shipped settings, batched) through ONNX Runtime float32 vs int8 with the images' difference.
Quality of the int8 images is measured separately with `openimagen eval --onnx` (docs/EVALUATION.md).

    .venv/bin/python benchmarks/quantize_speed.py --threads 1          # about 5 minutes (10 with torchao)
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (RESULTS, command_line, interleaved, load_average, machine_info,  # noqa: E402
                    paired_speedup, start_run, summary, table, finish_run)

import torch  # noqa: E402

DEMO = ["a red circle above a blue square", "two green stars", "a big yellow triangle",
        "a blue square and a black circle", "grinning face", "red heart", "pizza", "rocket"]


def _pt2e(net, feeds, names):
    """torchao's pt2e static int8 of ``net`` calibrated on ``feeds``, compiled; None without torchao."""
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq
    except ImportError:
        return None
    from openimagen.accel.onnx import _Signature

    sig = _Signature(net).eval()
    args = tuple(torch.from_numpy(feeds[0][n]) for n in names)
    batch = torch.export.Dim("batch", min=1, max=64)
    m = torch.export.export(sig, args, dynamic_shapes=tuple({0: batch} for _ in args)).module()
    quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
    m = prepare_pt2e(m, quantizer)
    with torch.no_grad():
        for f in feeds:
            m(*(torch.from_numpy(f[n]) for n in names))
    m = convert_pt2e(m)
    compiled = torch.compile(m)

    def run(*a):
        with torch.no_grad():
            return compiled(*a)
    return run


def main() -> None:
    args, threads, rounds = start_run(__doc__, RESULTS / "quantize_speed.json")
    from openimagen.accel.onnx import OnnxNet, export_onnx, use_onnx
    from openimagen.accel.quantize import CALIBRATION_PROMPTS, record_inputs
    from openimagen.pipeline import Pipeline

    pipe = Pipeline.from_pretrained(watermark=None)
    tmp = Path(tempfile.mkdtemp(prefix="oi-quant-"))
    t = time.perf_counter()
    fp32 = export_onnx(pipe, tmp / "fp32")
    t_fp32 = time.perf_counter() - t
    t = time.perf_counter()
    int8 = export_onnx(pipe, tmp / "int8", int8=True)
    t_int8 = time.perf_counter() - t
    names = {n: fp32["stages"][n]["inputs"] for n in pipe.config.stages}
    feeds = record_inputs(pipe, names, DEMO, seed=1)       # other prompts than calibration: the check set
    results = {"command": command_line(), "machine": machine_info(), "threads": threads,
               "load_before": load_average(), "export_s": {"fp32": t_fp32, "int8_with_calibration": t_int8},
               "calibration_prompts": list(CALIBRATION_PROMPTS),
               "int8_export": {n: int8["stages"][n]["int8"] for n in pipe.config.stages}, "stages": {}}
    rows = []
    for name, stage in zip(pipe.config.stages, pipe.stages):
        net = stage.denoiser.net
        ort32 = OnnxNet(tmp / "fp32" / f"{name}.onnx", names[name], threads)
        ort8 = OnnxNet(tmp / "int8" / f"{name}.onnx", names[name], threads)
        t = time.perf_counter()
        pt2e = _pt2e(net, record_inputs(pipe, names, CALIBRATION_PROMPTS, seed=0)[name][1::2], names[name])
        if pt2e is not None:
            pt2e(*(torch.from_numpy(feeds[name][0][n]) for n in names[name]))
            results["stages"].setdefault(name, {})["pt2e_prepare_and_compile_s"] = time.perf_counter() - t
        check = feeds[name][::2]

        def as_torch(f):
            return [torch.from_numpy(f[n]) for n in names[name]]

        def call(fn, f):
            x, c, text, mask, drop, *rest = as_torch(f)
            extra = {"lowres": rest[0], "c_aug": rest[1]} if rest else {}
            with torch.no_grad():
                return fn(x, c, text, mask, text_drop=drop, **extra)

        options = {"eager": lambda f: call(net, f), "ort_fp32": lambda f: call(ort32, f),
                   "ort_int8": lambda f: call(ort8, f)}
        if pt2e is not None:
            options["pt2e_int8"] = lambda f: pt2e(*as_torch(f))
        ref = [call(net, f) for f in check]
        errors = {}
        for k, fn in options.items():
            err = sum(float((fn(f) - r).abs().mean()) for f, r in zip(check, ref))
            errors[k] = err / sum(float(r.abs().mean()) for r in ref)
        entry = results["stages"].setdefault(name, {})
        entry["rel_error_on_demo_inputs"] = errors
        for batch in (1, 16):
            f = {n: v[:batch] for n, v in feeds[name][len(feeds[name]) // 2].items()}
            per = 3
            times = interleaved({k: (lambda fn=fn: fn(f)) for k, fn in options.items()}, warmup=2, rounds=rounds,
                                per_round=per, log=lambda *_: None)
            e = {k: summary(v) for k, v in times.items()}
            for k in options:
                e[k]["speedup_vs_eager"] = 1 / paired_speedup(times, "eager", k, per) if k != "eager" else 1.0
            entry[f"batch {batch}"] = e
            rows.append([name, batch] + [f"{e[k]['median_s'] * 1e3:.1f} ({e[k]['speedup_vs_eager']:.2f}x)"
                                         for k in options] + [" / ".join(f"{errors[k]:.3f}" for k in options
                                                                         if k != "eager")])
    print(table(["stage", "batch"] + [f"{k} ms" for k in options] + ["rel. error (" + ", ".join(
        k for k in options if k != "eager") + ")"], rows))
    p32 = use_onnx(Pipeline.from_pretrained(watermark=None), tmp / "fp32", threads=threads)
    p8 = use_onnx(Pipeline.from_pretrained(watermark=None), tmp / "int8", threads=threads)
    demo = interleaved({"eager": lambda: pipe(DEMO, seed=0, batch_invariant=False),
                        "ort_fp32": lambda: p32(DEMO, seed=0, batch_invariant=False),
                        "ort_int8": lambda: p8(DEMO, seed=0, batch_invariant=False)},
                       warmup=1, rounds=max(2, rounds // 2), log=lambda *_: None)
    results["demo"] = {k: summary(v) for k, v in demo.items()}
    for k in ("ort_fp32", "ort_int8"):
        results["demo"][k]["speedup_vs_eager"] = 1 / paired_speedup(demo, "eager", k, 1)
    a = p32(DEMO, seed=0, batch_invariant=False).stages[-1]
    b = p8(DEMO, seed=0, batch_invariant=False).stages[-1]
    other = p32(DEMO, seed=1, batch_invariant=False).stages[-1]
    d = (a - b).abs() * 127.5                                      # [-1, 1] -> 0..255 levels
    results["demo"]["int8_vs_fp32_levels"] = {"mean": float(d.mean()), "max": float(d.max()),
                                              "other_seed_mean": float((a - other).abs().mean() * 127.5)}
    dm = results["demo"]
    levels = dm["int8_vs_fp32_levels"]
    cells = {"8-image demo": "shipped settings, batched", "eager s": f"{dm['eager']['median_s']:.2f}"}
    for key, label in [("ort_fp32", "ORT fp32 s"), ("ort_int8", "ORT int8 s")]:
        cells[label] = f"{dm[key]['median_s']:.2f} ({dm[key]['speedup_vs_eager']:.2f}x)"
    cells["int8 vs fp32: mean / max levels"] = f"{levels['mean']:.1f} / {levels['max']:.0f}"
    cells["another seed: mean levels"] = f"{levels['other_seed_mean']:.1f}"
    print(table(list(cells), [list(cells.values())]))
    finish_run(args.out, results)


if __name__ == "__main__":
    main()
