"""Training checkpoints: safetensors for every tensor, JSON for the rest, never pickle.

    RUN/checkpoints/step_00001000/
      model.safetensors       the network's weights (fp32, full, unsharded)
      ema.safetensors         the EMA shadow (fp32)
      optimiser.safetensors   optimiser state tensors, flattened as "<param name>/<state name>"
      rng.safetensors         torch CPU (+ CUDA) generator states of every rank, as uint8 tensors
      state.json              step, data position, run and stage configs, optimiser param groups and scalars,
                              LR schedule, GradScaler, python/numpy RNG states, format version

A checkpoint is written into a hidden temporary folder beside the others, flushed, then renamed into place:
a crash or a full disk mid-write leaves the previous checkpoints untouched and no half checkpoint visible.
Only the last ``keep_last`` checkpoints are kept.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Union

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from safetensors.torch import save_file

from openimagen.errors import ConfigError, ModelLoadError, OpenImagenError
from openimagen.pipeline.config import StageConfig
from openimagen.diffusion.parameterization import ParamConfig
from openimagen.nn.config import UNetConfig
from openimagen.pipeline.io import file_sha256, load_weights
from openimagen.validation import NonNegativeInt, PositiveInt, checked

FORMAT = 1
STATE, MODEL, EMA, OPTIMISER, RNG = "state.json", "model.safetensors", "ema.safetensors", "optimiser.safetensors", \
    "rng.safetensors"
OBJECTIVE = "objective.safetensors"   # an objective's own state (e.g. a discriminator and its optimiser), if any
_STEP_DIR = re.compile(r"^step_(\d+)$")


def verify_files(folder: Path, files: Optional[dict]) -> None:
    """Check every tensor file of a checkpoint against the size and sha256 recorded in its ``state.json``
    (``files``; checkpoints written before it was recorded are not checked). Raises ModelLoadError naming the
    damaged file and the run's other complete checkpoints."""
    for name, info in (files or {}).items():
        path = folder / name
        problem = ("is missing" if not path.is_file() else
                   "has another size than was written" if path.stat().st_size != info.get("bytes") else
                   "does not match the checksum written with it" if file_sha256(path) != info.get("sha256")
                   else None)
        if problem:
            run = run_dir_of(folder)
            others = [c.name for c in checkpoint_dirs(run) if c.resolve() != folder.resolve()] if run else []
            hint = (f"; resume from an earlier checkpoint: --resume {run / 'checkpoints' / others[-1]}" if others
                    else "")
            raise ModelLoadError(f"checkpoint {folder}: {name} {problem} (damaged or edited){hint}")


class CheckpointWriteError(OpenImagenError, OSError):
    """A checkpoint could not be written (e.g. the disk is full); earlier checkpoints are intact."""


# ------------------------------------------------------------------------------------------ finding
def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and (p / STATE).is_file()]
    return [p for _, p in sorted(found)]


