"""The ``openimagen`` command. Each sub-command parses its flags and calls a library function that tests call too.

User errors (bad names, values, paths, checkpoints) print one line, ``error: ...``, and exit with code 2.
"""
from __future__ import annotations

import argparse
import sys

from openimagen.cli.values import run_command


def build_parser() -> argparse.ArgumentParser:
    from openimagen import __version__
    from openimagen.cli.accel import add_export_onnx_parser, add_prune_parser
    from openimagen.cli.bench import add_bench_parser
    from openimagen.cli.data import add_data_parser
    from openimagen.cli.edit import add_edit_parser
    from openimagen.cli.eval import add_eval_parser
    from openimagen.cli.generate import add_generate_parser
    from openimagen.cli.info import add_info_parser
    from openimagen.cli.serve import add_serve_parser
    from openimagen.cli.train import add_export_parser, add_train_parser
    from openimagen.cli.watermark import add_watermark_parser

    parser = argparse.ArgumentParser(prog="openimagen", description="Imagen-style cascaded text-to-image diffusion.")
    parser.add_argument("--version", action="version", version=f"openimagen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{generate,edit,serve,watermark,info,data,train,export,export-onnx,eval,bench}")
    add_generate_parser(sub)
    add_edit_parser(sub)
    add_serve_parser(sub)
    add_watermark_parser(sub)
    add_info_parser(sub)
    add_data_parser(sub)
    add_train_parser(sub)
    add_export_parser(sub)
    add_export_onnx_parser(sub)
    add_prune_parser(sub)
    add_eval_parser(sub)
    add_bench_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


def cli() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
