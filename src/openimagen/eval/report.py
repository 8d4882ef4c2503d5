"""Write an evaluation's results: ``results.json`` (every number), ``report.md`` (the tables) and ``grid.png``
(sample images with their prompts and verdicts)."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

from openimagen.eval.prompts import CATEGORIES

TILE = 128            # grid tile side, px (images are upscaled with nearest neighbour to show their pixels)
CAPTION_LINES = 3
GRID_COLUMNS = 6


def write_results(result, out: Path) -> dict:
    """Write the three files; returns ``{"json": path, "markdown": path, "grid": path}``. A fidelity suite's
    result (emoji/folder) is written by :func:`~.fidelity_report.write_fidelity_results`."""
    from openimagen.eval.fidelity import FidelityResult

    if isinstance(result, FidelityResult):
        from openimagen.eval.fidelity_report import write_fidelity_results

        return write_fidelity_results(result, out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "report.md", "grid": out / "grid.png"}
    paths["json"].write_text(json.dumps(result.to_json(), indent=1) + "\n")
    paths["markdown"].write_text(markdown(result))
    make_grid(result.samples, out).save(paths["grid"])
    return paths


def _table(summaries: dict) -> list:
    names = list(summaries)
    lines = ["| category | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for c in CATEGORIES:
        cells = []
        for n in names:
            v = summaries[n]["categories"].get(c)
            cells.append(f"{v['accuracy']:.3f} ({v['correct']}/{v['images']})" if v else "-")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines.append("| **overall** (mean of categories) | " +
                 " | ".join(f"**{summaries[n]['overall']:.3f}**" for n in names) + " |")
    lines.append("| prompts / images | " + " | ".join(f"{summaries[n]['prompts']} / {summaries[n]['images']}"
                                                      for n in names) + " |")
    return lines


def markdown(result) -> str:
    s = result.settings
    summaries = dict(result.sets)
    if len(summaries) > 1:
        summaries["all"] = result.overall
    lines = [f"# openimagen eval: {result.suite} suite", ""]
    lines += [f"- {k}: {v}" for k, v in s.items() if k not in ("missing_ids",)]
    lines += ["", "## Text alignment (GenEval-style accuracy: share of images with every object, count, colour "
                  "and relation right)", ""] + _table(summaries)
    sp = result.speed
    if sp.get("generation_seconds"):
        lines += ["", "## Speed", "", f"- images: {sp['images']}, generation {sp['generation_seconds']:.2f} s, "
                  f"{sp['seconds_per_image']:.3f} s/image ({sp['images_per_second']:.2f} images/s)",
                  "- per image by stage: " + ", ".join(f"{k} {v:.3f} s" for k, v in
                                                       sp["stage_seconds_per_image"].items()),
                  f"- scoring: {sp['scoring_seconds_per_image'] * 1000:.1f} ms/image"]
    wrong = [x for x in result.samples if not x["correct"]][:10]
    if wrong:
        lines += ["", "## Some failures", ""] + [f"- `{x['id']}` #{x['k']} \"{x['prompt']}\": "
                                                  f"{'; '.join(x['reasons'])}" for x in wrong]
    return "\n".join(lines) + "\n"


def _pick(samples: list, limit: int) -> list:
    """The first image of prompts taken round-robin over categories, at most ``limit``."""
    firsts = [x for x in samples if x["k"] == min(y["k"] for y in samples if y["id"] == x["id"])]
    by_cat = [[x for x in firsts if x["category"] == c] for c in CATEGORIES]
    picked = []
    while len(picked) < min(limit, len(firsts)):
        for rows in by_cat:
            if rows and len(picked) < limit:
                picked.append(rows.pop(0))
    return picked


def make_grid(samples: list, root: Path, limit: int = 36):
    """Sample images, each upscaled to ``TILE`` px, with the prompt (green: correct, red: not) under it."""
    return tile_grid([(x["image"], ("ok " if x["correct"] else "x ") + x["prompt"], x["correct"])
                      for x in _pick(samples, limit)], root)


def tile_grid(tiles: list, root: Path):
    """``(image path relative to root, caption, ok)`` tiles in a grid of ``TILE`` px images, captions under
    them in green (ok True), red (False) or black (None)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    cols = min(GRID_COLUMNS, max(1, len(tiles)))
    rows = max(1, -(-len(tiles) // cols))
    line_h = 12
    cell_h = TILE + 4 + CAPTION_LINES * line_h
    grid = Image.new("RGB", (cols * TILE + (cols + 1) * 4, rows * cell_h + 4), "white")
    draw = ImageDraw.Draw(grid)
    for i, (image, text, ok) in enumerate(tiles):
        left, top = 4 + (i % cols) * (TILE + 4), 4 + (i // cols) * cell_h
        with Image.open(Path(root) / image) as im:
            grid.paste(im.convert("RGB").resize((TILE, TILE), Image.NEAREST), (left, top))
        colour = {True: (0, 120, 0), False: (190, 0, 0), None: (0, 0, 0)}[ok]
        for j, line in enumerate(textwrap.wrap(text, width=21)[:CAPTION_LINES]):
            draw.text((left, top + TILE + 2 + j * line_h), line, fill=colour, font=font)
    return grid