def find_checkpoint(path) -> Path:
    """A checkpoint folder from a checkpoint folder or a run folder (its latest checkpoint)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelLoadError(f"resume path {p} does not exist")
    if (p / STATE).is_file():
        return p
    if p.is_dir() and (p / "checkpoints").is_dir():
        found = checkpoint_dirs(p)
        if not found:
            raise ModelLoadError(f"run folder {p} has no complete checkpoint yet (nothing in {p / 'checkpoints'})")
        return found[-1]
    raise ModelLoadError(f"{p} is not a checkpoint (a folder with {STATE}) or a run folder (with checkpoints/)")


def run_dir_of(checkpoint: Path) -> Path | None:
    """RUN for RUN/checkpoints/step_N; None for a checkpoint folder kept elsewhere."""
    p = Path(checkpoint).resolve()
    return p.parent.parent if p.parent.name == "checkpoints" else None


class CheckpointState(BaseModel):
    """What ``state.json`` must hold, type-checked by the project's one validating mechanism (pydantic); other
    keys (data position, scheduler, text encoder id, ...) are kept as they are."""

    model_config = ConfigDict(extra="allow")

    format: Literal[FORMAT]
    step: NonNegativeInt
    run_config: dict
    stage_config: dict
    optimiser: dict
    rng: list
    global_batch: Optional[PositiveInt] = None
    scaler: Optional[dict] = None
    files: Optional[dict[str, dict[str, Union[int, str]]]] = None   # tensor file -> {"bytes", "sha256"}


@dataclass
class Checkpoint:
    path: Path
    state: dict

    @classmethod
    def read(cls, path) -> "Checkpoint":
        p = find_checkpoint(path)
        try:
            state = json.loads((p / STATE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelLoadError(f"{p / STATE} is not readable JSON ({e})") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ModelLoadError(f"{p / STATE} is not an openimagen training checkpoint of format {FORMAT}")
        checked(lambda: CheckpointState.model_validate(state), ModelLoadError, state,
                f"{p / STATE} is damaged or was edited")
        verify_files(p, state.get("files"))
        return cls(p, state)

    @property
    def step(self) -> int:
        return int(self.state["step"])

    def stage_config(self) -> StageConfig:
        try:
            return StageConfig.from_dict(self.state["stage_config"])
        except (ConfigError, KeyError) as e:
            raise ModelLoadError(f"{self.path / STATE}: bad stage config ({e})") from None

    def tensors(self, name: str) -> dict[str, torch.Tensor]:
        return load_weights(self.path / name)


def stage_differences(old: dict, new: dict, names: tuple[str, str] = ("checkpoint", "config"),
                      prefix: str = "") -> list[str]:
    """Every field where two stage configs (``StageConfig.to_dict()``) differ in U-Net, schedule,
    parameterization or resolutions, as ``field (NAME0 old, NAME1 new)``."""
    a_name, b_name = names
    diffs = []
    # a field added later (or omitted at its default) reads as its default
    defaults = {"unet": dataclasses.asdict(UNetConfig()), "param": dataclasses.asdict(ParamConfig())}
    for section in ("unet", "schedule", "param"):
        a, b = {**defaults.get(section, {}), **old.get(section, {})}, {**defaults.get(section, {}), **new[section]}
        diffs += [f"{prefix}{section}.{k} ({a_name} {a.get(k)!r}, {b_name} {b.get(k)!r})"
                  for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    diffs += [f"{prefix}{k} ({a_name} {old.get(k)!r}, {b_name} {new[k]!r})" for k in ("resolution", "lowres_resolution")
              if old.get(k) != new[k]]
    return diffs


def check_compatible(ckpt: Checkpoint, stage: StageConfig) -> None:
    """ConfigError listing every field where the checkpoint's stage (U-Net, schedule, ...) differs from ``stage``."""
    diffs = stage_differences(ckpt.state["stage_config"], stage.to_dict())
    if diffs:
        raise ConfigError(f"checkpoint {ckpt.path} was trained with a different stage; mismatching fields: "
                          + "; ".join(diffs))


