"""Speed and memory of a cascade, per stage and for the whole: latency of one call, images per second, and the
peak memory while it runs, for each sampler, step count and batch size.

A *part* is one stage alone (``stage0``, ``stage1``, ...: ``Stage.sample`` exactly as ``Pipeline.__call__`` runs
it, the text already encoded and, for a super-resolution stage, the low-res input taken from the previous stage's
output of the cascade measurement) or the whole ``cascade`` (``Pipeline.__call__``: text encoding, every stage,
conversion to PIL images). Every repeat uses the same prompts and seeds. Numbers are medians over ``repeats``
timed calls, after ``warmup`` untimed ones.

Memory: peak resident set size (RSS) of the process during the timed calls (so it includes every loaded
weight), and on CUDA the peak of ``torch.cuda.max_memory_allocated`` (tensors only, not the allocator's cache).
On Linux the RSS peak is reset before each measurement by writing ``5`` to ``/proc/self/clear_refs`` and read
from ``VmHWM`` in ``/proc/self/status``; where that is not allowed it falls back to ``getrusage``'s
``ru_maxrss``, the peak over the process's whole life (so later rows can only grow); ``memory_method`` says
which was used.
"""
from __future__ import annotations

import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from openimagen.errors import InvalidArgumentError, check_choice, is_int_at_least
from openimagen.eval.sweep import nfe_per_image
from openimagen.samplers import SAMPLERS, generators_from_seeds

MIB = 1024 * 1024
CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")


@dataclass
class BenchSettings:
    samplers: tuple = (None,)           # sampler for every stage; None: each stage's default
    steps: tuple = (None,)              # steps for every stage; None: each stage's default
    batch_sizes: tuple = (1, 8)         # images per call; batch 1 gives latency, larger ones throughput
    repeats: int = 3                    # timed calls per measurement (the median is reported)
    warmup: int = 1                     # untimed calls before them
    guidance: Optional[float] = None    # guidance weight for every stage; None: each stage's default
    batch_invariant: bool = False       # True: bit-exact mode, the network runs image by image (generate --batch-invariant)
    prompt: str = "a red circle above a blue square"
    seed: int = 0

    def validate(self) -> "BenchSettings":
        for s in self.samplers:
            if s is not None:
                check_choice("sampler", s, SAMPLERS)
        for name, values in (("steps", self.steps), ("batch sizes", self.batch_sizes)):
            for v in values:
                if v is not None and not is_int_at_least(v, 1):
                    raise InvalidArgumentError(f"{name} must be integers >= 1, got {v!r}")
        if not self.samplers or not self.steps or not self.batch_sizes:
            raise InvalidArgumentError("give at least one sampler, step count and batch size")
        if not is_int_at_least(self.repeats, 1):
            raise InvalidArgumentError(f"repeats must be an integer >= 1, got {self.repeats!r}")
        if not is_int_at_least(self.warmup, 0):
            raise InvalidArgumentError(f"warmup must be an integer >= 0, got {self.warmup!r}")
        if self.guidance is not None and not self.guidance >= 0:
            raise InvalidArgumentError(f"guidance must be >= 0, got {self.guidance!r}")
        return self


@dataclass
class BenchRow:
    sampler: str                  # sampler of every stage ("default": each stage's own, see stage_samplers)
    steps: Optional[int]          # steps of every stage (None: each stage's own, see stage_steps)
    part: str                     # "stage0", "stage1", ... or "cascade"
    resolution: int               # output side of the part, px
    batch_size: int
    nfe: int                      # U-Net forward passes per image of this part (guided evaluations count 2)
    seconds: float                # median wall-clock seconds of one call
    seconds_per_image: float
    images_per_second: float
    peak_rss_mib: float           # peak resident memory of the process during the timed calls
    peak_gpu_mib: Optional[float]  # peak torch.cuda.max_memory_allocated (None on CPU)
    stage_samplers: list = field(default_factory=list)
    stage_steps: list = field(default_factory=list)
    times: list = field(default_factory=list)     # seconds of every timed call


@dataclass
class BenchResult:
    settings: dict
    rows: list                     # of BenchRow

    def to_json(self) -> dict:
        return {"settings": self.settings, "rows": [asdict(r) for r in self.rows]}


