"""``openimagen bench``: latency, throughput and peak memory of a cascade, per stage and in total.

    openimagen bench --model DIR --samplers dpmpp_2m,ddim --steps 10,20 --batch-sizes 1,8 --repeats 3 --out bench.json

Prints a table and writes every number (and each timed call) to ``--out``. See openimagen.eval.speed and
docs/EVALUATION.md.
"""
from __future__ import annotations

import json
from pathlib import Path

from openimagen.cli.generate import CUDA_GRAPHS_HELP
from openimagen.cli.values import add_variant_flag, progress_bar
from openimagen.errors import InvalidArgumentError


def add_bench_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="measure speed and peak memory of a model",
        description="Time a cascade and each of its stages for every sampler, step count and batch size (medians "
                    "over repeats), record peak RSS and peak CUDA memory, print a table and write JSON.")
    p.add_argument("--model", default=None, help="model directory (default: the shipped default model)")
    add_variant_flag(p)
    p.add_argument("--samplers", default=None, help="comma-separated samplers, e.g. dpmpp_2m,ddim "
                                                    "(default: each stage's own)")
    p.add_argument("--steps", default=None, help="comma-separated step counts for every stage, e.g. 10,20 "
                                                 "(default: each stage's own)")
    p.add_argument("--batch-sizes", default="1,8", help="comma-separated images per call; 1 gives latency, larger "
                                                        "ones throughput (default 1,8)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per measurement; the median is reported (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls before the timed ones (default 1)")
    p.add_argument("--guidance", type=float, default=None, help="guidance weight for every stage (default: each stage's)")
    p.add_argument("--batch-invariant", action="store_true", help="bit-exact mode: text encoder and network image by "
                                                                  "image, as `generate --batch-invariant` (default: "
                                                                  "batched, as `generate` by default)")
    p.add_argument("--prompt", default="a red circle above a blue square", help="prompt of every image")
    p.add_argument("--seed", type=int, default=0, help="seed of the first image (default 0)")
    p.add_argument("--out", type=Path, default=Path("bench.json"), help="JSON output path (default bench.json)")
    p.add_argument("--device", default="cpu", help="torch device, cpu or cuda[:N] (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--onnx", type=Path, default=None, metavar="DIR",
                   help="time the ONNX Runtime path from DIR (openimagen export-onnx of this model)")
    p.add_argument("--compile", action="store_true",
                   help="time the torch.compile'd stages (compiled and warmed up first; minutes on a CPU)")
    p.add_argument("--cuda-graphs", action="store_true", help=CUDA_GRAPHS_HELP)
    p.add_argument("--dtype", default="float32",
                   help="network precision: float32, float16 or bfloat16 (the sampler state stays float32; "
                        "default float32)")
    p.add_argument("--fast", action="store_true",
                   help="time generate --fast's setup (ONNX Runtime, float32; built once into the cache)")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.set_defaults(func=run_bench)


def _settings(args):
    from openimagen.eval.speed import BenchSettings
    from openimagen.eval.sweep import parse_samplers, parse_steps

    return BenchSettings(
        samplers=(None,) if args.samplers is None else tuple(parse_samplers(args.samplers, "--samplers")),
        steps=(None,) if args.steps is None else tuple(parse_steps(args.steps, "--steps")),
        batch_sizes=tuple(parse_steps(args.batch_sizes, "--batch-sizes")), repeats=args.repeats,
        warmup=args.warmup, guidance=args.guidance, batch_invariant=args.batch_invariant, prompt=args.prompt,
        seed=args.seed)


def run_bench(args) -> int:
    import torch

    from openimagen.cli.generate import _check_device, check_dtype_flag, compile_mode
    from openimagen.eval.speed import bench_pipeline, table
    from openimagen.pipeline import Pipeline

    if args.repeats < 1:
        raise InvalidArgumentError(f"--repeats must be >= 1, got {args.repeats}")
    if args.warmup < 0:
        raise InvalidArgumentError(f"--warmup must be >= 0, got {args.warmup}")
    if args.threads is not None and args.threads < 1:
        raise InvalidArgumentError(f"--threads must be >= 1, got {args.threads}")
    settings = _settings(args).validate()
    from openimagen.pipeline.io import atomic_write, check_output_path

    check_output_path(args.out, "--out")
    device = _check_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if (args.onnx is not None) + args.compile + args.fast > 1:
        raise InvalidArgumentError("--onnx, --compile and --fast are different options; time one at a time")
    check_dtype_flag(args.dtype)
    mode = compile_mode(args.compile, args.cuda_graphs, device)
    if args.fast or args.onnx is not None:
        from openimagen.accel.onnx import check_cpu_float32

        check_cpu_float32("--fast" if args.fast else "--onnx", device, args.dtype)
    pipe = Pipeline.from_pretrained(args.model, device=device, dtype=getattr(torch, args.dtype), variant=args.variant)
    option = "eager"
    if args.onnx is not None:
        from openimagen.accel.onnx import use_onnx

        use_onnx(pipe, args.onnx, threads=args.threads)
        option = f"onnxruntime ({args.onnx})"
    elif args.fast:
        from openimagen.accel.fast import use_fast

        use_fast(pipe, threads=args.threads)
        option = "fast (onnxruntime, float32)"
    elif args.compile:
        from openimagen.accel.compile import compile_stages

        option = (f"torch.compile{' with CUDA graphs' if mode else ''} (warm-up "
                  f"{compile_stages(pipe, mode=mode):.0f} s)")
    total = len(settings.samplers) * len(settings.steps) * len(settings.batch_sizes)
    with progress_bar(args.no_progress, total, "bench", unit="config") as update:
        result = bench_pipeline(pipe, settings, progress=update)
    result.settings["model"] = str(args.model) if args.model is not None else "default"
    if args.variant is not None:
        result.settings["variant"] = args.variant
    result.settings["runtime"] = option
    result.settings["dtype"] = args.dtype
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(result.to_json(), indent=1) + "\n"))
    print(table(result))
    print(f"runtime {option}; medians over {settings.repeats} repeats after {settings.warmup} warm-up; "
          f"device {result.settings['device']}, "
          f"{result.settings['threads']} threads; peak RSS from {result.settings['memory_method']}; wrote {args.out}")
    return 0
