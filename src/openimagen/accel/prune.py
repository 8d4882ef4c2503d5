"""Structured channel pruning of a trained stage: the hidden channels of every ResBlock (issue 15, point 4).

A ResBlock is ``x + conv2(act(FiLM(GN(conv1(...)))))``; the channels between ``conv1`` and ``conv2`` are private to
the block (the residual stream, skips, attention and upsampling keep their widths), so removing some of them needs
no change anywhere else, and the pruned network is again an :class:`~openimagen.nn.EfficientUNet` of a config
(``UNetConfig.res_hidden_fraction``), saved and loaded like any stage and fine-tuned by the ordinary trainer
(``init: {model: PRUNED, stage: ...}`` with the same ``res_hidden_fraction``).

Which channels go: whole GroupNorm groups, those whose output the next convolution weighs least. A hidden channel c
reaches the block's output only through ``conv2``'s input slice ``W2[:, c]``, after ``norm2``'s affine
``gamma_c, beta_c``, so its importance is ``||W2[:, c]||_1 * (|gamma_c| + |beta_c|)`` (the consumer-weight
criterion of Li et al. 2017, "Pruning Filters for Efficient ConvNets", with the normalisation scale of Liu et al.
2017, "Network Slimming"); a group's is the sum over its channels. Keeping whole groups keeps each kept channel's
normalisation statistics where the group size stays the same (every width up to 128 channels: groups of 4), so a
block whose pruned groups had zero importance computes exactly what it did before; elsewhere the short fine-tune
repairs the difference.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from openimagen.errors import InvalidArgumentError
from openimagen.nn.blocks import ResBlock, hidden_width
from openimagen.pipeline.io import PIPELINE_NAME, folder_written_whole, write_json
from openimagen.pipeline.stage import Stage


def _conv_parts(conv: nn.Module) -> tuple[nn.Conv2d | None, nn.Conv2d]:
    """(depthwise or None, the conv that mixes channels) of a plain or depthwise-separable 3x3 convolution."""
    if isinstance(conv, nn.Sequential):
        return conv[0], conv[1]
    return None, conv


def channel_importance(block: ResBlock) -> torch.Tensor:
    """(hidden,) float32: ``||W2[:, c]||_1 * (|gamma_c| + |beta_c|)`` for each hidden channel c (module docstring);
    for a depthwise-separable ``conv2`` W2 is the pointwise weight times the depthwise filter's L1 norm."""
    depthwise, mixing = _conv_parts(block.conv2)
    w2 = mixing.weight.detach().float().abs().sum(dim=(0, 2, 3))                 # (hidden,)
    if depthwise is not None:
        w2 = w2 * depthwise.weight.detach().float().abs().sum(dim=(1, 2, 3))
    norm = block.norm2
    return w2 * (norm.weight.detach().float().abs() + norm.bias.detach().float().abs())


