"""ONNX export of each stage's network and an ONNX Runtime path for the whole cascade (issue 15, point 2).

What is exported is the raw network F of a stage (``EfficientUNet.forward``), not the sampler loop: the
preconditioning (EDM's c_skip, c_out, c_in, c_noise; Karras et al. 2022, eq. 7), guidance, thresholding and the
samplers stay in PyTorch, so every sampler, guidance scale and request setting works unchanged on the exported
graph. :func:`use_onnx` swaps each stage's network for an :class:`OnnxNet` running an
``onnxruntime.InferenceSession`` on the CPU: a load-time transform, nothing in the U-Net branches on it.

Layout of an export folder (``openimagen export-onnx MODEL -o DIR``):

=================  ==========================================================================================
``<stage>.onnx``   one graph per stage, inputs ``x`` (B, C, R, R) float32, ``c_noise`` (B,) float32, ``text``
                   (B, L, D) float32, ``text_mask`` (B, L) bool, ``text_drop`` (B,) bool, and for
                   super-resolution stages ``lowres`` (B, C, r, r) float32 and ``c_aug`` (B,) float32, and for
                   guidance-distilled students ``guidance`` (B,) float32; output
                   F (B, C, R, R) float32. The batch B is dynamic; L is the model's ``max_length``.
``onnx.json``      the source model's hash and each stage's weights sha256 (an export is refused for other
                   weights), opset, versions, and the parity measured at export (max |F_onnx - F_torch|);
                   for an ``--int8`` export also the calibration prompts and each graph's measured int8 error
                   (:mod:`openimagen.accel.quantize`)
=================  ==========================================================================================
"""
from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from openimagen.errors import InvalidArgumentError, ModelLoadError
from openimagen.pipeline.io import folder_written_whole, tensors_sha256, write_json

META = "onnx.json"
BASE_INPUTS = ("x", "c_noise", "text", "text_mask", "text_drop")
SR_INPUTS = BASE_INPUTS + ("lowres", "c_aug")
OPSET = 18


def _weights_id(stage) -> str:
    """The SHA-256 naming a stage's weights: its weights file's, or its tensors' for a stage built in code."""
    return stage.weights_sha256 or tensors_sha256(stage.denoiser.net.state_dict())


class _Signature(nn.Module):
    """F with every input positional and present (ONNX graphs have no optional inputs)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x, c_noise, text, text_mask, text_drop, lowres=None, c_aug=None, guidance=None):
        extra = {} if guidance is None else {"guidance": guidance}
        return self.net(x, c_noise, text, text_mask, text_drop=text_drop, lowres=lowres, c_aug=c_aug, **extra)


def example_inputs(stage, batch: int, max_length: int, generator: Optional[torch.Generator] = None) -> tuple:
    """Random inputs of F for ``stage`` (float32, CPU), in :data:`BASE_INPUTS` / :data:`SR_INPUTS` order."""
    cfg, g = stage.config, generator
    R, C, D = cfg.resolution, cfg.unet.in_channels, cfg.unet.text_dim
    mask = torch.ones(batch, max_length, dtype=torch.bool)
    mask[:, max_length // 2:] = torch.rand(batch, max_length - max_length // 2, generator=g) < 0.5
    args = [torch.randn(batch, C, R, R, generator=g), torch.rand(batch, generator=g) * 2 - 1,
            torch.randn(batch, max_length, D, generator=g), mask, torch.arange(batch) % 2 == 1]
    if cfg.is_super_resolution:
        r = cfg.lowres_resolution
        args += [torch.randn(batch, C, r, r, generator=g), torch.rand(batch, generator=g) * 2 - 1]
    if cfg.unet.guidance_cond:
        args += [None, None] if not cfg.is_super_resolution else []
        args.append(torch.rand(batch, generator=g) * 8)
    return tuple(args)


def input_names(stage) -> tuple:
    """The graph's input names for ``stage`` (a guidance-distilled student's end with ``guidance``)."""
    names = SR_INPUTS if stage.config.is_super_resolution else BASE_INPUTS
    return names + ("guidance",) if stage.config.unet.guidance_cond else names


@contextlib.contextmanager
def _quiet(*loggers: str):
    """Silence the exporter's progress and warnings (one line per skipped torchvision op) while it runs."""
    saved = {n: logging.getLogger(n).level for n in loggers}
    for n in loggers:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


