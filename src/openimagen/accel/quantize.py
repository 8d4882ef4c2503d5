"""Static int8 quantization of an ONNX export, calibrated on real prompts (issue 15, point 3).

A load-time transform of the graphs :mod:`openimagen.accel.onnx` writes, done by ONNX Runtime's own quantizer
(``onnxruntime.quantization.quantize_static``; nothing home-made): the convolutions, which are 94% of the U-Net's
FLOPs, get int8 weights (symmetric, per output channel) and uint8 activations (per tensor) in QDQ form; every
other op stays float32. The activation ranges come from calibration: the model generates images for real
prompts (:data:`CALIBRATION_PROMPTS`, the training vocabulary: scenes and emoji) through the float32 PyTorch
network, every network input of every sampling step is recorded, half of those evaluations calibrate
(percentile 99.999 of a 2048-bin histogram) and the other half measure the result. The first and last convolution
of each stage in graph order (image in, F out) stay float32: quantizing them too added a sixth to the error
(0.071 vs 0.060 relative, base stage) for 2% of the FLOPs.

Measured on this project's 2-core AMD EPYC (AVX2, no VNNI), shipped model (docs/BENCHMARKS.md, "Quantization"):
ONNX Runtime int8 is 1.4x faster than its float32 graph at batch 1 and 16 (the 8-image demo 3.97 s against
6.50 s eager) and the per-evaluation error is 0.117 (base) and 0.085 (SR) of mean |F|; what that does to the
images is measured by ``openimagen eval --onnx`` (docs/EVALUATION.md: emoji Fréchet distance 3.7% further above
its floor for the v1 default; for v8, whose base stage's per-evaluation error is 0.31, 42% further), not assumed.
PyTorch's pt2e flow (torchao's X86InductorQuantizer + ``torch.compile``) was 3x more accurate per evaluation but no
faster than eager float32 on this CPU, which lacks the VNNI int8 instructions it relies on.
"""
from __future__ import annotations

import contextlib
import copy
import os
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from openimagen.accel.onnx import graph_feed

CALIBRATION_PROMPTS = (
    "a red circle above a blue square", "two green stars", "a big yellow triangle", "a small purple circle",
    "a blue square and a black circle", "three orange triangles", "a green star left of a red square",
    "grinning face", "pizza", "rocket", "red heart", "cat face", "sun with face", "blue book",
)
OP_TYPES = ("Conv",)
PERCENTILE = 99.999


class _Recorder(nn.Module):
    """Calls ``net`` and keeps a copy of every input, as the ONNX graph's feed (names -> float32/bool arrays)."""

    def __init__(self, net: nn.Module, names: Sequence[str]):
        super().__init__()
        self.net, self.names, self.feeds = net, tuple(names), []

    def forward(self, x, c_noise, text, text_mask, text_drop=None, lowres=None, c_aug=None, guidance=None):
        feed = graph_feed(self.names, x, c_noise, text, text_mask, text_drop, lowres, c_aug, guidance)
        self.feeds.append({n: v.copy() for n, v in feed.items()})
        extra = {} if guidance is None else {"guidance": guidance}
        return self.net(x, c_noise, text, text_mask, text_drop=text_drop, lowres=lowres, c_aug=c_aug, **extra)


def record_inputs(pipe, names: dict, prompts: Sequence[str] = CALIBRATION_PROMPTS, *, seed: int = 0,
                  steps: Optional[int] = None) -> dict:
    """Generate one image per prompt with ``pipe`` (its own PyTorch networks, the stages' default settings,
    batched) and return every network input seen: ``{stage name: [feed, ...]}``, one feed per evaluation of F,
    each a dict of numpy arrays keyed by the graph's input names (``names[stage name]``)."""
    recorders = {}
    for name, stage in zip(pipe.config.stages, pipe.stages):
        recorders[name] = _Recorder(stage.denoiser.net, names[name])
    saved = [st.denoiser.net for st in pipe.stages]
    try:
        for (name, rec), st in zip(recorders.items(), pipe.stages):
            st.denoiser.net = rec
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*exceed max_length")   # calibration needs no warning
            pipe(list(prompts), seed=seed, steps=steps, batch_invariant=False)
    finally:
        for st, net in zip(pipe.stages, saved):
            st.denoiser.net = net
    return {name: rec.feeds for name, rec in recorders.items()}


@contextlib.contextmanager
def _quiet_ort():
    """ONNX Runtime's quantizer prints its calibration progress with print(); keep the user's terminal clean."""
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        yield


def quantize_graph(src, dst, calibration: Sequence[dict], check: Sequence[dict], *, threads: int = 1) -> dict:
    """Write ``dst``: the float32 graph ``src`` with its convolutions (all but the first and last) in static int8
    QDQ form, activation ranges calibrated on the feeds ``calibration``. Returns what was done and the measured
    error on the held-out feeds ``check``: ``rel_error`` = mean |F_int8 - F_fp32| / mean |F_fp32|, and
    ``max_abs`` = the largest |F_int8 - F_fp32|.

    Raises ValueError if there are no calibration feeds."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ValueError("no calibration inputs were recorded")
    src, dst = Path(src), Path(dst)
    pre = dst.with_name(dst.stem + ".pre.onnx")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calibration)

        def get_next(self):
            return next(self.it, None)

    try:
        with _quiet_ort():
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            convs = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "Conv"]
            excluded = [convs[0], convs[-1]] if len(convs) > 2 else []
            quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                            op_types_to_quantize=list(OP_TYPES), nodes_to_exclude=excluded,
                            calibrate_method=CalibrationMethod.Percentile,
                            extra_options={"CalibPercentile": PERCENTILE})
    finally:
        pre.unlink(missing_ok=True)
        for tmp in dst.parent.glob("augmented_model*.onnx"):
            tmp.unlink(missing_ok=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    ref = ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
    q = ort.InferenceSession(str(dst), opts, providers=["CPUExecutionProvider"])
    err, scale, worst = 0.0, 0.0, 0.0
    for feed in check:
        a, b = q.run(None, feed)[0], ref.run(None, feed)[0]
        err += float(np.abs(a - b).mean())
        scale += float(np.abs(b).mean())
        worst = max(worst, float(np.abs(a - b).max()))
    return {"op_types": list(OP_TYPES), "quantized_convs": len(convs) - len(excluded), "float_convs": excluded,
            "calibration_evaluations": len(calibration), "check_evaluations": len(check),
            "rel_error": err / scale if scale else 0.0, "max_abs": worst}


def quantize_export(pipe, folder, meta: dict, prompts: Sequence[str] = CALIBRATION_PROMPTS, *,
                    seed: int = 0) -> dict:
    """Quantize every stage graph in the export ``folder`` (written for ``pipe``'s weights; its ``onnx.json``
    content is ``meta``) in place, calibrated on ``prompts``; returns a copy of ``meta`` (which it leaves as it
    was) with an ``int8`` record (the calibration prompts and seed) and each stage's :func:`quantize_graph`
    result under ``stages.<name>.int8``."""
    folder, meta = Path(folder), copy.deepcopy(meta)
    names = {name: meta["stages"][name]["inputs"] for name in pipe.config.stages}
    feeds = record_inputs(pipe, names, prompts, seed=seed)
    for name in pipe.config.stages:
        src, dst = folder / f"{name}.onnx", folder / f"{name}.int8.onnx"
        info = quantize_graph(src, dst, feeds[name][1::2], feeds[name][0::2])
        os.replace(dst, src)
        meta["stages"][name]["int8"] = info
    meta["int8"] = {"calibration_prompts": list(prompts), "seed": seed, "percentile": PERCENTILE}
    return meta
