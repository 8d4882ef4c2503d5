"""``torch.compile`` of every stage's network, with the compile cost paid once, up front (issue 15, point 2).

Compiling is a load-time transform like the ONNX path: each ``stage.denoiser.net`` becomes its compiled wrapper
(``fullgraph=True``: the presets have no graph breaks, tested; ``dynamic=True``: one graph for every batch size,
since the service batches requests of any size), and one warm-up generation, batched and image by image, makes
the compiler run now rather than on a user's first request. Measured on this 2-core CPU (docs/BENCHMARKS.md):
about 1.46x on the base U-Net after about 90 s of compilation, so it pays for a long-running service
(``openimagen serve --compile``), not for one ``generate`` call. The weights, their hashes and the records of the
images are unchanged; LoRA adapters must be loaded (and fused, if wanted) before compiling, as the compiled graph
holds the network as it was.
"""
from __future__ import annotations

import time
from typing import Optional

import torch

from openimagen.errors import InvalidArgumentError

WARMUP_PROMPTS = ("a red circle above a blue square", "pizza")


def compile_network(net: torch.nn.Module, *, backend: str = "inductor", mode: Optional[str] = None):
    """``net`` compiled the way every stage is: ``fullgraph=True`` (a graph break is an error), ``dynamic=True``
    (one graph for every batch size). ``mode="reduce-overhead"`` adds CUDA graphs on a GPU (each batch size is
    captured once, then replayed). Lazy: the compiler runs on the first call."""
    return torch.compile(net, fullgraph=True, dynamic=True, backend=backend, mode=mode)


def compile_stages(pipe, *, backend: str = "inductor", mode: Optional[str] = None, warmup: bool = True) -> float:
    """Compile every stage of ``pipe`` in place and warm it up; returns the seconds the warm-up took (the
    compilation). Raises InvalidArgumentError while LoRA adapters are loaded (switching them per request would
    recompile)."""
    if pipe.loras.loaded:
        raise InvalidArgumentError("compile the model without LoRA adapters loaded (per-request adapters would "
                                   "recompile the graphs); fuse an adapter into the weights first if it is always on")
    for st in pipe.stages:
        st.denoiser.net = compile_network(st.denoiser.net, backend=backend, mode=mode)
    if not warmup:
        return 0.0
    t = time.perf_counter()
    for batch_invariant in (False, True):
        pipe(list(WARMUP_PROMPTS), seed=0, steps=2, batch_invariant=batch_invariant)
    return time.perf_counter() - t
