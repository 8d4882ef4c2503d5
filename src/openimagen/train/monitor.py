"""What a run shows while it trains (rank 0 only): a tqdm bar, TensorBoard scalars, ``metrics.jsonl``, sample grids.

    RUN/run_config.json        the resolved run config, written at start
    RUN/metrics.jsonl          one JSON row per log interval: step, loss, lr, grad_norm, images_per_s, ...
    RUN/tensorboard/           TensorBoard event files (``tensorboard --logdir RUN/tensorboard``)
    RUN/samples/step_000100.png  a grid sampled from the EMA weights with fixed prompts and seeds
"""
from __future__ import annotations

import json
import math
from pathlib import Path


from openimagen.pipeline.io import atomic_write, write_json
from openimagen.pipeline.pipeline import make_grid


class Monitor:
    def __init__(self, run_dir: Path, *, enabled: bool, total_steps: int, start_step: int, tensorboard: bool,
                 progress: bool):
        self.run_dir, self.enabled = Path(run_dir), enabled
        self.bar = self.tb = None
        self._tb_purge = None        # TensorBoard's writer opens on the first row logged, so a run that fails at
        self._tb_wanted = False      # set-up leaves no empty tensorboard/ folder behind
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if start_step:
            self._forget_after(start_step)
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)
        if tensorboard:
            try:
                import torch.utils.tensorboard  # noqa: F401  (an import check: the writer opens on the first row)
            except ImportError:  # tensorboard is an optional dependency (extra "train")
                self.write("tensorboard is not installed (pip install tensorboard); logging to metrics.jsonl only")
            else:
                self._tb_wanted, self._tb_purge = True, start_step or None

    def _tensorboard(self):
        """The run's SummaryWriter (opened on first use, under RUN/tensorboard), or None when not logging there."""
        if self.tb is None and self._tb_wanted:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self._tb_purge)
        return self.tb

    def _forget_after(self, step: int) -> None:
        """On resume, drop metrics rows logged after the checkpoint (the resumed run logs those steps again)."""
        path = self.run_dir / "metrics.jsonl"
        if path.is_file():
            rows, torn = [], 0
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    row = None
                if not isinstance(row, dict) or not isinstance(row.get("step", 0), int):
                    torn += 1                       # e.g. the last line of a run killed mid-write
                elif row.get("step", 0) <= step:
                    rows.append(line)
            if torn:
                self.write(f"warning: dropped {torn} unreadable line(s) of {path} (a torn write from an interrupted "
                           f"run?)")
            write_text = "".join(r + "\n" for r in rows)
            atomic_write(path, lambda tmp: Path(tmp).write_text(write_text, encoding="utf-8"))

    def write(self, message: str) -> None:
        """A log line that does not break the progress bar."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, flush=True)

    def write_config(self, config: dict) -> None:
        if self.enabled:
            write_json(self.run_dir / "run_config.json", config)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def log(self, step: int, row: dict) -> None:
        """One metrics row at ``step`` (the number of optimiser steps done) to metrics.jsonl, TensorBoard and the bar."""
        if not self.enabled:
            return
        row = {"step": step, **{k: (round(v, 8) if isinstance(v, float) and math.isfinite(v) else v)
                                for k, v in row.items()}}
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self._tensorboard() is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"train/{k}", v, step)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4f}", img_s=f"{row.get('images_per_s', 0):.1f}",
                                 refresh=False)

    def save_samples(self, step: int, images: list, cols: int) -> Path | None:
        if not self.enabled:
            return None
        path = self.run_dir / "samples" / f"step_{step:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        grid = make_grid(images, cols)
        atomic_write(path, lambda tmp: grid.save(tmp, format="PNG"))
        if self._tensorboard() is not None:
            import numpy as np

            self.tb.add_image("samples", np.asarray(grid), step, dataformats="HWC")
        return path

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
