"""Checkpoints: atomic under a full disk, keep-last-K, name-keyed optimiser state round trip, no pickle."""
import errno
import json

import pytest
import torch
from safetensors.torch import save_file as real_save_file

from openimagen.train import checkpoint as ck
from openimagen.train.checkpoint import (Checkpoint, CheckpointWriteError, checkpoint_dirs, flatten_optimiser,
                                         rng_state, save_checkpoint, unflatten_optimiser)


def tiny_state(step: int) -> dict:
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters())
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    named = {"state": {n: opt.state[p] for n, p in net.named_parameters()},
             "param_groups": [{**opt.param_groups[0], "params": [n for n, _ in net.named_parameters()]}]}
    return dict(model=net.state_dict(), ema=net.state_dict(), optimiser=named, rng=[rng_state()],
                state={"run_config": {}, "stage_config": {}, "marker": step})


def test_full_disk_mid_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    first = save_checkpoint(tmp_path, 10, keep_last=3, **tiny_state(10))
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    calls = []

    def full_disk(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 2:                                  # the second file: half written, then ENOSPC
            real_save_file(tensors, filename, metadata)
            with open(filename, "r+b") as f:
                f.truncate(20)
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save_file(tensors, filename, metadata)

    monkeypatch.setattr(ck, "save_file", full_disk)
    with pytest.raises(CheckpointWriteError, match="No space left on device.*step_00000010 is intact"):
        save_checkpoint(tmp_path, 20, keep_last=3, **tiny_state(20))
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step_00000010"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000010"]  # no temp left over
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before
    assert Checkpoint.read(tmp_path).state["marker"] == 10


def test_keep_last_k(tmp_path):
    for step in (1, 2, 3, 4, 5):
        save_checkpoint(tmp_path, step, keep_last=2, **tiny_state(step))
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step_00000004", "step_00000005"]
    assert Checkpoint.read(tmp_path).step == 5                                     # a run folder: its latest
    assert Checkpoint.read(tmp_path / "checkpoints" / "step_00000004").step == 4


def test_checkpoint_holds_no_pickle(tmp_path):
    path = save_checkpoint(tmp_path, 7, keep_last=1, **tiny_state(7))
    assert sorted(p.name for p in path.iterdir()) == ["ema.safetensors", "model.safetensors",
                                                      "optimiser.safetensors", "rng.safetensors", "state.json"]
    state = json.loads((path / "state.json").read_text())
    assert state["step"] == 7 and state["format"] == ck.FORMAT and "python" in state["rng"][0]
    assert Checkpoint.read(path).tensors(ck.RNG)["rank0/torch_cpu"].dtype == torch.uint8


@pytest.mark.parametrize("kind", ["adamw", "adafactor"])
def test_optimiser_state_round_trip(kind):
    from transformers.optimization import Adafactor

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    opt = (torch.optim.AdamW(net.parameters(), betas=(0.8, 0.9)) if kind == "adamw" else
           Adafactor(net.parameters(), lr=1e-3, relative_step=False, scale_parameter=False))
    net(torch.randn(2, 3)).sum().backward()
    opt.step()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    sd = get_optimizer_state_dict(net, opt, options=StateDictOptions(full_state_dict=True))
    tensors, meta = flatten_optimiser(sd)
    json.dumps(meta)                                                           # JSON-safe
    back = unflatten_optimiser(tensors, json.loads(json.dumps(meta)))
    assert back["param_groups"] == sd["param_groups"]
    for name, st in sd["state"].items():
        for k, v in st.items():
            assert torch.equal(back["state"][name][k], v) if torch.is_tensor(v) else back["state"][name][k] == v


@pytest.mark.parametrize("edit, words", [
    (lambda s: s.update(step="abc"), "step should be a valid integer, got 'abc'"),
    (lambda s: s.update(step=-3), "step should be greater than or equal to 0"),
    (lambda s: s.pop("optimiser"), "optimiser is required"),
    (lambda s: s.update(rng={"a": 1}), "rng should be a valid list"),
    (lambda s: s.update(global_batch=0), "global_batch should be greater than or equal to 1"),
    (lambda s: s.update(stage_config=[]), "stage_config should be a valid dictionary"),
])
def test_a_damaged_state_json_is_one_line_model_load_error(assets, tmp_path, edit, words):
    """Issue 10, kind 1: state.json is checked by the same mechanism as every config."""
    import json

    from openimagen.errors import ModelLoadError
    from openimagen.train.checkpoint import STATE, Checkpoint, checkpoint_dirs
    from openimagen.train.trainer import train
    from tests.train.conftest import run_config

    train(run_config(assets, tmp_path / "run", max_steps=1))
    path = checkpoint_dirs(tmp_path / "run")[-1] / STATE
    state = json.loads(path.read_text())
    edit(state)
    path.write_text(json.dumps(state))
    with pytest.raises(ModelLoadError, match="is damaged or was edited: " + words):
        Checkpoint.read(path.parent)


def test_a_checkpoint_from_before_a_new_unet_field_resumes(assets, tmp_path):
    """A U-Net field added later (e.g. guidance_cond) reads as its default whether a checkpoint's stage config
    names it or not."""
    import json

    from openimagen.train.checkpoint import checkpoint_dirs
    from openimagen.train.trainer import train
    from tests.train.conftest import run_config

    cfg = run_config(assets, tmp_path / "run", max_steps=2)
    train(cfg)
    state_path = checkpoint_dirs(tmp_path / "run")[-1] / "state.json"
    state = json.loads(state_path.read_text())
    assert "guidance_cond" not in state["stage_config"]["unet"]            # written only when not the default
    state["stage_config"]["unet"]["guidance_cond"] = False                  # as a checkpoint that wrote it does
    state_path.write_text(json.dumps(state))
    assert train(cfg.replace(max_steps=3), resume=tmp_path / "run").step == 3
