"""Data-parallel training on PyTorch's own engine: ``torchrun`` + DDP, or FSDP2 for U-Nets too big for one GPU.

``torchrun`` sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR/PORT; :func:`init` reads them and calls
``init_process_group`` (nccl on GPU, gloo on CPU). Without them the run is one plain process. Only rank 0
writes checkpoints, logs and samples; checkpoints always hold full (unsharded) tensors, so a run can resume
under another strategy or world size.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from openimagen.errors import ConfigError
from openimagen.train.config import RunConfig


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    local_rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    strategy: str = "ddp"

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(cfg: RunConfig) -> Dist:
    """Read torchrun's environment, pick the device and start the process group if there is more than one rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    want = cfg.device
    if want == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for but no CUDA GPU is available")
    use_cuda = want == "cuda" or (want == "auto" and torch.cuda.is_available())
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        backend = cfg.distributed.backend
        if backend == "auto":
            backend = "nccl" if use_cuda else "gloo"
        kwargs = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30), **kwargs)
    return Dist(rank, local_rank, world, device, cfg.distributed.strategy)


def shutdown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def mean(d: Dist, value: torch.Tensor) -> torch.Tensor:
    """Average a tensor over the ranks (for logging; gradients are averaged by DDP/FSDP)."""
    if d.enabled:
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= d.world
    return value


def any_rank(d: Dist, flag: bool) -> bool:
    """True if ``flag`` is true on any rank (e.g. a stop request from SIGTERM)."""
    return any_ranks(d, flag)[0]


def any_ranks(d: Dist, *flags: bool) -> tuple[bool, ...]:
    """For each flag, True if it is true on any rank (one collective for all of them)."""
    if not d.enabled:
        return tuple(bool(f) for f in flags)
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in t.tolist())


def wrap(net: nn.Module, d: Dist) -> nn.Module:
    """The network as trained: plain, DDP, or FSDP2 (``fully_shard`` on each U-Net level, then the root)."""
    if not d.enabled:
        return net
    if d.strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in list(getattr(net, "down", [])) + list(getattr(net, "up", [])):
            fully_shard(block)
        return fully_shard(net)
    ids = [d.device.index] if d.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(net, device_ids=ids)


def sync_gradients(model: nn.Module, sync: bool):
    """Context for one micro-batch's backward: skip the gradient all-reduce unless ``sync`` (the last one)."""
    if sync:
        return contextlib.nullcontext()
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2: reduce-scatter only on the last micro-batch
        model.set_requires_gradient_sync(False)
        return _resync(model)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _resync(model):
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def full_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Unsharded CPU copies (FSDP2 holds DTensors: every rank must call this, as it gathers)."""
    out = {}
    for k, v in state.items():
        if hasattr(v, "full_tensor"):
            v = v.full_tensor()
        out[k] = v.detach().to("cpu", copy=True)
    return out


def load_full_tensors(target: dict[str, torch.Tensor], full: dict[str, torch.Tensor]) -> None:
    """Copy full tensors into ``target``'s tensors in place, each rank keeping its own shard of DTensors."""
    with torch.no_grad():
        for k, t in target.items():
            src = full[k]
            if hasattr(t, "device_mesh"):
                from torch.distributed.tensor import distribute_tensor

                src = distribute_tensor(src.to(t.device, t.dtype), t.device_mesh, t.placements)
                t.to_local().copy_(src.to_local())
            else:
                t.copy_(src.to(t.device, t.dtype))