def export_stage(stage, path, *, max_length: int, opset: int = OPSET) -> float:
    """Write ``stage``'s network F to ``path`` (ONNX, dynamic batch); returns the measured parity, the largest
    |F_onnx - F_torch| over random inputs at batch 1 and 3 (float32, CPU).

    Raises ModelLoadError if the exporter or ONNX Runtime fails (with its one-line reason)."""
    import onnxruntime as ort

    net = _Signature(stage.denoiser.net).float().cpu().eval()
    names = input_names(stage)
    args = example_inputs(stage, 2, max_length, torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic = {n: {0: batch} for n in names}
    if stage.config.unet.guidance_cond and not stage.config.is_super_resolution:
        dynamic = {**dynamic, "lowres": None, "c_aug": None}
    path = Path(path)
    try:
        with warnings.catch_warnings(), torch.no_grad(), _quiet("torch.onnx", "torch.export", "torch._dynamo"):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(net, args, input_names=list(names), output_names=["F"],
                                        dynamic_shapes=dynamic, opset_version=opset, dynamo=True, verbose=False)
            program.save(str(path))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # the exporter raises many kinds; the message is what the user needs
        raise ModelLoadError(f"ONNX export of {path.stem} failed: {str(e).strip().splitlines()[0][:300]}") from None
    worst = 0.0
    for b in (1, 3):
        inputs = example_inputs(stage, b, max_length, torch.Generator().manual_seed(b))
        with torch.no_grad():
            ref = net(*inputs)
        got = session.run(None, {n: t.numpy() for n, t in zip(names, [i for i in inputs if i is not None])})[0]
        worst = max(worst, float((torch.from_numpy(got) - ref).abs().max()))
    return worst


def export_onnx(pipe, out, *, overwrite: bool = False, opset: int = OPSET, int8: bool = False) -> dict:
    """Export every stage of ``pipe`` to ``out`` (see the module docstring); returns ``onnx.json``'s content.
    ``int8`` also quantizes the graphs' convolutions to static int8, calibrated on real prompts
    (:func:`openimagen.accel.quantize.quantize_export`; its record and measured error go into ``onnx.json``).

    Raises InvalidArgumentError if ``out`` exists (without ``overwrite``, or when it is not an ONNX export)."""
    import onnxruntime as ort

    out = Path(out).expanduser()
    if out.exists() and (not overwrite or not (out / META).is_file()):
        raise InvalidArgumentError(f"{out} exists; pass --overwrite to replace an earlier ONNX export"
                                   if (out / META).is_file() else
                                   f"{out} exists and is not an ONNX export; choose a new folder")
    with folder_written_whole(out) as tmp:
        stages = {}
        for name, stage in zip(pipe.config.stages, pipe.stages):
            parity = export_stage(stage, tmp / f"{name}.onnx", max_length=pipe.config.max_length, opset=opset)
            stages[name] = {"weights_sha256": _weights_id(stage), "parity_max_abs": parity,
                            "inputs": list(input_names(stage))}
        meta = {"format": 1, "model_hash": pipe.model_hash, "max_length": pipe.config.max_length, "opset": opset,
                "torch": torch.__version__, "onnxruntime": ort.__version__, "stages": stages}
        if int8:
            from openimagen.accel.quantize import quantize_export
            meta = quantize_export(pipe, tmp, meta)
        write_json(tmp / META, meta)
    return meta


def graph_feed(names, x, c_noise, text, text_mask, text_drop=None, lowres=None, c_aug=None, guidance=None) -> dict:
    """The graph's feed for a call of F (``EfficientUNet.forward``'s arguments): the inputs ``names`` as CPU numpy
    arrays, float32 (bool for the masks), per-sample scalars expanded to the batch B = ``x.shape[0]``."""
    B = x.shape[0]
    if text_drop is None:
        text_drop = torch.zeros(B, dtype=torch.bool)
    values = {"x": x, "c_noise": c_noise.reshape(-1).expand(B), "text": text, "text_mask": text_mask,
              "text_drop": text_drop.reshape(-1).expand(B), "lowres": lowres,
              "c_aug": None if c_aug is None else c_aug.reshape(-1).expand(B),
              "guidance": None if guidance is None else guidance.reshape(-1).expand(B)}
    return {n: values[n].detach().to("cpu", torch.bool if n in ("text_mask", "text_drop") else torch.float32)
            .contiguous().numpy() for n in names}


class OnnxNet(nn.Module):
    """A stage network F run by ONNX Runtime on the CPU: the same call as ``EfficientUNet.forward``.

    Inputs and output are float32 CPU tensors; ``threads`` sets ONNX Runtime's intra-op threads (default: torch's).
    Holds no parameters, so LoRA adapters and weight transforms cannot apply to it (:func:`use_onnx` refuses).
    """

    def __init__(self, path, names, threads: Optional[int] = None):
        super().__init__()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.inter_op_num_threads = 1
        self.path, self.names = str(path), tuple(names)
        self.session = ort.InferenceSession(self.path, opts, providers=["CPUExecutionProvider"])

    def forward(self, x, c_noise, text, text_mask, text_drop=None, lowres=None, c_aug=None, guidance=None):
        feed = graph_feed(self.names, x, c_noise, text, text_mask, text_drop, lowres, c_aug, guidance)
        return torch.from_numpy(self.session.run(None, feed)[0])


def cpu_float32_only(flag: str) -> str:
    """The one-line message for ``flag`` (``--onnx``, ``--fast``) asked of a pipeline not float32 on the CPU."""
    return f"{flag} runs ONNX Runtime on the CPU: use it with --device cpu and --dtype float32"


def check_cpu_float32(flag: str, device: str, dtype: str) -> None:
    """InvalidArgumentError unless ``device`` is "cpu" and ``dtype`` "float32": the CLI's check of ``flag`` before
    it loads anything."""
    if device != "cpu" or dtype != "float32":
        raise InvalidArgumentError(cpu_float32_only(flag))


def check_onnx_pipeline(pipe, flag: str = "--onnx") -> None:
    """Raise unless ``pipe`` can run through ONNX graphs: InvalidArgumentError while LoRA adapters are loaded (the
    graphs hold fixed weights), ModelLoadError for a stage not float32 on the CPU. Checked before an export is read
    or built."""
    if pipe.loras.loaded:
        raise InvalidArgumentError(f"{flag} runs fixed ONNX graphs, which cannot switch LoRA adapters: fuse them "
                                   f"and export again, or leave out {flag}")
    if any(st.device.type != "cpu" or st.dtype != torch.float32 for st in pipe.stages):
        raise ModelLoadError(cpu_float32_only(flag))


def use_onnx(pipe, folder, *, threads: Optional[int] = None):
    """Run every stage of ``pipe`` through the ONNX graphs in ``folder`` (from :func:`export_onnx` of the same
    weights); returns ``pipe``. Raises ModelLoadError for a folder of other weights, a missing graph or a
    pipeline on another device or dtype than float32 CPU, InvalidArgumentError while LoRA adapters are loaded."""
    check_onnx_pipeline(pipe)
    folder = Path(folder).expanduser()
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{folder} is not an ONNX export of openimagen ({META}: {e})") from None
    for name, stage in zip(pipe.config.stages, pipe.stages):
        info = meta.get("stages", {}).get(name)
        if info is None or not (folder / f"{name}.onnx").is_file():
            raise ModelLoadError(f"{folder} has no graph for stage {name}; export this model again")
        if info.get("weights_sha256") != _weights_id(stage):
            raise ModelLoadError(f"{folder} was exported from other weights than stage {name} of this model "
                                 f"(weights sha256 {str(info.get('weights_sha256'))[:16]} vs "
                                 f"{_weights_id(stage)[:16]}); export this model again")
    for name, stage in zip(pipe.config.stages, pipe.stages):
        stage.denoiser.net = OnnxNet(folder / f"{name}.onnx", meta["stages"][name]["inputs"], threads)
    return pipe
