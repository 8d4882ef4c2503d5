"""``openimagen train`` and ``openimagen export``.

    openimagen train CONFIG [--resume PATH] [--max-steps N] [--out RUN_DIR] [--print-config]
    openimagen export RUN_DIR [RUN_DIR ...] -o MODEL_DIR [--fp16]
    openimagen export LORA_RUN_DIR -o ADAPTER_DIR [--fp16]          # a LoRA run: the adapter alone
    torchrun --nproc_per_node 8 -m openimagen.train CONFIG          # same flags, data-parallel

Each only parses its flags and calls :func:`openimagen.train.trainer.train` or
:func:`openimagen.train.export.export_pipeline`; user errors are :class:`~openimagen.errors.OpenImagenError`
(the main CLI prints ``error: <message>`` and exits 2; so does ``python -m openimagen.train``).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from openimagen.cli.values import run_command
from openimagen.errors import ConfigError


def _train_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", type=Path, default=None,
                   help="run config, .yaml or .toml (see configs/); optional with --resume, which then reuses the "
                        "run's own config")
    p.add_argument("--resume", default=None, metavar="PATH",
                   help="continue from a checkpoint folder, or from the latest checkpoint of a run folder")
    p.add_argument("--max-steps", type=int, default=None, metavar="N", help="train until N optimiser steps in all "
                   "(overrides max_steps of the config)")
    p.add_argument("--out", type=Path, default=None, metavar="RUN_DIR",
                   help="run folder for checkpoints, logs and samples (default: the config's out, or the resumed "
                        "run's folder)")
    p.add_argument("--print-config", action="store_true",
                   help="print the fully resolved run config (defaults filled in, the U-Net preset expanded) as "
                        "YAML and exit without training")


def add_train_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train one cascade stage from a run config",
                              description="Train a base or super-resolution stage on captioned images. Launch "
                                          "with torchrun for several GPUs or nodes. Exit codes: 0 finished, 2 bad "
                                          "input or a non-finite loss (the last good checkpoint is kept), 3 stopped "
                                          "by SIGTERM/Ctrl-C after writing a checkpoint (resume with --resume).")
    _train_flags(p)
    p.set_defaults(func=run_train)


def add_export_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help="assemble trained stage runs into a model directory",
                              description="Write the EMA weights of each run's latest checkpoint as a pipeline "
                                          "directory that `openimagen generate --model` loads; for a LoRA run, "
                                          "the adapter alone (a folder that `generate --lora` loads).")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="run folders (or checkpoint folders, or stage folders of an exported model such as "
                        "MODEL/stage0_base), base stage first, then each super-resolution stage")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="MODEL_DIR", help="model directory to write")
    p.add_argument("--fp16", action="store_true", help="store the weights in float16 (half the size)")
    p.add_argument("--overwrite", action="store_true", help="replace MODEL_DIR if it exists")
    p.add_argument("--sampling", nargs="+", default=None, metavar="KEY=VALUE,...",
                   help="new sampling defaults per stage, in stage order, e.g. --sampling steps=32,guidance=2 "
                        "steps=16 (keys: sampler, steps, guidance, threshold, percentile, spacing, aug_level, "
                        "sr_strength, lowres_consistency; '' keeps a stage's)")
    p.set_defaults(func=run_export)


EXIT_INTERRUPTED = 3     # stopped by SIGTERM / Ctrl-C after writing its checkpoint: not finished, resumable


def run_train(args) -> int:
    from openimagen.train.checkpoint import Checkpoint
    from openimagen.train.config import RunConfig, load_config
    from openimagen.train.trainer import train

    if args.max_steps is not None and args.max_steps < 1:
        raise ConfigError(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.config is None:
        if args.resume is None:
            raise ConfigError("give a run CONFIG file, or --resume PATH to continue a run with its own config")
        cfg = RunConfig.from_dict(Checkpoint.read(args.resume).state["run_config"])
        if args.max_steps is not None:
            cfg = cfg.replace(max_steps=args.max_steps).validate()
    else:
        cfg = load_config(args.config, max_steps=args.max_steps)
    if args.print_config:
        print_config(cfg, args.out)
        return 0
    result = train(cfg, run_dir=args.out, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained to step {result.step}; run folder {result.run_dir}; last checkpoint {result.checkpoint}")
        if result.interrupted:
            print(f"interrupted at step {result.step} of {cfg.max_steps} (checkpoint written); resume with "
                  f"openimagen train --resume {result.run_dir}", file=sys.stderr)
    return EXIT_INTERRUPTED if result.interrupted else 0


def print_config(cfg, out=None) -> None:
    """The resolved run config as YAML: every key with its value, and the stage's expanded U-Net config."""
    import yaml

    data = {**cfg.to_dict(), **({"out": str(out)} if out is not None else {})}
    data["stage"]["unet"] = {"config": cfg.stage_config().unet.to_dict()}
    print(yaml.safe_dump(data, sort_keys=False, default_flow_style=None), end="")


def run_export(args) -> int:
    from openimagen.train.export import export_pipeline, parse_sampling, read_source
    from openimagen.train.lora import export_adapter, is_lora_run

    ckpts = [read_source(r) for r in args.runs]
    if any(is_lora_run(c) for c in ckpts):
        if len(ckpts) > 1 or args.sampling:
            raise ConfigError("a LoRA run exports alone, as an adapter folder: export it with one RUN_DIR and no "
                              "--sampling")
        out = export_adapter(args.runs[0], args.out, fp16=args.fp16, overwrite=args.overwrite)
        print(f"wrote LoRA adapter {out}; try: openimagen generate \"a prompt\" --lora {out}")
        return 0
    sampling = [parse_sampling(spec) for spec in args.sampling or []]
    out = export_pipeline(args.runs, args.out, fp16=args.fp16, overwrite=args.overwrite, sampling=sampling)
    print(f"wrote {out} ({len(args.runs)} stage(s)); try: openimagen generate \"a prompt\" --model {out}")
    return 0


def main(argv=None) -> int:
    """``python -m openimagen.train``: the train sub-command on its own (what torchrun launches)."""
    parser = argparse.ArgumentParser(prog="python -m openimagen.train",
                                     description="Train one cascade stage from a run config.")
    _train_flags(parser)
    return run_command(run_train, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
