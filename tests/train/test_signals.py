"""Issue 10, kind 11: SIGTERM during `openimagen train` writes a checkpoint, then exits with code 3 (not 0), so a
scheduler can tell an interrupted run from a finished one; resuming finishes it with 0."""
import json
import os
import signal
import subprocess
import sys
import time

from openimagen.train.checkpoint import checkpoint_dirs
from tests.train.conftest import run_config


def test_sigterm_checkpoints_and_exits_3_then_resume_finishes(assets, tmp_path):
    cfg = run_config(assets, tmp_path / "run", max_steps=100000, log={"checkpoint_every": 100000})
    (tmp_path / "run.json").write_text(json.dumps(cfg.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "openimagen", "train", str(tmp_path / "run.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err[-2000:]
    assert "interrupted at step" in err and "--resume" in err
    step = int(checkpoint_dirs(tmp_path / "run")[-1].name.split("_")[-1])
    assert step >= 2
    done = subprocess.run([sys.executable, "-m", "openimagen", "train", "--resume", str(tmp_path / "run"),
                           "--max-steps", str(step + 1)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and f"trained to step {step + 1}" in done.stdout
