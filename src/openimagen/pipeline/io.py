"""Reading and writing model directories: JSON configs plus safetensors weights, never pickle.

Every failure a user can meet (missing directory, unreadable or malformed JSON, missing, truncated or
foreign weights file, weights of another architecture) becomes a one-line ``ModelLoadError``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from openimagen.errors import ConfigError, InvalidArgumentError, ModelLoadError, OutputError
from openimagen.fsmode import FILE_MODE

CONFIG_NAME, WEIGHTS_NAME, PIPELINE_NAME = "config.json", "model.safetensors", "pipeline.json"


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{path} is not readable JSON ({e.__class__.__name__}: {e})") from None


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=False) + "\n"))


def check_output_path(path, what: str = "output") -> Path:
    """``path`` if a file can be written there, else :class:`OutputError` (one line) naming why: a directory in
    the way, a path under a file, or a folder that is not writable. Call it before long work."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{what} {path} is a directory; give a file path")
    _check_nearest_folder(path, path.parent, what)
    return path


def _check_nearest_folder(path: Path, start: Path, what: str) -> None:
    """The nearest existing ancestor of ``start`` (``start`` itself if it exists) must be a writable folder, since
    ``path`` will be made under it; else OutputError naming ``what`` and why."""
    probe = start
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{what} {path}: {probe} is a file, so nothing can be written under it")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: {probe} is not writable (read-only or no permission)")


def check_output_dir(path, what: str = "output folder") -> Path:
    """``path`` if a folder can be made or written there, else :class:`OutputError` (one line): a file in the way,
    a path under a file, or a folder that is not writable. Call it before long work."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file; give a folder")
    _check_nearest_folder(path, path, what)
    return path


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: a crash never leaves half a file, and a
    failed write (full disk, read-only folder, a directory in the way) leaves the old file as it was and raises
    :class:`OutputError` in one line."""
    path = Path(path)
    check_output_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, FILE_MODE)                   # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def folder_written_whole(out: Path) -> Iterator[Path]:
    """``with folder_written_whole(out) as tmp:`` write the folder's files under ``tmp`` (beside ``out``, created
    empty); when the block ends without error, ``tmp`` replaces ``out`` (:func:`replace_folder`). On any error
    ``tmp`` is removed and ``out`` stays as it was; an OSError becomes a one-line :class:`ModelLoadError`."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        yield tmp
        replace_folder(tmp, out)
    except OSError as e:
        raise ModelLoadError(f"could not write {out}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_folder(tmp: Path, out: Path) -> None:
    """Put the complete folder ``tmp`` (written beside ``out``, same file system) in ``out``'s place: the old
    ``out``, if any, is renamed away first and deleted only once the new one is in place, so a crash leaves one of
    them whole, and a process still reading the old files (memory-mapped, say) keeps reading them intact."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}-{id(tmp):x}")
    os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def save_weights(path: Path, state: dict[str, torch.Tensor], dtype: torch.dtype | None = None) -> None:
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().contiguous().cpu()
             for k, v in state.items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, hex (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of named tensors (names, dtypes, shapes and bytes, in name order), hex."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(f"{k}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelLoadError(f"weights file {path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelLoadError(f"weights file {path} is truncated or not a safetensors file ({e})") from None


def load_state_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: Path,
                    keep_new: tuple[str, ...] = ()) -> None:
    """Copy ``state`` into ``module`` (casting dtype), naming what does not match. ``keep_new``: prefixes of the
    module's own tensors that ``state`` may lack (parts a derived network adds, e.g. a student's guidance
    embedding); they keep their values, everything else must match exactly."""
    own = module.state_dict()
    kept = {k for k in own if k not in state and k.startswith(keep_new)} if keep_new else set()
    own = {k: v for k, v in own.items() if k not in kept}
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = [f"missing {len(missing)} (e.g. {missing[0]})" if missing else "",
                 f"unexpected {len(unexpected)} (e.g. {unexpected[0]})" if unexpected else "",
                 f"shape mismatch: {wrong[0]}" + (f" and {len(wrong) - 1} more" if len(wrong) > 1 else "")
                 if wrong else ""]
        raise ModelLoadError(f"{source} does not match its config: " + "; ".join(p for p in parts if p))
    check_weights(state, own, source)
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=not kept)


WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_weights(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor], source: Path) -> None:
    """Every tensor that is floating in the module is float32, float16 or bfloat16 in ``state`` and finite there;
    otherwise a ModelLoadError names the first bad tensor (a NaN weight would make black images, an int8 or bool
    tensor cast silently into garbage)."""
    for k, v in state.items():
        if own[k].is_floating_point() and v.dtype not in WEIGHT_DTYPES:
            raise ModelLoadError(f"{source}: tensor {k!r} has dtype {v.dtype}; weights must be float32, float16 or "
                                 f"bfloat16")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise ModelLoadError(f"{source}: tensor {k!r} holds NaN or inf values (exported from diverged weights?)")


def check_model_dir(path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelLoadError(f"model directory {p} does not exist")
    if not p.is_dir():
        raise ModelLoadError(f"{p} is not a model directory (expected a folder with {PIPELINE_NAME})")
    if not (p / PIPELINE_NAME).is_file():
        if (p / "checkpoints").is_dir() or (p / "state.json").is_file():
            raise ModelLoadError(f"{p} is a training run or checkpoint, not a model directory; make one with "
                                 f"`openimagen export {p} [SR_RUN ...] -o MODEL_DIR` and pass that")
        raise ModelLoadError(f"{p} is not a model directory: it has no {PIPELINE_NAME}")
    return p


def config_error_as_load_error(path: Path, fn, *args):
    """Run ``fn(*args)``; a ConfigError (or a bad value or name in the config) becomes a ModelLoadError naming ``path``."""
    try:
        return fn(*args)
    except (ConfigError, InvalidArgumentError) as e:
        raise ModelLoadError(f"{path}: {e}") from None
