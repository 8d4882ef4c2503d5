"""Write a fidelity suite's results (:mod:`.fidelity`): ``results.json`` (every number), ``report.md`` and
``grid.png`` (generated samples with their prompts: green when the predicted subgroup is the prompt's)."""
from __future__ import annotations

import json
from pathlib import Path

from openimagen.eval.report import tile_grid

REAL_NOTE = ("the real images are the classifier's training images, so their agreement is an upper reference, "
             "not an independent accuracy")


def write_fidelity_results(result, out: Path) -> dict:
    """Write the three files; returns ``{"json": path, "markdown": path, "grid": path}``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "report.md", "grid": out / "grid.png"}
    paths["json"].write_text(json.dumps({**result.to_json(), "headline": result.headline()}, indent=1,
                                        ensure_ascii=False) + "\n", encoding="utf-8")
    paths["markdown"].write_text(fidelity_markdown(result), encoding="utf-8")
    tiles = [(x["image"], ("" if x["correct"] is None else "ok " if x["correct"] else "x ") + x["prompt"],
              x["correct"]) for x in _pick(result.samples)]
    tile_grid(tiles, out).save(paths["grid"])
    return paths


def _pick(samples: list, limit: int = 36) -> list:
    """The first image of up to ``limit`` prompts, spread evenly over the prompt list."""
    firsts = [x for x in samples if x["k"] == 0]
    step = max(1, len(firsts) / limit)
    return [firsts[int(i * step)] for i in range(min(limit, len(firsts)))]


def _fd_lines(name: str, v: dict) -> list:
    ratio = v["generated"] / v["real_floor"] if v["real_floor"] > 0 else float("inf")
    return [f"| {name} ({v['space']}, {v['feature_dim']}-d) | **{v['generated']:.4g}** | {v['real_floor']:.4g} | "
            f"{ratio:.2f} | {v['generated_images']} / {v['floor_images']} / {v['reference_images']} |"]


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def fidelity_markdown(result) -> str:
    s, m = result.settings, result.metrics
    lines = [f"# openimagen eval: {result.suite} suite", ""]
    lines += [f"- {k}: {v}" for k, v in s.items()]
    lines += ["", "## Fidelity: Fréchet distance to real images (lower is better)", "",
              "Generated images vs half A of the real images; the floor is a real sample from half B of the same "
              "size and subgroup mix vs the same half A, i.e. what a model that draws real images would get.", "",
              "| distance | generated | real-vs-real floor | generated / floor | images gen / floor / ref |",
              "|---|---:|---:|---:|---:|"]
    lines += _fd_lines("FD", m["frechet"])
    if m.get("fid"):
        lines += _fd_lines("FID", m["fid"])
    else:
        lines += ["", "Standard FID (Inception-v3) not measured: pass `--inception PATH` to "
                      "pt_inception-2015-12-05-6726825d.pth."]
    a = m.get("agreement")
    if a:
        lines += ["", "## Prompt agreement (higher is better)", "",
                  "Share of images whose predicted Unicode subgroup (group) is their prompt emoji's.", "",
                  "| level | generated | real images of the prompts | chance (most common class) | classes |",
                  "|---|---:|---:|---:|---:|"]
        for head, v in a.items():
            lines.append(f"| {head} | **{_pct(v['generated'])}** | {_pct(v['real'])} | {_pct(v['chance'])} | "
                         f"{v['prompt_classes']} of {v['classes']} |")
        lines += ["", f"Note: {REAL_NOTE}."]
    else:
        lines += ["", "Prompt agreement not measured: the data set has no labels.subgroup."]
    sp = result.speed
    if sp.get("generation_seconds"):
        lines += ["", "## Speed", "", f"- images: {sp['images']}, generation {sp['generation_seconds']:.2f} s, "
                  f"{sp['seconds_per_image']:.3f} s/image; embedding and scoring "
                  f"{sp['scoring_seconds_per_image'] * 1000:.1f} ms/image"]
    wrong = [x for x in result.samples if x["correct"] is False][:10]
    if wrong:
        lines += ["", "## Some disagreements", ""] + [
            f"- `{x['id']}` #{x['k']} \"{x['prompt']}\" ({x['subgroup']}): predicted {x['pred_subgroup']}"
            for x in wrong]
    return "\n".join(lines) + "\n"
