"""Quality versus sampling steps: run an evaluation for every (sampler, steps) pair and plot its headline
numbers against the cost of making an image.

Cost is counted in network function evaluations (NFE) per image, summed over the cascade:

    NFE = sum over stages s of  evaluations(sampler, steps) * (2 if guidance_s != 1 else 1)

``evaluations`` (openimagen.samplers.registry) is the number of denoiser calls a sampler makes on a grid of
``steps`` steps (``steps`` for ddpm, ddim, euler and dpmpp_2m; ``2 steps - 1`` for heun, whose last step is an
Euler step). A classifier-free-guided call evaluates the U-Net on the conditional and the unconditional input
(one batched forward pass of twice the batch, counted as 2); guidance weight 1 skips the unconditional half.
The text encoder is not counted. So the default two-stage cascade with dpmpp_2m, 20 steps and guidance on both
stages costs 2 * 20 + 2 * 20 = 80 NFE per image.

Every run uses the same seeds, so two points differ only by sampler and step count (paired comparison).
The sweep takes ``run(sampler, steps) -> {metric: value}``, so it works for any suite.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from openimagen.errors import InvalidArgumentError, check_choice, is_int_at_least
from openimagen.samplers import SAMPLERS, evaluations

# How to read a headline metric: its axis label, and whether higher is better.
METRICS = {
    "alignment": ("text alignment (GenEval overall, higher is better)", True),
    "frechet": ("Fréchet distance to real images (lower is better)", False),
    "agreement": ("classifier agreement with the prompt (higher is better)", True),
}


@dataclass
class SweepPoint:
    sampler: str
    steps: int               # sampling steps of every stage
    nfe: int                 # network evaluations per image over the cascade (see module docstring)
    metrics: dict            # headline numbers of this run: metric name -> value
    seconds: float           # wall-clock time of the whole run (generation and scoring)


@dataclass
class SweepResult:
    points: list                                   # of SweepPoint, samplers outer, steps inner
    settings: dict = field(default_factory=dict)

    @property
    def metric_names(self) -> list:
        return list(dict.fromkeys(k for p in self.points for k in p.metrics))

    def to_json(self) -> dict:
        return {"nfe_definition": "U-Net forward passes per image summed over the cascade's stages; a "
                                  "classifier-free-guided evaluation counts 2",
                "settings": self.settings, "points": [asdict(p) for p in self.points]}


def nfe_per_image(configs: Sequence) -> int:
    """NFE of one image for per-stage ``SamplingConfig``s (e.g. ``Pipeline.sampling_configs(...)``)."""
    return sum(evaluations(c.sampler, c.steps) * (1 if c.guidance == 1 else 2) for c in configs)


def parse_steps(text: str, flag: str = "steps") -> list[int]:
    """``"4,8,16"`` -> ``[4, 8, 16]``; every entry a positive integer, no repeats."""
    values = []
    for item in str(text).split(","):
        item = item.strip()
        try:
            n = int(item)
        except ValueError:
            raise InvalidArgumentError(f"{flag} takes comma-separated positive integers, got {item!r}") from None
        if n < 1:
            raise InvalidArgumentError(f"{flag} entries must be >= 1, got {n}")
        values.append(n)
    return list(dict.fromkeys(values))


def parse_samplers(text: str, flag: str = "samplers") -> list[str]:
    """``"ddim,heun"`` -> ``["ddim", "heun"]``, each checked against the sampler registry."""
    names = [s.strip() for s in str(text).split(",")]
    if not all(names):
        raise InvalidArgumentError(f"{flag} takes comma-separated sampler names, got {text!r}")
    return list(dict.fromkeys(check_choice("sampler", n, SAMPLERS) for n in names))


def sweep(run: Callable[[str, int], dict], samplers: Sequence[str], steps: Sequence[int],
          nfe: Callable[[str, int], int], progress: Optional[Callable] = None) -> SweepResult:
    """Call ``run(sampler, steps)`` for every pair (samplers outer, steps inner) and collect its headline dict.

    ``nfe(sampler, steps)`` gives the cost of an image for the pair; ``progress(1)`` is called after each run."""
    for s in samplers:
        check_choice("sampler", s, SAMPLERS)
    for n in steps:
        if not is_int_at_least(n, 1):
            raise InvalidArgumentError(f"steps must be integers >= 1, got {n!r}")
    points = []
    for s in samplers:
        for n in steps:
            t0 = time.perf_counter()
            metrics = {k: float(v) for k, v in run(s, n).items()}
            points.append(SweepPoint(s, n, int(nfe(s, n)), metrics, time.perf_counter() - t0))
            if progress is not None:
                progress(1)
    return SweepResult(points, {"samplers": list(samplers), "steps": list(steps)})


def write_sweep(result: SweepResult, out: Path) -> dict:
    """Write ``sweep.json``, ``sweep.md`` and ``sweep.png``; returns ``{"json", "markdown", "plot"}`` paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "sweep.json", "markdown": out / "sweep.md", "plot": out / "sweep.png"}
    paths["json"].write_text(json.dumps(result.to_json(), indent=1, ensure_ascii=False) + "\n")
    paths["markdown"].write_text(markdown(result))
    plot(result, paths["plot"])
    return paths


def markdown(result: SweepResult) -> str:
    names = result.metric_names
    lines = ["# Quality versus sampling steps", ""]
    lines += [f"- {k}: {v}" for k, v in result.settings.items()]
    lines += ["- NFE: U-Net forward passes per image summed over the cascade's stages (a classifier-free-guided "
              "evaluation counts 2)", "",
              "| sampler | steps | NFE | " + " | ".join(names) + " | run seconds |",
              "|---|---:|---:|" + "---:|" * len(names) + "---:|"]
    for p in result.points:
        cells = [f"{p.metrics[m]:.3f}" if m in p.metrics else "-" for m in names]
        lines.append(f"| {p.sampler} | {p.steps} | {p.nfe} | " + " | ".join(cells) + f" | {p.seconds:.1f} |")
    steps = list(dict.fromkeys(p.steps for p in result.points))
    for m in names:
        lines += ["", f"## {METRICS.get(m, (m,))[0]}: sampler x steps", "",
                  "| sampler | " + " | ".join(f"{n} steps" for n in steps) + " |", "|---|" + "---:|" * len(steps)]
        for s in dict.fromkeys(p.sampler for p in result.points):
            row = {p.steps: p.metrics.get(m) for p in result.points if p.sampler == s}
            lines.append(f"| {s} | " + " | ".join("-" if row.get(n) is None else f"{row[n]:.3f}" for n in steps) + " |")
    return "\n".join(lines) + "\n"


def plot(result: SweepResult, path: Path) -> None:
    """One panel per headline metric: the metric against NFE (log scale), one line per sampler."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = result.metric_names or ["(no metric)"]
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.2), squeeze=False)
    for ax, m in zip(axes[0], names):
        for s in dict.fromkeys(p.sampler for p in result.points):
            pts = sorted((p.nfe, p.metrics[m], p.steps) for p in result.points if p.sampler == s and m in p.metrics)
            if pts:
                ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], marker="o", label=s)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("network evaluations per image (NFE, cascade total)")
        ax.set_ylabel(METRICS.get(m, (m,))[0])
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(f"{result.settings.get('suite', 'eval')}: quality versus sampling cost")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
