"""Shared helpers of the peer benchmarks: timing, the machine's sgemm ceiling, FLOP counts, tables, JSON.

Method (see docs/BENCHMARKS.md):
  * every timed function is warmed up first (oneDNN picks and caches kernels on the first calls);
  * peers are timed interleaved, A B C A B C ..., so that load from other jobs on a shared machine falls
    on all of them alike, and each peer's number is the MEDIAN of its rounds;
  * the load average is read before and after each run and written to the JSON beside the numbers;
  * FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions and
    attention; element-wise ops, norms and the optimizer are not counted) and set against a float32
    matrix-multiply ceiling measured on the same machine in the same run (2048^3 sgemm).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


# ---------------------------------------------------------------------------------------------- CLI
def base_parser(description: str, default_out: Path) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: one timed round per peer and fewer repeats (numbers are NOT for reporting)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: every core this process may use)")
    p.add_argument("--rounds", type=int, default=None,
                   help="timed rounds (each peer once per round, interleaved); default depends on the script and --quick")
    p.add_argument("--out", type=Path, default=default_out, help=f"JSON result file (default: {default_out})")
    return p


def command_line() -> str:
    """The exact command that produced this output, for the top of the output and the JSON."""
    exe = os.path.relpath(sys.executable, Path.cwd()) if sys.executable.startswith(str(Path.cwd())) else sys.executable
    return shlex.join([exe, *sys.argv])


def setup_threads(threads: int | None) -> int:
    """Set torch's intra-op threads; warn when other jobs load the machine and more than one thread is used.

    With 2 threads on 2 busy cores every parallel op ends on a barrier that waits for a descheduled
    thread: we measured the same forward pass 5-10x slower with 2 threads than with 1 at a load of ~4.
    ``--threads 1`` then compares the libraries far more reliably (see docs/BENCHMARKS.md)."""
    n = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    load = os.getloadavg()[0]
    if n > 1 and load > 0.5:
        print(f"WARNING: load average {load:.2f} before the run: with {n} threads on a shared machine the timings "
              "are dominated by thread barriers waiting for descheduled threads; consider --threads 1")
    return torch.get_num_threads()


def start_run(doc: str, default_out: Path, quick_rounds: int = 2, full_rounds: int = 7
              ) -> tuple[argparse.Namespace, int, int]:
    """Parse the common flags, print the command, set the threads: the opening of a one-library benchmark.

    Returns (args, threads, rounds); rounds is ``--rounds`` or ``quick_rounds``/``full_rounds`` by ``--quick``."""
    args = base_parser(doc.split("\n\n")[0], default_out).parse_args()
    print(f"$ {command_line()}")
    threads = setup_threads(args.threads)
    return args, threads, args.rounds or (quick_rounds if args.quick else full_rounds)


def finish_run(out: Path, results: dict) -> None:
    """Record the load average after the run and write the JSON atomically: the close of every benchmark."""
    results["load_after"] = load_average()
    write_json(out, results)


@dataclass(frozen=True)
class RunStart:
    """What a peer benchmark records about its start: command, threads, import shims, load."""

    command: str
    threads: int
    compat: list
    load_before: dict


def start_peer_run(threads: int | None, prepare_imports: Callable[[], list]) -> RunStart:
    """Print the command, set the threads, install the peers' import shims, note the load: the opening of every
    peer benchmark (``prepare_imports`` is ``peers.prepare_imports``)."""
    cmd = command_line()
    print(f"$ {cmd}")
    n = setup_threads(threads)
    compat = prepare_imports()
    load_before = load_average()
    print(f"threads {n}, load before {load_before}")
    for note in compat:
        print(f"compat: {note}")
    return RunStart(cmd, n, compat, load_before)


# ---------------------------------------------------------------------------------------------- timing
def load_average() -> dict:
    one, five, fifteen = os.getloadavg()
    return {"1min": round(one, 2), "5min": round(five, 2), "15min": round(fifteen, 2), "time": time.strftime("%H:%M:%S")}


def time_once(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_repeated(fn: Callable[[], object], warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    return [time_once(fn) for _ in range(repeats)]


def interleaved(fns: dict[str, Callable[[], object]], warmup: int, rounds: int, per_round: int = 1,
                log: Callable[[str], None] = print) -> dict[str, list[float]]:
    """Warm up every function, then time them A B C A B C ...; ``per_round`` calls of each per round.

    Returns every single call's seconds, per name (``rounds * per_round`` values each)."""
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        log(f"  warmed up {name} ({warmup} calls, load {os.getloadavg()[0]:.2f})")
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        for name, fn in fns.items():
            ts = [time_once(fn) for _ in range(per_round)]
            times[name].extend(ts)
            log(f"  round {r + 1}/{rounds} {name}: median {statistics.median(ts):.3f} s/call "
                f"(load {os.getloadavg()[0]:.2f})")
    return times


