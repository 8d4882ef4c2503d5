"""``openimagen export-onnx``: each stage's network as an ONNX graph for ONNX Runtime (openimagen.accel.onnx)."""
from __future__ import annotations

from pathlib import Path

from openimagen.cli.values import add_variant_flag


def add_export_onnx_parser(subparsers) -> None:
    p = subparsers.add_parser("export-onnx", help="export each stage's network to ONNX (run with generate --onnx)",
                              description="Write one ONNX graph per stage (dynamic batch) and onnx.json with the "
                                          "parity measured against PyTorch; `openimagen generate --onnx DIR` then "
                                          "runs the cascade through ONNX Runtime on the CPU.")
    p.add_argument("model", nargs="?", default="default",
                   help="model directory (default: the shipped default model)")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it holds an earlier ONNX export")
    add_variant_flag(p)
    p.add_argument("--int8", action="store_true",
                   help="quantize the convolutions to static int8, calibrated by generating 14 images of real "
                        "prompts (about a minute; faster on the CPU, slightly different images: see "
                        "docs/BENCHMARKS.md)")
    p.set_defaults(func=run_export_onnx)


def run_export_onnx(args) -> int:
    from openimagen.accel.onnx import export_onnx
    from openimagen.pipeline import Pipeline
    from openimagen.pipeline.io import check_output_dir

    check_output_dir(args.out, "--out")
    pipe = Pipeline.from_pretrained(None if args.model == "default" else args.model, watermark=None,
                                    variant=args.variant)
    meta = export_onnx(pipe, args.out, overwrite=args.overwrite, int8=args.int8)
    parity = ", ".join(f"{name} {s['parity_max_abs']:.1e}" for name, s in meta["stages"].items())
    if args.int8:
        parity += "; int8 error on recorded real inputs, mean |F_int8 - F| / mean |F|: " + ", ".join(
            f"{name} {s['int8']['rel_error']:.3f}" for name, s in meta["stages"].items())
    model = ("" if args.model == "default" else f" --model {args.model}") + \
        ("" if args.variant is None else f" --variant {args.variant}")
    print(f"wrote {args.out} (max |ONNX - PyTorch| on random inputs: {parity}); try: openimagen generate "
          f"\"a prompt\"{model} --onnx {args.out}")
    return 0


def add_prune_parser(subparsers) -> None:
    p = subparsers.add_parser("prune", help="channel-prune a model's stages (then fine-tune them)",
                              description="Write a copy of MODEL whose ResBlocks keep FRACTION of their hidden "
                                          "channels (whole GroupNorm groups, the ones the next convolution weighs "
                                          "most; openimagen.accel.prune). Fine-tune the result with `openimagen "
                                          "train` (init: {model: DIR, stage: NAME}, unet overrides: "
                                          "{res_hidden_fraction: FRACTION}): see docs/TRAINING.md, \"Channel pruning\".")
    p.add_argument("model", nargs="?", default="default", help="model directory (default: the shipped default model)")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="model directory to write")
    p.add_argument("--fraction", type=float, required=True,
                   help="share of each ResBlock's hidden channels to keep, in (0, 1]; e.g. 0.5")
    p.add_argument("--stage", action="append", metavar="NAME",
                   help="stage to prune (repeatable; default: every stage), e.g. stage0_base")
    p.add_argument("--fp16", action="store_true", help="store the weights as float16 (half the size)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it holds an earlier model")
    p.set_defaults(func=run_prune)


def run_prune(args) -> int:
    from openimagen.accel.prune import prune_model
    from openimagen.nn import count_parameters
    from openimagen.pipeline.io import check_output_dir

    check_output_dir(args.out, "--out")
    model = None if args.model == "default" else args.model
    stages = prune_model(model, args.out, args.fraction, args.stage, fp16=args.fp16, overwrite=args.overwrite)
    sizes = ", ".join(f"{count_parameters(s.denoiser.net):,} parameters" for s in stages)
    print(f"wrote {args.out} (pruned stages: {sizes}); fine-tune it before use: docs/TRAINING.md, "
          f"\"Channel pruning\"")
    return 0
