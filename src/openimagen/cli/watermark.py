"""``openimagen watermark detect FILE...``: does each image carry openimagen's invisible watermark?"""
from __future__ import annotations

import json
from pathlib import Path

from openimagen.cli.values import read_image


def add_watermark_parser(subparsers) -> None:
    p = subparsers.add_parser("watermark", help="detect openimagen's invisible watermark in images",
                              description="Tell, for each image, whether it carries the invisible watermark that "
                                          "openimagen puts on every generated image (docs/SERVING.md, Watermark).")
    sub = p.add_subparsers(dest="watermark_command", required=True, metavar="{detect}")
    d = sub.add_parser("detect", help="report whether each image carries the watermark",
                       description="Print one line per image: marked or not, with the detector's z-score "
                                   "(marked when z >= 4; an unmarked image's z is about standard normal).")
    d.add_argument("files", nargs="+", type=Path, help="image files (PNG, JPEG, ...)")
    d.add_argument("--json", action="store_true", help="print one JSON object per image instead")
    d.set_defaults(func=run_detect)


def run_detect(args) -> int:
    from openimagen.safety import Watermark

    wm = Watermark()
    images = [(path, read_image(path)) for path in args.files]     # every file readable before any output
    for path, image in images:
        d = wm.detect(image)
        if args.json:
            print(json.dumps({"file": str(path), "marked": d.present, "z": round(d.z, 2)}))
        else:
            print(f"{path}: {'marked' if d.present else 'not marked'} (z = {d.z:.1f})")
    return 0
