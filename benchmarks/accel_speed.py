"""What the acceleration options do to the shipped default model's speed on this CPU (issue 15), interleaved.

Per stage of the shipped cascade, one network evaluation F at batch 1 and 8 (the guided batch of 4 images is 8),
each option timed A B C A B C ... in the same run, reported as a ratio to eager PyTorch:
  eager          the stage's EfficientUNet, float32, NCHW
  channels_last  the same with weights and inputs in channels-last memory format
  onnxruntime    the stage exported by `openimagen export-onnx` (openimagen.accel.onnx), CPU execution provider
Then the whole 8-image demo (the README's prompts, shipped settings, batched) eager vs ONNX Runtime.

    .venv/bin/python benchmarks/accel_speed.py --threads 1          # about 3 minutes
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (RESULTS, command_line, interleaved, load_average, machine_info,  # noqa: E402
                    paired_speedup, start_run, summary, table, finish_run)

import torch  # noqa: E402

DEMO = ["a red circle above a blue square", "two green stars", "a big yellow triangle",
        "a blue square and a black circle", "grinning face", "red heart", "pizza", "rocket"]


def main() -> None:
    args, threads, rounds = start_run(__doc__, RESULTS / "accel_speed.json")
    from openimagen.accel.onnx import OnnxNet, example_inputs, export_onnx, use_onnx
    from openimagen.pipeline import Pipeline

    pipe = Pipeline.from_pretrained(watermark=None)
    L = pipe.config.max_length
    tmp = Path(tempfile.mkdtemp(prefix="oi-onnx-"))
    meta = export_onnx(pipe, tmp / "onnx")
    rows, results = [], {"command": command_line(), "machine": machine_info(), "threads": threads,
                         "load_before": load_average(), "stages": {}, "parity": meta["stages"]}
    for name, stage in zip(pipe.config.stages, pipe.stages):
        net = stage.denoiser.net
        cl = type(net)(stage.config.unet).eval()
        cl.load_state_dict(net.state_dict())
        cl = cl.to(memory_format=torch.channels_last)
        onnx = OnnxNet(tmp / "onnx" / f"{name}.onnx", meta["stages"][name]["inputs"], threads)
        for batch in (1, 8):
            inputs = example_inputs(stage, batch, L, torch.Generator().manual_seed(0))
            x, c, text, mask, drop, *rest = inputs
            extra = {"lowres": rest[0], "c_aug": rest[1]} if rest else {}
            xcl = x.contiguous(memory_format=torch.channels_last)
            low = {**extra, "lowres": extra["lowres"].contiguous(memory_format=torch.channels_last)} if extra else {}

            def eager():
                with torch.no_grad():
                    net(x, c, text, mask, text_drop=drop, **extra)

            def channels_last():
                with torch.no_grad():
                    cl(xcl, c, text, mask, text_drop=drop, **low)

            def ort():
                onnx(x, c, text, mask, text_drop=drop, **extra)

            per = 3
            times = interleaved({"eager": eager, "channels_last": channels_last, "onnxruntime": ort},
                                warmup=2, rounds=rounds, per_round=per, log=lambda *_: None)
            entry = {k: summary(v) for k, v in times.items()}
            for k in ("channels_last", "onnxruntime"):
                entry[k]["speedup_vs_eager"] = 1 / paired_speedup(times, "eager", k, per)
            results["stages"][f"{name} batch {batch}"] = entry
            rows.append([name, batch, f"{entry['eager']['median_s'] * 1e3:.1f}",
                         f"{entry['channels_last']['median_s'] * 1e3:.1f}",
                         f"{entry['channels_last']['speedup_vs_eager']:.2f}x",
                         f"{entry['onnxruntime']['median_s'] * 1e3:.1f}",
                         f"{entry['onnxruntime']['speedup_vs_eager']:.2f}x"])
    print(table(["stage", "batch", "eager ms", "channels_last ms", "ratio", "onnxruntime ms", "ratio"], rows))
    onnx_pipe = use_onnx(Pipeline.from_pretrained(watermark=None), tmp / "onnx", threads=threads)
    demo = interleaved({"eager": lambda: pipe(DEMO, seed=0, batch_invariant=False),
                        "onnxruntime": lambda: onnx_pipe(DEMO, seed=0, batch_invariant=False)},
                       warmup=1, rounds=max(2, rounds // 2), log=lambda *_: None)
    results["demo"] = {k: summary(v) for k, v in demo.items()}
    results["demo"]["onnxruntime"]["speedup_vs_eager"] = 1 / paired_speedup(demo, "eager", "onnxruntime", 1)
    a, b = pipe(DEMO, seed=0, batch_invariant=False).stages[-1], onnx_pipe(DEMO, seed=0, batch_invariant=False).stages[-1]
    results["demo"]["max_abs_difference"] = float((a - b).abs().max())
    print(table(["8-image demo", "eager s", "onnxruntime s", "ratio", "max |difference|"],
                [["shipped settings, batched", f"{results['demo']['eager']['median_s']:.2f}",
                  f"{results['demo']['onnxruntime']['median_s']:.2f}",
                  f"{results['demo']['onnxruntime']['speedup_vs_eager']:.2f}x",
                  f"{results['demo']['max_abs_difference']:.1e}"]]))
    finish_run(args.out, results)


if __name__ == "__main__":
    main()