# ------------------------------------------------------------------------------------------ writing
def save_checkpoint(run_dir: Path, step: int, *, model: dict, ema: dict, optimiser: dict, rng: dict,
                    state: dict, keep_last: int, objective: Optional[tuple] = None) -> Path:
    """Write checkpoint ``step`` atomically and prune to ``keep_last``; returns its folder.

    ``optimiser`` is a full, name-keyed optimiser state dict; ``rng`` a :func:`rng_state` result per rank;
    ``objective`` the training objective's own ``(tensors, JSON)`` (:data:`OBJECTIVE`, ``state["objective"]``).
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp_step_*"):
        shutil.rmtree(stale, ignore_errors=True)
    for torn in root.glob("step_*"):         # a folder left half-deleted by a kill during pruning: never complete
        if torn.is_dir() and not (torn / STATE).is_file():
            shutil.rmtree(torn, ignore_errors=True)
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp_step_{step:08d}_{os.getpid()}"
    try:
        tmp.mkdir()
        opt_tensors, opt_json = flatten_optimiser(optimiser)
        rng_tensors = {f"rank{r}/{k}": v for r, s in enumerate(rng) for k, v in s["tensors"].items()}
        files = [(MODEL, model), (EMA, ema), (OPTIMISER, opt_tensors), (RNG, rng_tensors)]
        if objective is not None:
            files.append((OBJECTIVE, objective[0]))
            state = {**state, "objective": objective[1]}
        for name, tensors in files:
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / name),
                      metadata={"format": "pt"})
        sums = {name: {"bytes": (tmp / name).stat().st_size, "sha256": file_sha256(tmp / name)}
                for name, _ in files}
        full_state = {"format": FORMAT, "step": step, **state, "optimiser": opt_json,
                      "rng": [s["json"] for s in rng], "files": sums}
        (tmp / STATE).write_text(json.dumps(full_state, indent=1) + "\n", encoding="utf-8")
        _fsync_dir(tmp)
        if final.exists():  # the same step again (e.g. a resumed run that ends where it started)
            old = root / f".tmp_old_{final.name}_{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(root)
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = getattr(e, "strerror", None) or (str(e).splitlines() or [type(e).__name__])[0]
        previous = checkpoint_dirs(run_dir)
        keep = f"; the previous checkpoint {previous[-1].name} is intact" if previous else ""
        raise CheckpointWriteError(f"could not write checkpoint {final} ({reason}){keep}") from e
    for old in checkpoint_dirs(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync_dir(folder: Path) -> None:
    """Flush the files of ``folder`` and the folder itself, so a rename never exposes unwritten data."""
    for p in [*(q for q in folder.iterdir() if q.is_file()), folder]:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------------------ optimiser state
def flatten_optimiser(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """A name-keyed optimiser state dict -> (tensors "<param>/<key>", JSON: param groups and non-tensor state)."""
    tensors, scalars = {}, {}
    for pname, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pname}/{k}"] = v
            else:
                scalars.setdefault(pname, {})[k] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimiser(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict = {}
    for key, v in tensors.items():
        pname, k = key.rsplit("/", 1)
        state.setdefault(pname, {})[k] = v
    for pname, st in meta["scalars"].items():
        state.setdefault(pname, {}).update(st)
    groups = [{k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()}
              for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def module_state(module: torch.nn.Module, opt: torch.optim.Optimizer, prefix: str) -> tuple[dict, dict]:
    """(tensors, JSON) of an objective's own trained ``module`` and its optimiser ``opt`` (a discriminator, a
    fake score network), keyed by parameter name: tensors "<prefix>/<state key>" and "opt/<param>/<key>", JSON
    {"optimiser": ...}. :func:`load_module_state` reverses it."""
    names = [n for n, _ in module.named_parameters()]
    sd = opt.state_dict()
    named = {"state": {names[i]: st for i, st in sd["state"].items()},
             "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in sd["param_groups"]]}
    opt_tensors, opt_json = flatten_optimiser(named)
    tensors = {**{f"{prefix}/{k}": v for k, v in module.state_dict().items()},
               **{f"opt/{k}": v for k, v in opt_tensors.items()}}
    return tensors, {"optimiser": opt_json}


def load_module_state(module: torch.nn.Module, opt: torch.optim.Optimizer, prefix: str, tensors: dict,
                      meta: dict) -> None:
    """Load what :func:`module_state` saved into ``module`` and ``opt`` (in place); raises KeyError/RuntimeError
    when the tensors do not fit the module."""
    cut = len(prefix) + 1
    module.load_state_dict({k[cut:]: v for k, v in tensors.items() if k.startswith(f"{prefix}/")})
    named = unflatten_optimiser({k[4:]: v for k, v in tensors.items() if k.startswith("opt/")}, meta["optimiser"])
    index = {n: i for i, (n, _) in enumerate(module.named_parameters())}
    opt.load_state_dict({"state": {index[n]: st for n, st in named["state"].items()},
                         "param_groups": [{**g, "params": [index[n] for n in g["params"]]}
                                          for g in named["param_groups"]]})


# ------------------------------------------------------------------------------------------ RNG state
def rng_state() -> dict:
    """This process's global RNG states: torch CPU/CUDA as uint8 tensors, python/numpy as JSON lists."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors.update({f"cuda_{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"tensors": tensors, "json": {"python": [version, list(mt), gauss],
                                         "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]}}


def restore_rng(ckpt: Checkpoint, rank: int) -> bool:
    """Restore rank ``rank``'s saved RNG states; False when the checkpoint has none for this rank."""
    saved = ckpt.state.get("rng", [])
    if rank >= len(saved):
        return False
    tensors = ckpt.tensors(RNG)
    torch.set_rng_state(tensors[f"rank{rank}/torch_cpu"])
    cuda = sorted(k for k in tensors if k.startswith(f"rank{rank}/cuda_"))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    py, npy = saved[rank]["python"], saved[rank]["numpy"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np.random.set_state((npy[0], np.asarray(npy[1], dtype=np.uint32), npy[2], npy[3], npy[4]))
    return True
