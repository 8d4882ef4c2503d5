"""The recipe comparison's table (docs/MODEL_CARD.md) from the runs and evaluations that configs/recipes/compare.sh
wrote: python configs/recipes/table.py [RECIPE ...]. Prints Markdown; reads only, writes nothing."""
import json
import sys
from pathlib import Path

import yaml

RECIPES = sys.argv[1:] or ["r1-mix", "r2-scenes", "r3-attn", "r4-batch64"]


def last_metrics(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return rows[-1]


print("| recipe | what changed | steps | images seen | shapes seen | shapes held-out | emoji FD (floor) | "
      "emoji agreement (real) | agreement / real |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for r in RECIPES:
    cfg_path, run, ev = Path(f"configs/recipes/{r}.yaml"), Path(f"runs/recipe-{r}"), Path(f"runs/recipe-{r}-eval")
    if not (ev / "emoji" / "results.json").is_file():
        print(f"| {r} | (not evaluated yet) |||||||")
        continue
    what = cfg_path.read_text().splitlines()[0].split(": ", 1)[-1].rstrip(".")
    batch = yaml.safe_load(cfg_path.read_text())["train"]["batch_size"]
    step = last_metrics(run)["step"]
    shapes = {s: json.loads((ev / f"shapes-{s}" / "results.json").read_text())["overall"]["overall"]
              for s in ("seen", "heldout")}
    emoji = json.loads((ev / "emoji" / "results.json").read_text())
    head, agree = emoji["headline"], emoji["metrics"]["agreement"]["subgroup"]
    print(f"| {r} | {what} | {step:,} | {step * batch:,} | {shapes['seen']:.3f} | {shapes['heldout']:.3f} | "
          f"{head['frechet']:.1f} ({head['frechet_floor']:.1f}) | {agree['generated']:.2f} ({agree['real']:.2f}) | "
          f"{agree['generated'] / agree['real']:.2f} |")
