"""The progressive-distillation table (docs/EVALUATION.md) from runs/eval-progressive (configs/distill/
eval-progressive.sh): python configs/distill/table.py. Prints Markdown; reads only."""
import json
import sys
from pathlib import Path

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/eval-progressive")   # or: table.py runs/eval-students
# name: (what, network evaluations per image)
ROWS = {"teacher-dpmpp-32": ("teacher (shipped base), DPM-Solver++(2M) 32 steps, guidance 2", 64),
        "teacher-ddim-16": ("teacher, DDIM 16 steps, guidance 2", 32),
        "teacher-ddim-8": ("teacher, DDIM 8 steps, guidance 2", 16),
        "teacher-ddim-4": ("teacher, DDIM 4 steps, guidance 2", 8),
        "student8-ddim-8": ("8-step student (round 1), DDIM 8", 8),
        "student4-ddim-4": ("4-step student (round 2), DDIM 4", 4),
        "student4-ddim-2": ("4-step student, DDIM 2", 2),
        "student4-ddim-1": ("4-step student, DDIM 1", 1)}


def overall(path: Path) -> float:
    return json.loads((path / "results.json").read_text())["overall"]["overall"]


print("| sampling | NFE | shapes seen | shapes held-out | emoji FD (floor) | FD above floor vs the shipped setting | "
      "emoji agreement (real) |")
print("|---|---:|---:|---:|---:|---:|---:|")
ref = None
for name, (what, nfe) in ROWS.items():
    ev = OUT / name
    if not (ev / "emoji" / "results.json").is_file():
        print(f"| {what} | {nfe} | (not evaluated) |||||")
        continue
    emoji = json.loads((ev / "emoji" / "results.json").read_text())
    head, agree = emoji["headline"], emoji["metrics"]["agreement"]["subgroup"]
    above = head["frechet"] - head["frechet_floor"]
    ref = above if ref is None else ref
    print(f"| {what} | {nfe} | {overall(ev / 'shapes-seen'):.3f} | {overall(ev / 'shapes-heldout'):.3f} | "
          f"{head['frechet']:.2f} ({head['frechet_floor']:.2f}) | {above / ref - 1:+.0%} | "
          f"{agree['generated']:.2f} ({agree['real']:.2f}) |")