def kept_channels(block: ResBlock, width: int) -> torch.Tensor:
    """Sorted indices (``width``,) of the hidden channels to keep: the most important whole groups of ``norm2``.

    Raises :class:`InvalidArgumentError` if ``width`` is not a whole number of groups or exceeds the block's."""
    hidden, groups = block.norm2.num_channels, block.norm2.num_groups
    size = hidden // groups
    if width % size or not 0 < width <= hidden:
        raise InvalidArgumentError(f"cannot keep {width} of {hidden} channels in groups of {size}")
    score = channel_importance(block).reshape(groups, size).sum(dim=1)         # (groups,)
    top = torch.topk(score, width // size, sorted=False).indices.sort().values
    return (top[:, None] * size + torch.arange(size)).reshape(-1)


def _pruned_block_state(old: ResBlock, width: int) -> dict[str, torch.Tensor]:
    """``old``'s state dict with only the ``width`` hidden channels :func:`kept_channels` picks: the tensors of a
    ResBlock of that hidden width."""
    keep, hidden = kept_channels(old, width), old.norm2.num_channels
    out = old.state_dict()
    conv1 = "conv1.1." if isinstance(old.conv1, nn.Sequential) else "conv1."   # the output side of conv1
    rows = torch.cat([keep, keep + hidden])                                      # scale rows, then shift rows
    for key, index in [(conv1 + "weight", keep), (conv1 + "bias", keep), ("emb_proj.weight", rows),
                       ("emb_proj.bias", rows), ("norm2.weight", keep), ("norm2.bias", keep)]:
        out[key] = out[key][index]
    if isinstance(old.conv2, nn.Sequential):                                     # depthwise, then pointwise
        out["conv2.0.weight"] = out["conv2.0.weight"][keep]
        out["conv2.1.weight"] = out["conv2.1.weight"][:, keep]
    else:
        out["conv2.weight"] = out["conv2.weight"][:, keep]
    return out


def check_fraction(fraction: float) -> None:
    """Raise :class:`InvalidArgumentError` (one line) unless ``fraction`` is in (0, 1]."""
    if not (0.0 < fraction <= 1.0):
        raise InvalidArgumentError(f"the pruning fraction must be in (0, 1], got {fraction}")


def prune_stage(stage: Stage, fraction: float) -> Stage:
    """A new :class:`Stage` whose ResBlocks keep ``fraction`` of their hidden channels (in whole groups, see
    :func:`~openimagen.nn.blocks.hidden_width`), chosen by :func:`channel_importance`; every other weight is
    copied unchanged. ``stage`` is not modified. The result is float32 on the CPU, in eval mode.

    Raises :class:`InvalidArgumentError` if ``fraction`` is not in (0, 1] or is not below the stage's own
    ``res_hidden_fraction`` (a stage is pruned from a wider one)."""
    current = stage.config.unet.res_hidden_fraction
    check_fraction(fraction)
    if fraction > current:
        raise InvalidArgumentError(f"the stage already keeps {current} of its hidden channels; "
                                   f"a fraction of {fraction} would widen it")
    old_net = stage.denoiser.net            # read only: load_state_dict below copies into float32 CPU tensors
    # the new fraction is relative to the full width; hidden_width rounds it to whole groups per block
    config = replace(stage.config, unet=replace(stage.config.unet, res_hidden_fraction=float(fraction)))
    new = Stage(config).eval()
    state = old_net.state_dict()
    for name, module in new.denoiser.net.named_modules():
        if isinstance(module, ResBlock):
            block = _pruned_block_state(old_net.get_submodule(name), module.norm2.num_channels)
            state.update({f"{name}.{k}": v for k, v in block.items()})
    new.denoiser.net.load_state_dict(state, strict=True)                       # every tensor accounted for
    return new


def pruned_widths(stage: Stage) -> list[tuple[str, int, int]]:
    """(block name, hidden width, output width) of every ResBlock of ``stage``, for reports."""
    return [(n, m.norm2.num_channels, _conv_parts(m.conv2)[1].out_channels)
            for n, m in stage.denoiser.net.named_modules() if isinstance(m, ResBlock)]


def prune_model(model, out, fraction: float, stages: Optional[Sequence[str]] = None, *, fp16: bool = False,
                 overwrite: bool = False) -> list[Stage]:
    """Write a copy of the model directory ``model`` (None: the shipped default) to ``out`` with the named
    ``stages`` (default: every stage) channel-pruned by :func:`prune_stage`; the other stages are copied. Returns
    the pruned stages. The folder is written beside ``out`` and moved into place whole.

    Raises :class:`InvalidArgumentError` for an unknown stage name or a bad fraction, and
    :class:`~openimagen.errors.ConfigError` if ``out`` may not be written (see ``check_export_target``)."""
    from openimagen.pipeline import Pipeline
    from openimagen.train.export import check_export_target

    check_fraction(fraction)
    out = Path(out).expanduser()
    pipe = Pipeline.from_pretrained(model, watermark=None)
    names = list(pipe.config.stages)
    chosen = list(stages) if stages else names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise InvalidArgumentError(f"unknown stage {unknown[0]!r}; this model has {', '.join(names)}")
    check_export_target(out, [Path(model)] if model is not None else [], overwrite)
    result, done = [], []
    with folder_written_whole(out) as tmp:
        for name, stage in zip(names, pipe.stages):
            if name in chosen:
                stage = prune_stage(stage, fraction)
                result.append(stage)
                done.append(name)
            stage.save(tmp / name, torch.float16 if fp16 else None)
        note = f"{', '.join(done)} channel-pruned to {fraction} of their ResBlocks' hidden channels"
        config = replace(pipe.config, description=f"{pipe.config.description}; {note}".lstrip("; "))
        write_json(tmp / PIPELINE_NAME, config.to_dict())
    return result


__all__ = ["channel_importance", "check_fraction", "hidden_width", "kept_channels", "prune_model", "prune_stage", "pruned_widths"]