class PeakMemory:
    """Peak RSS (and CUDA memory) between :meth:`reset` and :meth:`read`."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.method = "VmHWM" if self._clear_refs() else "ru_maxrss"

    @staticmethod
    def _clear_refs() -> bool:
        try:
            CLEAR_REFS.write_text("5")
            return "VmHWM" in STATUS.read_text()
        except OSError:
            return False

    def reset(self) -> None:
        if self.method == "VmHWM":
            self._clear_refs()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def read(self) -> tuple[float, Optional[float]]:
        """(peak RSS MiB, peak CUDA MiB or None)."""
        if self.method == "VmHWM":
            line = next(l for l in STATUS.read_text().splitlines() if l.startswith("VmHWM:"))
            rss = int(line.split()[1]) * 1024 / MIB                   # the kernel reports kB
        else:
            unit = 1 if sys.platform == "darwin" else 1024           # bytes on macOS, KiB on Linux
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit / MIB
        gpu = torch.cuda.max_memory_allocated(self.device) / MIB if self.device.type == "cuda" else None
        return rss, gpu


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable, repeats: int, warmup: int, memory: PeakMemory) -> tuple:
    """Call ``fn`` ``warmup`` times, then time ``repeats`` calls: (times, peak RSS MiB, peak GPU MiB, last output)."""
    out = None
    for _ in range(warmup):
        out = fn()
    _sync(memory.device)
    memory.reset()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        _sync(memory.device)
        times.append(time.perf_counter() - t0)
    rss, gpu = memory.read()
    return times, rss, gpu, out


def _row(sampler, steps, part, resolution, b, nfe, configs, timed) -> BenchRow:
    times, rss, gpu, _ = timed
    t = statistics.median(times)
    return BenchRow(sampler or "default", steps, part, resolution, b, nfe, t, t / b, b / t, rss, gpu,
                    [c.sampler for c in configs], [c.steps for c in configs], times)


def bench_config(pipe, sampler: Optional[str], steps: Optional[int], b: int, settings: BenchSettings,
                 memory: PeakMemory) -> list:
    """Rows for one (sampler, steps, batch size): the whole cascade, then every stage alone."""
    configs = pipe.sampling_configs(sampler=sampler, steps=steps, guidance=settings.guidance)
    prompts = [settings.prompt] * b
    seeds = [settings.seed + k for k in range(b)]
    run = lambda: pipe(prompts, steps=steps, sampler=sampler, guidance=settings.guidance, seed=settings.seed,
                       batch_invariant=settings.batch_invariant)
    timed = measure(run, settings.repeats, settings.warmup, memory)
    rows = [_row(sampler, steps, "cascade", pipe.resolutions[-1], b, nfe_per_image(configs), configs, timed)]
    cascade_out = timed[3]
    cond = pipe.encode(prompts)
    for i, stage in enumerate(pipe.stages):
        lowres = cascade_out.stages[i - 1] if i > 0 else None
        fn = lambda stage=stage, i=i, lowres=lowres: stage.sample(
            cond, generators_from_seeds(seeds), configs[i], lowres=lowres, batch_invariant=settings.batch_invariant)
        rows.append(_row(sampler, steps, f"stage{i}", stage.config.resolution, b, nfe_per_image(configs[i:i + 1]),
                         configs, measure(fn, settings.repeats, settings.warmup, memory)))
    return rows


@torch.no_grad()
def bench_pipeline(pipe, settings: BenchSettings, progress: Optional[Callable] = None) -> BenchResult:
    """Measure every (sampler, steps, batch size); ``progress(1)`` after each."""
    settings.validate()
    device = pipe.stages[0].device
    memory = PeakMemory(device)
    rows = []
    for sampler in settings.samplers:
        for steps in settings.steps:
            for b in settings.batch_sizes:
                rows += bench_config(pipe, sampler, steps, b, settings, memory)
                if progress is not None:
                    progress(1)
    info = {**asdict(settings), "device": str(device), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "memory_method": memory.method, "resolutions": pipe.resolutions,
            "statistic": "median over repeats"}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return BenchResult(info, rows)


def table(result: BenchResult) -> str:
    """The rows as a Markdown table: latency for batch 1, images/s for larger batches."""
    gpu = any(r.peak_gpu_mib is not None for r in result.rows)
    head = "| sampler | steps | part | px | batch | NFE/img | median s/call | s/img | img/s | peak RSS MiB |"
    lines = [head + (" peak GPU MiB |" if gpu else ""), "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|" +
             ("---:|" if gpu else "")]
    for r in result.rows:
        steps = r.steps if r.steps is not None else "/".join(map(str, r.stage_steps))
        line = (f"| {r.sampler} | {steps} | {r.part} | {r.resolution} | {r.batch_size} | {r.nfe} | {r.seconds:.4f} | "
                f"{r.seconds_per_image:.4f} | {r.images_per_second:.2f} | {r.peak_rss_mib:.0f} |")
        lines.append(line + (f" {r.peak_gpu_mib:.0f} |" if gpu else ""))
    return "\n".join(lines)