def summary(ts: Sequence[float]) -> dict:
    """Median and spread of a list of seconds."""
    s = sorted(ts)
    q = lambda f: s[min(len(s) - 1, int(round(f * (len(s) - 1))))]
    return {"median_s": statistics.median(s), "min_s": s[0], "max_s": s[-1], "p25_s": q(0.25), "p75_s": q(0.75),
            "n": len(s)}


def paired_speedup(times: dict[str, list[float]], base: str, other: str, per_round: int) -> float:
    """Median over rounds of (other's round median / base's round median): robust to load that drifts slowly."""
    chunks = lambda ts: [statistics.median(ts[i:i + per_round]) for i in range(0, len(ts), per_round)]
    return statistics.median(o / b for b, o in zip(chunks(times[base]), chunks(times[other])))


# ---------------------------------------------------------------------------------------------- ceilings and FLOPs
def sgemm_ceiling(n: int = 2048, repeats: int = 10) -> dict:
    """float32 GFLOP/s of an n x n x n matrix multiply (2 n^3 FLOPs), median of ``repeats`` after warm-up."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    ts = time_repeated(lambda: torch.mm(a, b, out=c), warmup=3, repeats=repeats)
    flops = 2.0 * n ** 3
    return {"n": n, "gflops_median": flops / statistics.median(ts) / 1e9, "gflops_best": flops / min(ts) / 1e9,
            "repeats": repeats}


def _sdpa_cpu(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _sdpa_cpu_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# FlopCounterMode knows the CUDA attention kernels but not the fused CPU one that
# F.scaled_dot_product_attention runs here (openimagen, diffusers); without these two entries their
# attention would count 0 FLOPs while imagen-pytorch's einsum attention (bmm) is counted.
_CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu,
                  torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward}


def count_flops(fn: Callable[[], object], top: int = 8) -> tuple[int, dict[str, int]]:
    """FLOPs of one call as ``FlopCounterMode`` counts them (matmul, conv, attention; forward and backward),
    and the ``top`` ops by FLOPs."""
    with FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION) as counter:
        fn()
    per_op = {str(k): int(v) for k, v in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), dict(sorted(per_op.items(), key=lambda kv: -kv[1])[:top])


# ---------------------------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str | None:
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict:
    dirty = _git("status", "--porcelain", "--", "src")
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch": torch.__version__,
        "mkldnn": torch.backends.mkldnn.is_available(),
        "mkl": torch.backends.mkl.is_available(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {d: _version(d) for d in ("openimagen", "imagen-pytorch", "diffusers", "torchvision",
                                              "transformers", "einops")},
        "openimagen_git_head": _git("rev-parse", "--short", "HEAD"),
        "openimagen_src_uncommitted_files": len(dirty.splitlines()) if dirty else 0,
    }


# ---------------------------------------------------------------------------------------------- output
def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (pastes straight into docs/BENCHMARKS.md)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells[1:])])


def write_json(path: Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)                                   # atomic: a reader never sees half a file
    print(f"wrote {path}")
