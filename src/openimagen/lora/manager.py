"""The adapters loaded into a pipeline: load, choose per call, unload, fuse (``pipe.loras``).

    name = pipe.load_lora("my_adapter", scale=0.8)       # loaded and active
    pipe.load_lora("style", scale=0.5)                   # several at once, each with its own scale
    pipe("a red hexagon", loras={"my_adapter": 1.0})     # this call only: exactly these adapters
    pipe.fuse_lora(); pipe.unfuse_lora()                 # merged for speed; the base weights restored exactly
    pipe.unload_lora()                                   # every stage's original modules back

Every adapter stays loaded (its own A, B tensors on the layers it targets) until unloaded, so switching the active
set between calls costs nothing: a request names the adapters it wants (``GenerationRequest.loras``) and the
pipeline runs exactly those, with its scales, and no others (:meth:`LoraAdapters.using`).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Union

from openimagen.errors import InvalidArgumentError, ModelLoadError
from openimagen.lora import layers
from openimagen.lora.files import Adapter, read_adapter


@dataclass
class LoadedAdapter:
    name: str
    stage: int                  # index of the stage it adapts
    adapter: Adapter


class LoraAdapters:
    """The LoRA adapters of one :class:`~openimagen.pipeline.Pipeline`, and which of them run."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.loaded: dict[str, LoadedAdapter] = {}
        self.active: dict[str, float] = {}       # name -> scale of the adapters that run by default
        self._fused = None                       # per stage: layers.FusedWeights while fused, else None

    # --- loading ------------------------------------------------------------------------------------------
    def load(self, path, scale: float = 1.0, stage: Union[int, str, None] = None,
             name: Optional[str] = None) -> str:
        """Load the adapter folder ``path`` (or an :class:`Adapter` already read) onto its stage (``adapter.json``'s,
        or ``stage``: an index or folder name) and add it to the active set with ``scale``; returns its name
        (default: the folder's name).

        Raises :class:`ModelLoadError` when the folder is not an adapter or was trained on other weights than that
        stage's (their SHA-256 differ), :class:`InvalidArgumentError` for a taken name or a bad scale."""
        scale = check_scale(scale, "scale")
        adapter = path if isinstance(path, Adapter) else read_adapter(path)
        name = name or adapter.path.name
        if name in self.loaded:
            raise InvalidArgumentError(f"a LoRA adapter named {name!r} is already loaded; unload it or pass "
                                       f"another name")
        index = self._stage_index(adapter, stage)
        st = self.pipeline.stages[index]
        base = st.weights_sha256
        if base != adapter.meta.base_weights_sha256:
            raise ModelLoadError(
                f"LoRA adapter {adapter.path} was trained on other weights than stage {index} "
                f"({self.pipeline.config.stages[index]}) of this model (base sha256 "
                f"{adapter.meta.base_weights_sha256[:16]}, this stage's {(base or 'unknown')[:16]}); load it onto "
                f"the model it was trained from")
        self.unfuse()
        net = st.denoiser.net
        layers.add_adapter(net, name, adapter.meta.lora)
        try:
            missing = sorted(set(adapter.meta.modules) - set(layers.adapted_modules(net, name)))
            if missing:
                raise ModelLoadError(f"LoRA adapter {adapter.path} targets {missing[0]}, which stage {index} does "
                                     f"not have")
            layers.load_adapter_state(net, name, adapter.tensors, adapter.path)
        except Exception:
            layers.remove_adapter(net, name)
            raise
        self.loaded[name] = LoadedAdapter(name, index, adapter)
        self.active[name] = scale
        self._apply(self.active)
        return name

    def _stage_index(self, adapter: Adapter, stage) -> int:
        names = list(self.pipeline.config.stages)
        if stage is None:
            stage = adapter.meta.stage
        if isinstance(stage, str):
            if stage not in names:
                raise InvalidArgumentError(f"this model has no stage {stage!r} (its stages: {', '.join(names)})")
            return names.index(stage)
        if isinstance(stage, bool) or not isinstance(stage, int) or not 0 <= stage < len(names):
            raise InvalidArgumentError(f"stage must be a stage index in 0..{len(names) - 1} or a name, got {stage!r}")
        return stage

    def unload(self, name: Optional[str] = None) -> None:
        """Remove adapter ``name`` (default: all); when a stage has none left its original modules are back."""
        names = list(self.loaded) if name is None else [name]
        self._require_loaded(names)
        self.unfuse()
        for n in names:
            entry = self.loaded.pop(n)
            self.active.pop(n, None)
            layers.remove_adapter(self.pipeline.stages[entry.stage].denoiser.net, n)
        self._apply(self.active)

    # --- choosing --------------------------------------------------------------------------------------------
    def set(self, scales: Mapping[str, float]) -> None:
        """Make exactly ``scales`` (name -> scale) the active set."""
        self.active = self.check(scales)
        self.unfuse()
        self._apply(self.active)

    def check(self, scales: Mapping[str, float]) -> dict[str, float]:
        """``scales`` as a dict if every name is loaded and every scale a finite number, else InvalidArgumentError."""
        self._require_loaded(scales)
        return {n: check_scale(s, f"loras[{n!r}]") for n, s in scales.items()}

    def _require_loaded(self, names) -> None:
        unknown = [n for n in names if n not in self.loaded]
        if unknown:
            raise InvalidArgumentError(f"no LoRA adapter named {unknown[0]!r} is loaded (loaded: "
                                       f"{', '.join(self.loaded) or 'none'})")

    def resolve(self, scales: Optional[Mapping[str, float]]) -> dict[str, float]:
        """The adapters a request runs: its own ``scales`` (checked), or the active set when it names none; scale-0
        entries dropped (they change nothing)."""
        chosen = self.active if scales is None else self.check(scales)
        return {n: s for n, s in chosen.items() if s != 0}

    @contextlib.contextmanager
    def using(self, scales: Optional[Mapping[str, float]]):
        """Run the block with exactly the adapters of ``scales`` (None: the active set), then restore the active
        set. A fused pipeline whose fused set is asked for stays fused."""
        if scales is None or dict(scales) == self.resolve(None):
            yield
            return
        wanted, fused = self.check(scales), self._fused is not None
        self.unfuse()
        self._apply(wanted)
        try:
            yield
        finally:
            self._apply(self.active)
            if fused:
                self.fuse()

    def describe(self, scales: Optional[Mapping[str, float]] = None) -> list[dict]:
        """JSON-ready list of the adapters that run with ``scales`` (None: the active set): name, stage, scale
        and the SHA-256 of the adapter file (for image records)."""
        scales = self.active if scales is None else scales
        return [{"name": n, "stage": self.pipeline.config.stages[self.loaded[n].stage], "scale": float(s),
                 "sha256": self.loaded[n].adapter.sha256} for n, s in scales.items() if s != 0]

    # --- speed ------------------------------------------------------------------------------------------------
    def fuse(self) -> None:
        """Merge the active adapters into the base weights (a copy of the originals is kept for :meth:`unfuse`)."""
        if self._fused is None:
            self._fused = [layers.fuse(st.denoiser.net) for st in self.pipeline.stages]

    def unfuse(self) -> None:
        """Put the original base weights back, bit for bit (no-op when not fused)."""
        if self._fused is not None:
            for kept in self._fused:
                layers.unfuse(kept)
            self._fused = None

    @property
    def fused(self) -> bool:
        return self._fused is not None

    def _apply(self, scales: Mapping[str, float]) -> None:
        for i, st in enumerate(self.pipeline.stages):
            mine = {n: s for n, s in scales.items() if self.loaded[n].stage == i}
            layers.activate(st.denoiser.net, mine)


def check_scale(scale, what: str) -> float:
    """A LoRA scale: a finite number in [-10, 10] (1 = as trained, 0 = off, negative = pushed away)."""
    from openimagen.validation import check_value
    from openimagen.lora.config import Scale

    return check_value(Scale, scale, what, InvalidArgumentError)


def parse_lora_flag(text: str) -> tuple[Path, float]:
    """``PATH[:SCALE]`` (the CLI's ``--lora``) -> (path, scale); a suffix that is not a number belongs to the path."""
    path, sep, tail = text.rpartition(":")
    try:
        scale = float(tail) if sep and path else None
    except ValueError:
        scale = None
    if scale is None:
        return Path(text), 1.0
    return Path(path), check_scale(scale, f"--lora {text}: the scale")
