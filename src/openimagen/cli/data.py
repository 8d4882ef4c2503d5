"""``openimagen data``: build the built-in data sets and check a user's data set.

    openimagen data emoji OUT [--size 64]
    openimagen data shapes OUT --count N [--seed 0] [--size 64] [--split train|heldout|all]
    openimagen data openclipart OUT [--size 64] [--limit N]
    openimagen data mix OUT SOURCE[:REPEAT] ...
    openimagen data check PATH [--size 64] [--resize center_crop|pad] [--report report.json]

Each sub-command only parses its flags and calls the library function in
:mod:`openimagen.data`; user errors are raised as :class:`~openimagen.errors.OpenImagenError`
(the main CLI prints ``error: <message>`` and exits 2). ``python -m openimagen.cli.data``
runs this file on its own with the same behaviour.
"""
from __future__ import annotations

import argparse
import sys
import time

from openimagen.cli.values import run_command


def _common_build_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", metavar="OUT", help="output folder (created; an earlier build there is replaced)")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (default: 64)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: number of CPUs, at most 2); the output does not depend on it")


def add_data_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``data`` with its sub-commands to ``subparsers``; each sets ``func(args) -> int``."""
    p = subparsers.add_parser("data", help="build the built-in data sets or check a data set",
                              description="Build the built-in data sets (emoji, shapes, openclipart) or "
                                          "check a folder / manifest / WebDataset.")
    sub = p.add_subparsers(dest="data_command", metavar="{emoji,shapes,openclipart,mix,check}", required=True)

    e = sub.add_parser("emoji", help="render every Noto Color Emoji with its CLDR name and group labels")
    _common_build_flags(e)
    e.add_argument("--limit", type=int, default=None, help="only the first N emoji in CLDR order (for a quick look)")
    e.set_defaults(func=_emoji)

    s = sub.add_parser("shapes", help="procedural coloured-shape scenes with ground truth and a held-out split")
    _common_build_flags(s)
    s.add_argument("--count", type=int, required=True, help="number of scenes to write")
    s.add_argument("--seed", type=int, default=0, help="random seed; same seed and flags give identical files")
    s.add_argument("--split", default="train", help="train (no held-out combinations), heldout (only scenes "
                                                    "with one) or all (default: train)")
    s.set_defaults(func=_shapes)

    o = sub.add_parser("openclipart", help="Debian's openclipart-png clip art, captioned from path and title")
    _common_build_flags(o)
    o.add_argument("--limit", type=int, default=None, help="only N evenly spaced images (default: all, ~8000)")
    o.add_argument("--min-size", type=int, default=16, help="skip images whose shorter side is below this")
    o.set_defaults(func=_openclipart)

    m = sub.add_parser("mix", help="mix built data sets into one manifest, each repeated N times (SOURCE:N)")
    m.add_argument("out", metavar="OUT", help="output folder for manifest.jsonl and info.json (images are not copied)")
    m.add_argument("sources", metavar="SOURCE[:REPEAT]", nargs="+",
                   help="a built data set folder (or .jsonl manifest), optionally with a repeat count")
    m.set_defaults(func=_mix)

    c = sub.add_parser("check", help="open a data set and report usable and skipped images")
    c.add_argument("path", metavar="PATH", help="folder, .jsonl/.csv manifest, .tar shard or brace pattern of shards")
    c.add_argument("--size", type=int, default=64, help="preprocessing size used for the check (default: 64)")
    c.add_argument("--resize", default="center_crop", help="resize policy: center_crop or pad (default: center_crop)")
    c.add_argument("--min-size", type=int, default=0, help="skip images whose shorter side is below this")
    c.add_argument("--report", default=None, metavar="FILE", help="also write the skip report as JSON to FILE")
    c.set_defaults(func=_check)
    return p


def _done(what: str, result, t0: float) -> int:
    print(f"{what}: {result} in {time.perf_counter() - t0:.1f} s")
    return 0


def _emoji(args) -> int:
    from openimagen.data import build_emoji

    t0 = time.perf_counter()
    return _done("emoji", build_emoji(args.out, args.size, workers=args.workers, limit=args.limit), t0)


def _shapes(args) -> int:
    from openimagen.data import build_shapes

    t0 = time.perf_counter()
    return _done("shapes", build_shapes(args.out, args.count, args.seed, args.size, split=args.split,
                                        workers=args.workers), t0)


def _openclipart(args) -> int:
    from openimagen.data import build_openclipart

    t0 = time.perf_counter()
    result = build_openclipart(args.out, args.size, limit=args.limit, min_size=args.min_size, workers=args.workers)
    return _done("openclipart", result, t0)


def _mix(args) -> int:
    from openimagen.data.mix import mix_datasets

    info = mix_datasets(args.out, args.sources)
    parts = ", ".join(f"{k}: {v['rows']} x {v['repeat']}" for k, v in info["counts"].items())
    print(f"mix: {info['total']} rows ({parts}) -> {args.out}/manifest.jsonl")
    return 0


def _check(args) -> int:
    from openimagen.data import WebDatasetStream, open_dataset

    ds = open_dataset(args.path, size=args.size, resize=args.resize, min_size=args.min_size)
    report = ds.check() if isinstance(ds, WebDatasetStream) else ds.report
    print(f"{args.path}: {ds.format} data set, {report.summary()}")
    for item in report.skipped[:10]:
        print(f"  skipped {item['key']}: {item['reason']}")
    if len(report.skipped) > 10:
        print(f"  ... and {len(report.skipped) - 10} more")
    if args.report:
        print(f"report: {report.write(args.report)}")
    return 0


def main(argv=None) -> int:
    """Stand-alone entry point: ``python -m openimagen.cli.data {emoji,shapes,openclipart,check} ...``."""
    parser = argparse.ArgumentParser(prog="openimagen")
    add_data_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", *(sys.argv[1:] if argv is None else argv)])
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
