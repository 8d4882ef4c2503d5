"""A run config's max_minutes: the training loop stops at its wall-clock budget, after a checkpoint, resumable,
and reports it as a finished budget rather than an interruption (the GPU recipe's runs end this way)."""
from openimagen.train.checkpoint import checkpoint_dirs
from openimagen.train.trainer import train
from tests.train.conftest import run_config


def test_max_minutes_stops_with_a_checkpoint_and_resumes(assets, tmp_path):
    cfg = run_config(assets, tmp_path / "run", max_steps=1000, max_minutes=1e-6, log={"checkpoint_every": 1000})
    result = train(cfg)
    assert result.out_of_time and not result.interrupted
    assert 1 <= result.step < 1000
    assert [p.name for p in checkpoint_dirs(tmp_path / "run")] == [f"step_{result.step:08d}"]
    again = train(cfg.replace(max_minutes=None, max_steps=result.step + 1), resume=tmp_path / "run")
    assert again.step == result.step + 1 and not again.out_of_time


def test_max_cpu_minutes_stops_on_the_process_cpu_time(assets, tmp_path):
    result = train(run_config(assets, tmp_path / "run", max_steps=1000, max_cpu_minutes=1e-6))
    assert result.out_of_time and 1 <= result.step < 1000


def test_no_budget_runs_to_max_steps(assets, tmp_path):
    result = train(run_config(assets, tmp_path / "run", max_steps=2))
    assert result.step == 2 and not result.out_of_time
