"""LoRA adapters on one network, through peft's functional API (``peft.functional``), not a home-made injection.

peft wraps each targeted ``nn.Linear``/``nn.Conv2d`` in a LoRA layer that keeps the original module, untouched, as
its ``base_layer`` and holds one (A, B) pair per adapter name. This file adds, fills, reads, activates, fuses and
removes named adapters on a network:

* :func:`add_adapter` injects a new adapter (B = 0: the network's output is unchanged until it trains or loads);
* :func:`activate` chooses which adapters run and with which scale; an adapter that is not active (or has scale 0)
  is skipped entirely, so the network computes exactly the base layers' output;
* :func:`fuse` merges the active adapters into the base weights for speed, keeping a copy of the original
  weights, and :func:`unfuse` copies them back, so fuse-then-unfuse restores the base weights bit for bit (rather
  than subtracting the delta again, which drifts in floating point);
* :func:`remove_adapter` deletes one adapter; when none is left, every LoRA layer is replaced by its
  ``base_layer`` again, the very module that was there before.
"""
from __future__ import annotations

import warnings
from typing import Mapping

import torch
from torch import nn

from openimagen.errors import ModelLoadError
from openimagen.lora.config import LoraSettings


def _tuner_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [(name, m) for name, m in net.named_modules() if isinstance(m, BaseTunerLayer)]


def adapter_names(net: nn.Module) -> list[str]:
    """Names of the adapters present on ``net`` (on any layer), sorted."""
    names = set()
    for _, layer in _tuner_layers(net):
        names.update(layer.lora_A.keys())
    return sorted(names)


def adapted_modules(net: nn.Module, name: str) -> list[str]:
    """Full module names of the layers that carry adapter ``name``."""
    return [n for n, layer in _tuner_layers(net) if name in layer.lora_A]


def add_adapter(net: nn.Module, name: str, settings: LoraSettings) -> list[str]:
    """Inject a new adapter ``name`` with ``settings`` into ``net`` (in place) and make only adapter parameters
    trainable; returns the adapted module names. ``ValueError`` if ``name`` exists or no module matches."""
    from peft.functional import inject_adapter_in_model

    if name in adapter_names(net):
        raise ValueError(f"an adapter named {name!r} is already on this network")
    if not adapter_names(net):                         # remember the flags strip() puts back
        net._requires_grad_before_lora = {n: p.requires_grad for n, p in net.named_parameters()}
    with warnings.catch_warnings():                    # peft warns when a second adapter joins a network
        warnings.simplefilter("ignore")
        inject_adapter_in_model(settings.peft_config(), net, adapter_name=name)
    modules = adapted_modules(net, name)
    if not modules:
        raise ValueError(f"LoRA targets {list(settings.targets)} match no layer of this network")
    dtype = next(net.parameters()).dtype
    for _, layer in _tuner_layers(net):                # adapters in the network's dtype and device
        if name in layer.lora_A:
            device = layer.get_base_layer().weight.device
            layer.lora_A[name].to(device=device, dtype=dtype)
            layer.lora_B[name].to(device=device, dtype=dtype)
    for n, p in net.named_parameters():
        p.requires_grad_(".lora_" in n and f".{name}." in n)
    return modules


def adapter_state(net: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """Adapter ``name``'s tensors, keyed ``<module>.lora_A.weight`` / ``<module>.lora_B.weight`` (peft's file
    layout, adapter name removed): the only tensors an adapter file holds."""
    from peft.functional import get_peft_model_state_dict

    return {k: v.detach() for k, v in get_peft_model_state_dict(net, adapter_name=name).items()}


def load_adapter_state(net: nn.Module, name: str, tensors: Mapping[str, torch.Tensor], source) -> None:
    """Copy ``tensors`` (as :func:`adapter_state` gives them) into adapter ``name`` of ``net``; every tensor must be
    present, finite, and of the injected shape, else :class:`ModelLoadError` naming the first that is not."""
    own = adapter_state(net, name)
    missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or extra:
        what = f"lacks {missing[0]}" if missing else f"has a tensor this network has no place for: {extra[0]}"
        raise ModelLoadError(f"{source} does not fit this stage: it {what}")
    params = dict(net.named_parameters())
    with torch.no_grad():
        for key, value in tensors.items():
            target = params[key.replace(".weight", f".{name}.weight")]
            if tuple(value.shape) != tuple(target.shape):
                raise ModelLoadError(f"{source}: {key} has shape {tuple(value.shape)}, this stage needs "
                                     f"{tuple(target.shape)}")
            if not value.is_floating_point() or not bool(torch.isfinite(value).all()):
                raise ModelLoadError(f"{source}: {key} is not a finite floating-point tensor")
            target.copy_(value.to(target.dtype))


def activate(net: nn.Module, scales: Mapping[str, float]) -> None:
    """Run exactly the adapters in ``scales`` (name -> scale; the update is ``scale * alpha / rank * B A``) and no
    others. Scale-0 adapters are left out, so ``activate(net, {})`` or all-zero scales compute the base network's
    output bit for bit. Inference mode: adapter parameters stop requiring gradients."""
    live = [n for n, s in scales.items() if s != 0]
    for _, layer in _tuner_layers(net):
        layer.set_adapter([n for n in live if n in layer.lora_A], inference_mode=True)
        for n in live:
            layer.set_scale(n, float(scales[n]))


class FusedWeights:
    """The original base weights of every fused layer (cloned before the merge), to restore them exactly."""

    def __init__(self):
        self.saved: list[tuple[nn.Module, torch.Tensor]] = []


def fuse(net: nn.Module) -> FusedWeights:
    """Merge the active adapters (at their current scales) into the base layers' weights, keeping the originals;
    the network then runs at the plain layers' cost. Returns what :func:`unfuse` needs."""
    kept = FusedWeights()
    for _, layer in _tuner_layers(net):
        active = [n for n in layer.active_adapters if n in layer.lora_A]
        if not active:
            continue
        base = layer.get_base_layer()
        kept.saved.append((layer, base.weight.detach().clone()))
        layer.merge(adapter_names=active)
    return kept


def unfuse(kept: FusedWeights) -> None:
    """Undo :func:`fuse` by copying the original weights back (bit for bit), not by subtracting the update."""
    with torch.no_grad():
        for layer, weight in kept.saved:
            layer.get_base_layer().weight.copy_(weight)
            layer.merged_adapters.clear()
    kept.saved.clear()


def remove_adapter(net: nn.Module, name: str) -> None:
    """Delete adapter ``name`` from every layer; when no adapter is left, put the original modules back."""
    for _, layer in _tuner_layers(net):
        if name in layer.lora_A:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                layer.delete_adapter(name)
    getattr(net, "peft_config", {}).pop(name, None)
    if not adapter_names(net):
        strip(net)


def strip(net: nn.Module) -> None:
    """Replace every LoRA layer by its ``base_layer`` (the module that was there before injection)."""
    for full, layer in _tuner_layers(net):
        parent_name, _, child = full.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, child, layer.get_base_layer())
    if hasattr(net, "peft_config"):
        del net.peft_config
    flags = net.__dict__.pop("_requires_grad_before_lora", {})
    for n, p in net.named_parameters():
        p.requires_grad_(flags.get(n, p.requires_grad))
