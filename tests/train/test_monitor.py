"""The training monitor: TensorBoard's folder appears with the first logged row, never for a run that fails before."""
import json

import pytest

from openimagen.train.monitor import Monitor

pytest.importorskip("torch.utils.tensorboard")


def test_tensorboard_folder_opens_with_the_first_row(tmp_path):
    run = tmp_path / "run"
    monitor = Monitor(run, enabled=True, total_steps=10, start_step=0, tensorboard=True, progress=False)
    assert not (run / "tensorboard").exists()          # a set-up error here would leave no empty folder
    monitor.log(1, {"loss": 0.5})
    monitor.close()
    assert any((run / "tensorboard").iterdir())
    assert json.loads((run / "metrics.jsonl").read_text())["loss"] == 0.5


def test_no_tensorboard_no_folder(tmp_path):
    monitor = Monitor(tmp_path, enabled=True, total_steps=10, start_step=0, tensorboard=False, progress=False)
    monitor.log(1, {"loss": 0.5})
    monitor.close()
    assert not (tmp_path / "tensorboard").exists()
