"""Interrupt-and-resume reproduces the uninterrupted run bit for bit on CPU; bad resume paths are explained."""
import json

import pytest
import torch

from openimagen.errors import ConfigError, ModelLoadError
from openimagen.train.checkpoint import EMA, MODEL, OPTIMISER, Checkpoint
from openimagen.train.trainer import train
from tests.train.conftest import run_config

K, M = 2, 2


def test_resume_reproduces_the_uninterrupted_run(assets, tmp_path):
    # 12 images, global batch 3 x 2 micro-batches = 6: epochs end mid-run; text drop and per-epoch captions on.
    sections = dict(train={"grad_accum": 2}, max_steps=K + M,
                    data={"caption_mode": "per_epoch", "path": str(assets["shapes"] / "manifest.jsonl")})
    full = train(run_config(assets, tmp_path / "full", **sections))
    part = train(run_config(assets, tmp_path / "part", **{**sections, "max_steps": K}))  # "killed" after step K
    resumed = train(run_config(assets, tmp_path / "part", **sections), resume=tmp_path / "part")
    assert len(full.losses) == K + M and part.losses == full.losses[:K]
    assert resumed.losses == full.losses[K:]                                           # bit-exact, not approx
    a, b = Checkpoint.read(full.run_dir), Checkpoint.read(resumed.run_dir)
    assert a.step == b.step == K + M
    for name in (MODEL, EMA, OPTIMISER):
        ta, tb = a.tensors(name), b.tensors(name)
        assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta), name
    assert a.state["data_position"] == b.state["data_position"] == {"epoch": 2, "index": 0}
    steps = [json.loads(line)["step"] for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_resume_rejects_paths_that_are_not_checkpoints(assets, tmp_path):
    cfg = run_config(assets, tmp_path / "run")
    train(run_config(assets, tmp_path / "run", max_steps=1))
    with pytest.raises(ConfigError, match="already holds checkpoints .* pass --resume"):
        train(cfg)                                                   # a fresh start would mix two runs
    with pytest.raises(ModelLoadError, match="does not exist"):
        train(cfg, resume=tmp_path / "nowhere")
    (tmp_path / "junk").mkdir()
    with pytest.raises(ModelLoadError, match="is not a checkpoint .* or a run folder"):
        train(cfg, resume=tmp_path / "junk")
    (tmp_path / "empty_run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(ModelLoadError, match="has no complete checkpoint"):
        train(cfg, resume=tmp_path / "empty_run")


def test_resume_with_another_unet_lists_the_mismatch(assets, tmp_path):
    train(run_config(assets, tmp_path / "run", max_steps=1))
    other = run_config(assets, tmp_path / "run", max_steps=2,
                       stage={"unet": {"preset": "tiny", "overrides": {"text_dim": 16, "base_channels": 32,
                                                                       "num_null_tokens": 2}}})
    with pytest.raises(ConfigError) as e:
        train(other, resume=tmp_path / "run" / "checkpoints" / "step_00000001")
    msg = str(e.value)
    assert "different stage" in msg and "unet.base_channels (checkpoint 16, config 32)" in msg
    assert "unet.num_null_tokens (checkpoint 4, config 2)" in msg


def test_a_torn_metrics_line_is_dropped_and_reported_on_resume(assets, tmp_path, capsys):
    """Issue 10, kind 8: a run killed mid-write leaves half a JSON line; resuming drops it with a warning."""
    from openimagen.train.trainer import train
    from tests.train.conftest import run_config

    cfg = run_config(assets, tmp_path / "run", max_steps=2)
    train(cfg)
    metrics = tmp_path / "run" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 3, "loss": 0.1')          # torn last line
    result = train(cfg.replace(max_steps=3), resume=tmp_path / "run")
    assert result.step == 3
    assert "dropped 1 unreadable line" in capsys.readouterr().out
    import json

    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == [1, 2, 3]
