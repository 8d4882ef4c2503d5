"""``--fast``: the networks through ONNX Runtime, the fastest runtime measured to keep the default model's quality
(issue 15, point 6; with ``--steps 16`` the fastest setup within 10% of the shipped settings).

What "fast" selects, and why (docs/BENCHMARKS.md, "Quantization and the fast setup" and "The fast setups side by side"):

- the networks run through ONNX Runtime (:mod:`openimagen.accel.onnx`): 1.2-1.7x per network evaluation on this
  CPU, images equal to PyTorch's to 1e-4;
- in float32: :data:`FAST_INT8` is False since 2026-12-02. Static int8 convolutions
  (:mod:`openimagen.accel.quantize`, ``int8=True``; 1.4x more) kept the v1 default within 10% of its float32
  quality, but not v8: its emoji Fréchet distance went from 5.24 to 6.45, 42% further above the real-vs-real
  floor (docs/EVALUATION.md, "Quantization"). The int8 graphs stay one flag away
  (``openimagen export-onnx --int8 -o DIR``, then ``--onnx DIR``) for whoever accepts that;
- the request itself is untouched: the same sampler, steps and guidance, so the records and the seeds mean what
  they meant. Fewer steps are the user's call (``--steps 16`` keeps v8 within 10% of its shipped 32: docs/
  EVALUATION.md, "The fastest setup within 10%").

The export is built once per model and kept in the cache (``$OPENIMAGEN_CACHE``, else
``$XDG_CACHE_HOME/openimagen``, else ``~/.cache/openimagen``) under ``onnx/<model hash>-<fp32|int8>``, written
atomically; building it takes about 20 s on this CPU (a minute with int8 calibration), later calls load it in
under a second.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

from openimagen.errors import InvalidArgumentError

FAST_INT8 = False


def cache_root() -> Path:
    """The folder of openimagen's caches: ``$OPENIMAGEN_CACHE``, ``$XDG_CACHE_HOME/openimagen`` or
    ``~/.cache/openimagen``."""
    if os.environ.get("OPENIMAGEN_CACHE"):
        return Path(os.environ["OPENIMAGEN_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "openimagen"


def fast_export(pipe, *, int8: bool = FAST_INT8, root: Optional[Path] = None, quiet: bool = False) -> Path:
    """The ONNX export of ``pipe``'s weights used by ``--fast``, built into the cache on first use; returns its
    folder. Raises InvalidArgumentError if the cache folder cannot be written."""
    from openimagen.accel.onnx import META, export_onnx

    folder = (root or cache_root()) / "onnx" / f"{pipe.model_hash[:16]}-{'int8' if int8 else 'fp32'}"
    if (folder / META).is_file():
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InvalidArgumentError(f"--fast keeps its ONNX graphs in {folder.parent}, which cannot be written "
                                   f"({e.strerror}); set OPENIMAGEN_CACHE to a writable folder") from None
    if not quiet:
        print(f"--fast: building the {'int8 ' if int8 else ''}ONNX graphs of this model once, into {folder} "
              f"({'about a minute' if int8 else 'about 20 s'})", file=sys.stderr)
    export_onnx(pipe, folder, overwrite=True, int8=int8)
    return folder


def use_fast(pipe, *, int8: bool = FAST_INT8, threads: Optional[int] = None, root: Optional[Path] = None,
             quiet: bool = False):
    """Switch ``pipe`` to the fast setup (see the module docstring) in place; returns ``pipe``. Raises what
    :func:`openimagen.accel.onnx.use_onnx` raises (LoRA adapters loaded, a GPU or non-float32 pipeline)."""
    from openimagen.accel.onnx import check_onnx_pipeline, use_onnx

    check_onnx_pipeline(pipe, "--fast")                  # before the export is built (a minute)
    return use_onnx(pipe, fast_export(pipe, int8=int8, root=root, quiet=quiet), threads=threads)
