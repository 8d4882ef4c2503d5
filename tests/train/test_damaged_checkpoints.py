"""Issue 10, kind 8: a checkpoint records its tensor files' sizes and checksums and is checked when read; a
damaged one is refused in one line naming the file and an earlier checkpoint to resume from; a step folder left
empty by a kill during pruning is cleaned at the next checkpoint and never taken for one."""
import pytest
from safetensors.torch import load_file, save_file

from openimagen.errors import ModelLoadError
from openimagen.train.checkpoint import Checkpoint, checkpoint_dirs
from openimagen.train.trainer import train
from tests.train.conftest import run_config


@pytest.fixture
def run(assets, tmp_path):
    train(run_config(assets, tmp_path / "run", max_steps=4, log={"checkpoint_every": 2, "keep_last": 3}))
    return tmp_path / "run"


@pytest.mark.parametrize("name", ["model.safetensors", "optimiser.safetensors", "ema.safetensors"])
def test_a_deleted_tensor_is_found_and_the_earlier_checkpoint_named(run, name):
    last = checkpoint_dirs(run)[-1]
    tensors = load_file(str(last / name))
    tensors.pop(sorted(tensors)[0])
    save_file(tensors, str(last / name))
    with pytest.raises(ModelLoadError) as e:
        Checkpoint.read(run)
    msg = str(e.value)
    assert "\n" not in msg and name in msg and "step_00000002" in msg and "--resume" in msg


def test_a_flipped_byte_and_a_missing_file_are_found(run):
    last = checkpoint_dirs(run)[-1]
    data = bytearray((last / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (last / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="checksum"):
        Checkpoint.read(last)
    first = checkpoint_dirs(run)[0]
    (first / "rng.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="rng.safetensors is missing"):
        Checkpoint.read(first)


def test_resume_refuses_a_damaged_checkpoint_and_the_earlier_one_works(assets, run):
    last = checkpoint_dirs(run)[-1]
    (last / "optimiser.safetensors").write_bytes(b"")
    cfg = run_config(assets, run, max_steps=5)
    with pytest.raises(ModelLoadError, match="optimiser.safetensors"):
        train(cfg, resume=run)
    assert train(cfg, resume=checkpoint_dirs(run)[0]).step == 5


def test_an_empty_step_folder_from_a_killed_prune_is_ignored_and_cleaned(assets, run):
    (run / "checkpoints" / "step_00000099").mkdir()
    assert Checkpoint.read(run).step == 4                               # the torn folder is not "the latest"
    train(run_config(assets, run, max_steps=6, log={"checkpoint_every": 2}), resume=run)
    assert not (run / "checkpoints" / "step_00000099").exists()
