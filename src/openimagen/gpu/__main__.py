"""``python -m openimagen.gpu bundle OUT`` (CPU side) and ``python -m openimagen.gpu run BUNDLE --out DIR``
(GPU side); see :mod:`openimagen.gpu` and docs/TRAINING.md."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from openimagen.errors import OpenImagenError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m openimagen.gpu", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bundle", help="prepare the GPU bundle here (under 64 MiB with the repository)")
    b.add_argument("out", type=Path)
    b.add_argument("--emoji-dir", type=Path, default=None, help="a built 64 px emoji set to copy (default: build)")
    b.add_argument("--emoji", type=int, default=None, metavar="N", help="keep the first N emoji (default: all)")
    b.add_argument("--tiny", action="store_true", help="a few images, no wheels: for tests on a CPU")
    r = sub.add_parser("run", help="build the data, train both stages, export (on the GPU machine)")
    r.add_argument("bundle", type=Path)
    r.add_argument("--out", type=Path, required=True, help="where model.tar, gpu_log.json and the logs go")
    r.add_argument("--work", type=Path, default=None, help="data, caches and run folders (default: beside --out)")
    r.add_argument("--minutes", type=float, default=7.0, help="wall-clock training budget of each stage")
    r.add_argument("--total-minutes", type=float, default=None,
                   help="limit of the whole call: the training budget shrinks by the time data preparation took")
    r.add_argument("--tiny", action="store_true", help="two steps per stage: the same path in seconds on a CPU")
    args = p.parse_args(argv)
    try:
        if args.command == "bundle":
            from dataclasses import replace

            from openimagen.gpu.bundle import BundleSpec, make_bundle

            spec = BundleSpec.tiny() if args.tiny else BundleSpec()
            if args.emoji is not None:
                spec = replace(spec, emoji=args.emoji)
            meta = make_bundle(args.out, spec, emoji_dir=args.emoji_dir)
            print(f"bundle {args.out}: {meta['bytes'] / 2**20:.1f} MiB, {meta['captions']} captions, encoder error "
                  f"{meta['encoder']['check']['max_abs_error']:.2g} (fp16 cache rounding "
                  f"{meta['encoder']['check']['max_abs_fp16_rounding']:.2g})")
        else:
            if args.minutes <= 0 or (args.total_minutes is not None and args.total_minutes <= 0):
                p.error("--minutes and --total-minutes must be positive")
            from openimagen.gpu.run import run_bundle

            report = run_bundle(args.bundle, args.out, work=args.work, minutes=args.minutes,
                                total_minutes=args.total_minutes, tiny=args.tiny)
            if "error" in report:
                print(f"error: {report['error']}", file=sys.stderr)
                return 1
    except OpenImagenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
