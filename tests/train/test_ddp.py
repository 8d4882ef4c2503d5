"""Two data-parallel ranks (torchrun, gloo on CPU) end with the weights of one process with the same global batch.

Both strategies, DDP and FSDP (FSDP2's ``fully_shard``), are checked. The one process runs grad_accum = 2 micro-batches of the ranks' size, so both see the same examples in the same
chunks; per-example generators seeded by (seed, step, global index) give both the same text drops, noise
levels, noises and crops (see openimagen.train.data).
"""
import os
import subprocess
import sys

import pytest
import torch
import yaml

from openimagen.train.checkpoint import EMA, MODEL, Checkpoint
from openimagen.train.trainer import train
from tests.train.conftest import run_config

STEPS = 3


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_ranks_match_one_process(assets, tmp_path, strategy):
    # An SR stage on random crops: every kind of per-example randomness is drawn.
    sections = dict(max_steps=STEPS, data={"crop_size": 16}, train={"batch_size": 2, "aug_max": 0.4},
                    distributed={"strategy": strategy})
    ddp_cfg = run_config(assets, tmp_path / "ddp", sr=True, **sections)
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(ddp_cfg.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "openimagen.train", str(path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ddp = Checkpoint.read(tmp_path / "ddp")
    assert ddp.step == STEPS and ddp.state["world_size"] == 2 and ddp.state["global_batch"] == 4

    one = train(run_config(assets, tmp_path / "one", sr=True, **{**sections, "train": {**sections["train"],
                                                                                         "grad_accum": 2}}))
    single = Checkpoint.read(one.run_dir)
    assert single.state["global_batch"] == 4 and single.state["world_size"] == 1
    for name in (MODEL, EMA):
        a, b = ddp.tensors(name), single.tensors(name)
        assert a.keys() == b.keys()
        worst = max((a[k] - b[k]).abs().max().item() for k in a)
        assert worst < 1e-5, (name, worst)
    assert not torch.equal(single.tensors(MODEL)["out_conv.weight"], torch.zeros_like(
        single.tensors(MODEL)["out_conv.weight"]))                              # the runs did train (init is 0)


def _flags_on_rank(rank: int, port: int, out) -> None:
    import torch.distributed as dist

    from openimagen.train.distributed import Dist, any_ranks

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        # rank 1 alone is out of its time budget; nobody asked to stop
        out.put((rank, any_ranks(Dist(rank, rank, 2, torch.device("cpu"), "ddp"), False, rank == 1)))
    finally:
        dist.destroy_process_group()


def test_a_budget_ended_on_one_rank_is_a_budget_stop_on_every_rank():
    """The stop reason is agreed per flag: a run whose second rank ran out of CPU time must not report "stopped on
    request" (exit 3) on rank 0, as one flag OR-ed before the all-reduce did."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.SimpleQueue()
    procs = [ctx.Process(target=_flags_on_rank, args=(r, port, out)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    got = dict(out.get() for _ in range(2))
    assert got == {0: (False, True), 1: (False, True)}
